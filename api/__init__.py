"""The FastAPI gateway: auth (``default_aaa``), RBAC, the REST API, audit and hardening.

Public surface: ``api.app.create_app(config, store=..., engine=..., aaa=...)``,
``api.server.serve`` / ``api.server.start_in_thread``, ``api.engine_handle.EngineHandle``
(what the actor runtime hands the gateway), ``api.core_plugin.DefaultCore`` and
``api.aaa.DefaultAAA`` (the ``lts.core`` / ``lts.aaa`` plugins). Importing this package
builds nothing; it never imports Ray.
"""
