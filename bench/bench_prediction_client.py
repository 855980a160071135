"""Benchmark: API-mode prediction client overhead against the loopback fake service.

Starts the test prediction service (``tests/fixtures/fake_prediction_service.py``) on
a free loopback port in a thread, with no artificial latency, then measures in the
same run:

* reference: one bare ``httpx.Client`` doing POST + GET polls by hand (no retries,
  no semaphore, no validation) — the floor for this protocol on this machine;
* ``PredictionClient.predict`` sequentially (same work, with our layers);
* ``PredictionClient.get_predictions`` (both types) from 16 threads, bound 4.

    .venv/bin/python bench/bench_prediction_client.py [--n 200]

Figures are noisy on a shared machine; compare the ratio, not absolute numbers.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import uvicorn

from engine.prediction import PredictionClient, PredictionClientSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test service lives in tests/
from tests.fixtures.fake_prediction_service import create_app  # noqa: E402

BAR = datetime(2020, 1, 6, 10, tzinfo=timezone.utc)


def start_service() -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # see prediction_fixtures
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def bare_predict(http: httpx.Client, k: int, poll_s: float) -> None:
    body = {
        "symbol": "EURUSD",
        "prediction_type": "short_term",
        "interval": "1h",
        "horizons": [1, 2, 3, 4, 5, 6],
        "baseline_datetime": (BAR + timedelta(hours=k)).isoformat(),
    }
    pid = http.post("/api/v1/predict", json=body).json()["id"]
    while True:
        time.sleep(poll_s)
        if http.get(f"/api/v1/predictions/{pid}").json()["status"] == "completed":
            return


def main() -> None:
    parser = argparse.ArgumentParser(description="prediction client benchmark")
    parser.add_argument("--n", type=int, default=200, help="predictions per measurement")
    args = parser.parse_args()
    base_url, server, thread = start_service()
    httpx.post(f"{base_url}/_test/reset", json={"request_latency_s": 0.0, "max_concurrent": 4}).raise_for_status()
    httpx.put(f"{base_url}/_test/scenarios/EURUSD", json={"delay_s": 0.0}).raise_for_status()
    poll_s = 0.002
    settings = PredictionClientSettings(base_url=base_url, poll_interval_s=poll_s, max_poll_interval_s=poll_s)
    try:
        with httpx.Client(base_url=base_url) as http:
            bare_predict(http, 0, poll_s)  # warm-up
            started = time.perf_counter()
            for k in range(args.n):
                bare_predict(http, k, poll_s)
            bare_s = (time.perf_counter() - started) / args.n

        with PredictionClient(settings) as client:
            client.predict("EURUSD", BAR, "short_term")  # warm-up
            latencies = []
            for k in range(args.n):
                t0 = time.perf_counter()
                client.predict("EURUSD", BAR + timedelta(hours=k), "short_term")
                latencies.append(time.perf_counter() - t0)
            ours_s = statistics.fmean(latencies)
            p95 = sorted(latencies)[int(0.95 * len(latencies)) - 1]

            per_thread = max(1, args.n // 16)
            started = time.perf_counter()
            threads = [
                threading.Thread(
                    target=lambda k=k: [
                        client.get_predictions("EURUSD", BAR + timedelta(hours=k * 1000 + j)) for j in range(per_thread)
                    ]
                )
                for k in range(16)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
        stats = httpx.get(f"{base_url}/_test/stats").json()
    finally:
        server.should_exit = True
        thread.join(timeout=5)

    print(f"bare httpx POST+poll (reference): {bare_s * 1000:7.2f} ms per prediction")
    print(f"PredictionClient.predict:         {ours_s * 1000:7.2f} ms per prediction (p95 {p95 * 1000:.2f} ms)")
    print(f"ratio client / bare:              {ours_s / bare_s:7.2f}x")
    total = 16 * per_thread * 2
    print(
        f"16 threads, bound 4: {total} predictions in {wall:.2f}s -> {total / wall:,.0f} predictions/s; "
        f"service peak in flight {stats['max_in_flight']}, overload 500s {stats['overload_rejections']}"
    )


if __name__ == "__main__":
    main()
