"""Parallel backtests on Ray: many CSVs x parameter combinations, one task each.

Modules: ``spec`` and ``planning`` (what to run; plain Python, also used by the REST
API), ``execution`` (the task bodies, no Ray), ``orchestrator`` (Ray fan-out and
gather), ``batch`` (the entry point: run a plan, write reports), ``report``/``plots``/
``progress`` (output), ``recording`` (the database), ``launcher`` (batches submitted
through the API, run in background threads of the gateway's process).

Importing this package does not import Ray: only ``orchestrator`` (and ``batch``,
``launcher`` through it) do.
"""
