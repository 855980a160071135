"""Ask one Ray cluster for the live supervisors' status, in a child process of ``lts status``.

A child, because ``ray.init`` cannot be bounded from inside: against a cluster that
refuses our token it logs a warning a second for about 20 s before it raises, from Ray's
C++ core on file descriptor 2. The parent (``actors.commands.status``) reads this child's
stderr, ends it at the first authentication refusal or after its connect timeout, and
prints one line instead.

Usage: ``python -m actors.status_probe ADDRESS NAMESPACE [PORTFOLIO_ID ...]``; prints one
JSON object: ``{"address": <the GCS it joined>, "supervisors": {id: status}}`` or
``{"error": "..."}`` (exit code 1).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def probe(address: str, namespace: str, portfolio_ids: list[int]) -> dict[str, Any]:
    """Join the cluster at ``address`` and collect each named supervisor's status."""
    import ray

    from actors import naming

    context = ray.init(address=address, namespace=namespace, log_to_driver=False, configure_logging=False,
                       logging_level="ERROR")
    joined = context.address_info.get("gcs_address") if hasattr(context, "address_info") else address
    supervisors: dict[str, Any] = {}
    for pid in portfolio_ids:
        try:
            handle = ray.get_actor(naming.portfolio_supervisor(pid), namespace=namespace)
            supervisors[str(pid)] = ray.get(handle.status.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - not running (or not answering): reported as such
            continue
    return {"address": joined, "supervisors": supervisors}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(json.dumps({"error": "usage: status_probe ADDRESS NAMESPACE [PORTFOLIO_ID ...]"}))
        return 1
    try:
        result = probe(argv[0], argv[1], [int(x) for x in argv[2:]])
    except Exception as exc:  # noqa: BLE001 - the parent turns it into one line
        print(json.dumps({"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}), flush=True)
        return 1
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child by lts status
    sys.exit(main(sys.argv[1:]))
