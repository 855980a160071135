"""Bundled JSON configs a user starts from (``lts run --config NAME``)."""
