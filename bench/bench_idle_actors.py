"""What idle Ray actors cost: CPU of N actors that exist and answer no calls.

Starts a local Ray cluster, creates N actors (one process each, like asset actors),
waits until they are up, then samples every actor process's CPU time (utime + stime from
``/proc/<pid>/stat``, what psutil reads) over a few seconds and prints CPU ms per second:
per actor and for all N. Also the raylet's and GCS's own CPU over the same window.

    .venv/bin/python bench/bench_idle_actors.py --actors 10 100 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from datetime import datetime, timezone

import ray

_TICK = os.sysconf("SC_CLK_TCK")


@ray.remote(num_cpus=0)
class Idle:
    """An actor that does nothing between calls (an asset actor waiting for its step)."""

    def pid(self) -> int:
        return os.getpid()


def cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except OSError:
        return 0.0


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def own_cluster_pids(word: str) -> list[int]:
    """Processes of this driver's local cluster (its children) whose command names ``word``."""
    out = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", word], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def measure(n: int, seconds: float) -> dict[str, float]:
    actors = [Idle.remote() for _ in range(n)]
    pids = ray.get([a.pid.remote() for a in actors], timeout=600)
    time.sleep(3.0)  # let start-up settle
    infra = own_cluster_pids("raylet") + own_cluster_pids("gcs_server")
    before = {p: cpu_s(p) for p in pids + infra}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    used = {p: cpu_s(p) - before[p] for p in before}
    rss = sorted(rss_mb(p) for p in pids)
    actors_ms = sum(used[p] for p in pids) / wall * 1000
    infra_ms = sum(used[p] for p in infra) / wall * 1000
    for a in actors:
        ray.kill(a)
    time.sleep(2.0)
    return {"actors": n, "cpu_ms_per_s_all": actors_ms, "cpu_ms_per_s_each": actors_ms / n,
            "raylet_gcs_cpu_ms_per_s": infra_ms, "rss_mb_median": rss[len(rss) // 2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"# bench_idle_actors {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
          f"{platform.node()} cpus={os.cpu_count()} ray={ray.__version__}")
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    for n in args.actors:
        r = measure(n, args.seconds)
        print(f"idle actors={r['actors']:4d}  cpu all={r['cpu_ms_per_s_all']:7.1f} ms/s  "
              f"each={r['cpu_ms_per_s_each']:5.2f} ms/s  raylet+gcs={r['raylet_gcs_cpu_ms_per_s']:6.1f} ms/s  "
              f"rss per actor (median)={r['rss_mb_median']:.0f} MB",
              flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
