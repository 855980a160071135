"""LTS trading domain: pure Python, no ray / sqlalchemy / fastapi."""
