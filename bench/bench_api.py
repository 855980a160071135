"""Gateway throughput and latency from a loopback load generator, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_api.py                      # both databases, 5 s per case
    .venv/bin/python bench/bench_api.py --backend sqlite --duration 10 --connections 32

The gateway runs in its own process under uvicorn (one worker) on 127.0.0.1; this process
drives it with a small asyncio HTTP/1.1 keep-alive client (no third-party load tool is
installed here), ``--connections`` requests in flight. Cases, each measured in the same
run so their ratios compare like with like:

* reference: ``GET /health`` (same middleware stack, one tiny database read, no auth);
* ``GET /api/portfolios`` authenticated (JWT check + user + session reads + the list);
* ``GET /api/orders?page_size=100`` authenticated, over 1,000 orders.

The per-IP rate limit (60/min by default) is raised through config for the benchmark:
the script prints the value it used. Target on this 2-core machine: >= 1,000 req/s with
p99 < 50 ms for ``GET /api/portfolios``. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_RATE_LIMIT = 10_000_000  # per minute (the maximum the gateway accepts): no 429s here
POSTGRES_URL = os.environ.get("LTS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "Bench7Password"


# ----------------------------------------------------------------------------- setup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_database(backend: str, workdir: Path) -> tuple[str, Any]:
    """A fresh database with the schema; returns (url, cleanup)."""
    from sqlalchemy import make_url

    from persistence.database import make_engine
    from persistence.schema import create_schema

    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        cleanup = lambda: None  # noqa: E731 - the temp dir goes away
    else:
        import psycopg

        schema = f"lts_bench_api_{uuid.uuid4().hex[:10]}"
        conninfo = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )

        def cleanup() -> None:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    return url, cleanup


def seed(url: str, portfolios: int, orders: int) -> None:
    """One user with ``portfolios`` portfolios (one asset each) and ``orders`` orders."""
    from api.aaa import DefaultAAA
    from persistence.records import AssetCreate, AuditContext, OrderIntent, PortfolioCreate
    from persistence.store import Store

    store = Store.from_url(url)
    try:
        system = AuditContext.system()
        aaa = DefaultAAA({"bcrypt_rounds": 4}, secret="x" * 64)
        user = store.create_user(system, username="bench", password_hash=aaa.hash_password(PASSWORD))
        assets = []
        for i in range(portfolios):
            p = store.create_portfolio(system, PortfolioCreate(name=f"p{i}", total_capital=Decimal("10000")), owner_id=user.id)
            assets.append((p.id, store.create_asset(system, p.id, AssetCreate(symbol="EURUSD")).id))
        for i in range(orders):
            pid, aid = assets[i % len(assets)]
            store.record_order_intent(
                system,
                OrderIntent(client_order_id=f"bench-{i}", portfolio_id=pid, asset_id=aid, side="buy", quantity=Decimal("1000")),
            )
    finally:
        store.close()


def run_server(config: dict[str, Any]) -> None:
    """Child process: the gateway under uvicorn, as ``lts run`` would start it."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from api.server import serve

    serve(config)


def wait_until_up(port: int, server: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.is_alive():
            raise RuntimeError(f"gateway process exited with code {server.exitcode} (see its log above)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gateway did not start on port {port}")


def login(port: int) -> str:
    import httpx

    resp = httpx.post(
        f"http://127.0.0.1:{port}/api/auth/login", json={"username": "bench", "password": PASSWORD}, timeout=60.0
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


# ------------------------------------------------------------------------ load generator


async def _one_connection(port: int, request: bytes, stop_at: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    port: int, path: str, token: str | None, duration: float, connections: int, server_pid: int
) -> dict[str, float]:
    """Closed-loop load: ``connections`` keep-alive connections, one request in flight each.

    Besides wall-clock figures it reports the server's CPU time per request, which does
    not depend on how busy the rest of the machine is: 1000 / cpu_ms is the request rate
    one free core would sustain."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()
    latencies: list[float] = []
    errors: list[int] = []

    cpu: list[float] = []

    async def main() -> float:
        warm_until = time.perf_counter() + min(1.0, duration / 5)
        await asyncio.gather(*(_one_connection(port, request, warm_until, [], []) for _ in range(connections)))
        cpu.append(process_cpu_seconds(server_pid))
        began = time.perf_counter()
        stop_at = began + duration
        await asyncio.gather(*(_one_connection(port, request, stop_at, latencies, errors) for _ in range(connections)))
        cpu.append(process_cpu_seconds(server_pid))
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": len(errors),
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "server_cpu_ms": (cpu[1] - cpu[0]) / n * 1000,
    }


# ----------------------------------------------------------------------------- main


def bench_backend(backend: str, duration: float, connections: int) -> list[tuple[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory(prefix="lts-bench-api-") as tmp:
        url, cleanup = make_database(backend, Path(tmp))
        try:
            seed(url, portfolios=5, orders=1000)
            port = free_port()
            config = {
                "database_url": url,
                "api_host": "127.0.0.1",
                "api_port": port,
                "rate_limit_per_minute": BENCH_RATE_LIMIT,
                "jwt_secret": secrets.token_urlsafe(48),
                "log_level": "WARNING",
                "data_dir": tmp,
            }
            server = mp.get_context("spawn").Process(target=run_server, args=(config,), daemon=True)
            server.start()
            try:
                wait_until_up(port, server)
                token = login(port)
                cases = [
                    ("GET /health (reference)", "/health", None),
                    ("GET /api/portfolios", "/api/portfolios", token),
                    ("GET /api/orders?page_size=100", "/api/orders?page_size=100", token),
                ]
                return [
                    (label, measure(port, path, tok, duration, connections, server.pid))
                    for label, path, tok in cases
                ]
            finally:
                server.terminate()
                server.join(10)
        finally:
            cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per case (after a warm-up)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)

    print(f"rate_limit_per_minute raised to {BENCH_RATE_LIMIT} through config for this benchmark")
    print(f"load: {args.connections} keep-alive connections, {args.duration:.0f} s per case, one uvicorn worker")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (shared: figures are noisy)")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, Any] = {}
    for backend in backends:
        rows = bench_backend(backend, args.duration, args.connections)
        reference = rows[0][1]["rps"]
        print(f"\n[{backend}]")
        print(
            f"  {'case':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs ref':>7}"
            f" {'srv cpu ms/req':>15} {'req/s per free core':>20}"
        )
        for label, figures in rows:
            print(
                f"  {label:34} {figures['rps']:8.0f} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f} "
                f"{figures['errors']:7d} {figures['rps'] / reference:7.2f} {figures['server_cpu_ms']:15.3f}"
                f" {1000 / figures['server_cpu_ms']:20.0f}"
            )
        portfolios = rows[1][1]
        met = portfolios["rps"] >= 1000 and portfolios["p99_ms"] < 50
        print(f"  target GET /api/portfolios >= 1000 req/s and p99 < 50 ms: {'met' if met else 'NOT met'}")
        results[backend] = {label: figures for label, figures in rows}
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
