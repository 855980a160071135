"""Persistence: SQLAlchemy 2.0 models, engines/sessions and the Store (every write audited).

Import what you need from the submodules: ``persistence.store.Store``,
``persistence.records`` (records, specs, ``AuditContext``, ``Viewer``, ``PageRequest``),
``persistence.database`` (``make_engine``, ``get_db``, ``db_session``, ``Database``),
``persistence.schema`` (``create_schema``). Nothing is built at import time.
"""
