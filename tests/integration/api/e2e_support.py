"""Support for the engine-running end-to-end test (``test_e2e_engine.py``).

* ``engine_and_gateway(config)``: the real actor runtime (``EngineRuntime``: persistence,
  broker and prediction actors, one supervisor per active portfolio) on the shared Ray
  session, in its own namespace, plus a real uvicorn gateway on loopback wired to the
  runtime's ``EngineClient``. Everything is stopped on exit, gateway first.
* ``Journey``: an HTTP client wrapper that remembers every state-changing request that
  succeeded, with the audit row it must have left, so the test can compare the audit log
  with what it did one to one.
* ``fetch_all``: every page of a paginated list endpoint.
* ``named_actors``: the named actors alive in a namespace (to prove nothing is left over).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.actors.engine_helpers import running_engine
from tests.integration.api.conftest import serve_live

# ``Journey.change``'s default target: the ``id`` of the created object in the response.
RESPONSE_ID = object()


@dataclass(frozen=True)
class ExpectedAudit:
    """The audit row one successful state-changing request must leave."""

    request: str  # "POST /api/..." (for failure messages)
    action: str
    target_type: str | None
    target_id: str | None


@dataclass
class Journey:
    """An ``httpx.Client`` over the gateway that records successful changes."""

    client: httpx.Client
    headers: dict[str, str] = field(default_factory=dict)
    changes: list[ExpectedAudit] = field(default_factory=list)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers, params=params or None)

    def change(
        self,
        method: str,
        path: str,
        *,
        action: str,
        target_type: str | None,
        target_id: Any = RESPONSE_ID,
        json: Any = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        """Send a state-changing request, assert its status, remember its audit row and
        return the JSON body."""
        resp = self.client.request(method, path, headers=self.headers, json=json)
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        body = resp.json()
        target = body["id"] if target_id is RESPONSE_ID else target_id
        self.changes.append(ExpectedAudit(f"{method} {path}", action, target_type,
                                          None if target is None else str(target)))
        return body


def fetch_all(journey: Journey, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list endpoint (oldest first)."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        resp = journey.get(path, page=page, page_size=200, **params)
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
        body = resp.json()
        items.extend(body["items"])
        if len(items) >= body["total"] or not body["items"]:
            return sorted(items, key=lambda item: item["id"])
        page += 1


def named_actors(namespace: str) -> list[str]:
    """Names of the live named actors in ``namespace``."""
    from ray.util import list_named_actors

    return sorted(str(entry["name"]) for entry in list_named_actors(all_namespaces=True)
                  if entry.get("namespace") == namespace)


@dataclass
class LiveEngine:
    """A running engine and the gateway in front of it."""

    runtime: Any  # actors.runtime.EngineRuntime
    store: Any  # persistence.Store over the same database (the test's own reads)
    journey: Journey
    base_url: str

    @property
    def namespace(self) -> str:
        return str(self.runtime.namespace)


@contextmanager
def engine_and_gateway(config: Mapping[str, Any]) -> Iterator[LiveEngine]:
    """The runtime on the shared Ray session and a uvicorn gateway wired to it.

    ``config``: an engine config (``engine_helpers.engine_config``); the gateway uses the
    same ``database_url``. Needs the ``ray_session`` fixture to be active."""
    from actors.engine_client import EngineClient

    with running_engine(dict(config)) as runtime:
        # The gateway serves the engine's data and report folders (backtest submissions).
        folders = {key: config[key] for key in ("data_dir", "backtest_dir") if key in config}
        engine = EngineClient(runtime)
        running, store, _aaa = serve_live(str(config["database_url"]), engine=engine, **folders)
        client = httpx.Client(base_url=running.url, timeout=60.0)  # generous: the machine is shared
        try:
            yield LiveEngine(runtime=runtime, store=store, journey=Journey(client), base_url=running.url)
        finally:
            client.close()
            running.stop()
            engine.shutdown()
            store.close()
