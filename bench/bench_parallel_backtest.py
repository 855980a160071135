"""Parallel backtests on Ray: efficiency, per-task overhead, throughput.

    .venv/bin/python bench/bench_parallel_backtest.py [--bars 250000] [--files 4] [--combos 4]

(a) 16 backtests (4 files x 4 parameter sets) of 250,000 bars each: sequentially in this
    process (each file parsed once, as the Ray path does) vs as Ray tasks on this
    machine's cores -> parallel efficiency = T_sequential / (cores x T_ray). Target >= 90%.
    Also with the CSVs already parsed (the backtest tasks alone). The sequential
    reference is serial: pyarrow parses on one thread there, as it does in a Ray worker
    (before 2026-11-25 it parsed on every core, which made the reference partly parallel).
(b) per-task overhead: a 1,000-bar backtest through a Ray task (data already in the
    object store, one call at a time) minus the same call made directly. Target < 20 ms.
(c) total bars/s of the whole batch through Ray.
(d) the design choice behind (a): the same batch with every task re-reading its CSV
    instead of sharing the parsed arrays.
(f) the issue's own reference, measured in the same run: 16 CPU-bound pure-Python Ray
    tasks (no data, no result) of about one backtest's length each, sequential vs on the
    same cores. What two vCPUs give to work with no I/O, no data and no Ray object store.
    It runs in every repetition of (a), right after it, so both see the same machine (this
    VM's speed drifts by tens of percent within minutes); the median of the repetitions'
    (a)/(f) ratios compares them phase for phase.
(g) (f) without Ray: the same spins in the plain process pool of (e), in the same
    repetitions. On this VM two plain processes of pure Python gave 73-78% in one quarter
    of an hour and 97-99% in the next (2026-12-04), so a single figure of (a) says little
    without (f) and (g) beside it.
(e) the same runs on the same cores without Ray, in a plain ``multiprocessing`` pool, one
    task per run (each process parses a file the first time one of its runs needs it, so
    a file can be parsed once per process: more work than (a) does).
(h) the same pool with one task per file (its parse and all its runs): each file parsed
    once and no wait between runs, the best a static split of this batch can do without
    Ray. (e) and (h) run in every repetition of (a), right after it.

Every figure is measured in the same run, against the reference beside it. The
sequential reference runs in a thread at the Ray workers' niceness (15; Linux niceness
is per thread), so on a shared machine it and the tasks compete for CPU on equal terms,
while this driver keeps its own niceness, as ``lts backtest`` does: a driver lowered to
the workers' level waits for a core behind them before it can hand a worker its next
task (``--lower_driver`` measures that setting, the one used before 2026-12-04). The data
is a seeded synthetic hourly random walk (written to a temporary folder), so the
script needs nothing outside the repository. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.backtests.execution import execute_run, load_data  # noqa: E402
from engine.backtest.planning import build_plan  # noqa: E402

STRATEGY = "sma_cross"
RAY_WORKER_NICENESS = int(os.environ.get("RAY_worker_niceness", "15"))  # Ray's default


def write_random_walk(path: Path, bars: int, seed: int) -> None:
    """An hourly OHLC random walk around 1.10 (EURUSD-like volatility)."""
    rng = np.random.default_rng(seed)
    close = 1.10 * np.exp(np.cumsum(rng.normal(0.0, 0.0012, bars)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0.0, 0.0008, bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    times = np.datetime64("2000-01-03T00:00") + np.arange(bars) * np.timedelta64(1, "h")
    import pandas as pd

    frame = pd.DataFrame({"DATE_TIME": pd.to_datetime(times).strftime("%Y-%m-%d %H:%M:%S"),
                          "OPEN": open_.round(6), "HIGH": high.round(6), "LOW": low.round(6),
                          "CLOSE": close.round(6)})
    frame.to_csv(path, index=False)


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def at_worker_niceness(fn, *args):  # type: ignore[no-untyped-def]
    """``fn(*args)`` in a thread of its own at the Ray workers' niceness; its value.

    Linux niceness belongs to the thread, so only the reference is lowered; the driver's
    other threads (Ray's among them) keep theirs. Elsewhere it runs at this niceness."""
    import threading

    box: dict[str, object] = {}

    def body() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), RAY_WORKER_NICENESS))
        except (AttributeError, OSError):
            pass
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=body, name="sequential-reference")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def run_sequential(plan) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Every run in this process, one after another, each file parsed once (what a
    single-process tool does). Serial means one core: pyarrow's CSV reader would
    otherwise parse on every core, while a Ray worker parses on one (Ray sets
    OMP_NUM_THREADS=1 in its workers and pyarrow honours it)."""
    import pyarrow

    threads = pyarrow.cpu_count()
    pyarrow.set_cpu_count(1)
    try:
        return at_worker_niceness(_run_sequential, plan)
    finally:
        pyarrow.set_cpu_count(threads)


def _run_sequential(plan) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    loaded: dict[str, object] = {}
    ok = 0
    for spec in plan.runs():
        if spec.path not in loaded:
            loaded[spec.path] = load_data(spec.path, datetime_column=plan.datetime_column)
        outcome = execute_run(spec, loaded[spec.path])  # type: ignore[arg-type]
        ok += outcome.status.value == "ok"
    return time.perf_counter() - start, ok


def run_ray(plan) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """The real path: loader tasks + one backtest task per run, gathered as they finish."""
    from actors.backtests.orchestrator import gather, submit_plan

    outcomes = []
    start = time.perf_counter()
    gather(submit_plan(plan.runs(), plan), on_outcome=outcomes.append)
    elapsed = time.perf_counter() - start
    return elapsed, sum(o.status.value == "ok" for o in outcomes)


def run_backtests_only(plan) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Data already parsed (in this process / in the object store): only the backtest
    tasks are timed, sequentially and through Ray."""
    import ray

    from actors.backtests.orchestrator import _backtest_task

    runs = plan.runs()
    loaded = {path: load_data(path, datetime_column=plan.datetime_column) for path in plan.files}
    refs = {path: ray.put(data) for path, data in loaded.items()}

    def sequential_runs() -> float:
        start = time.perf_counter()
        for spec in runs:
            execute_run(spec, loaded[spec.path])
        return time.perf_counter() - start

    sequential = at_worker_niceness(sequential_runs)
    start = time.perf_counter()
    ray.get([_backtest_task.remote(spec, refs[spec.path], True) for spec in runs])
    return sequential, time.perf_counter() - start


_POOL_DATA: dict[str, object] = {}


def _pool_init() -> None:
    import pyarrow

    pyarrow.set_cpu_count(1)  # one core per process, as in a Ray worker
    try:
        os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))
    except OSError:
        pass


def _pool_run(spec_and_column):  # type: ignore[no-untyped-def]
    spec, datetime_column = spec_and_column
    if spec.path not in _POOL_DATA:
        _POOL_DATA[spec.path] = load_data(spec.path, datetime_column=datetime_column)
    return execute_run(spec, _POOL_DATA[spec.path]).status.value == "ok"  # type: ignore[arg-type]


def run_pool(pool, plan) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """(e): the runs in a plain process pool, no Ray. Each process starts the batch with
    no parsed files (they are dropped first), like a Ray worker's first task of a batch."""
    pool.map(_pool_forget, range(pool._processes), chunksize=1)  # noqa: SLF001
    start = time.perf_counter()
    ok = sum(pool.imap_unordered(_pool_run, [(s, plan.datetime_column) for s in plan.runs()],
                                 chunksize=1))
    return time.perf_counter() - start, ok


def _pool_run_file(specs_and_column):  # type: ignore[no-untyped-def]
    specs, datetime_column = specs_and_column
    data = load_data(specs[0].path, datetime_column=datetime_column)
    return [execute_run(spec, data) for spec in specs]


def run_pool_by_file(pool, plan) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """(h): the runs in the plain process pool, one task per file (its parse and all its
    runs), whole outcomes sent back through the pool's pipe. Every file is parsed once,
    as in (a), and nothing waits between runs: the best a static split of this batch
    can do on these cores without Ray. It only balances when the files divide evenly
    over the cores (the default 4 files on 2 cores do)."""
    from actors.backtests.orchestrator import largest_files_first

    by_file: dict[str, list] = {}
    for spec in largest_files_first(plan.runs()):
        by_file.setdefault(spec.path, []).append(spec)
    start = time.perf_counter()
    ok = 0
    for outcomes in pool.imap_unordered(_pool_run_file, [(specs, plan.datetime_column)
                                                         for specs in by_file.values()], chunksize=1):
        ok += sum(o.status.value == "ok" for o in outcomes)
    return time.perf_counter() - start, ok


def _pool_forget(_: int) -> None:
    _POOL_DATA.clear()
    time.sleep(0.05)  # so every process takes one of these, not one process all


def run_ray_reloading(plan) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """The alternative design: every task parses its own CSV."""
    import ray

    @ray.remote(num_cpus=1)
    def load_and_run(spec, datetime_column):  # type: ignore[no-untyped-def]
        return execute_run(spec, load_data(spec.path, datetime_column=datetime_column))

    start = time.perf_counter()
    outcomes = ray.get([load_and_run.remote(s, plan.datetime_column) for s in plan.runs()])
    return time.perf_counter() - start, sum(o.status.value == "ok" for o in outcomes)


def _spin(loops: int) -> int:
    """CPU-bound pure Python: no data, no allocation to speak of."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def calibrate_spin(seconds_each: float) -> int:
    """Loops of ``_spin`` that take about ``seconds_each`` on this machine now."""
    start = time.perf_counter()
    _spin(200_000)
    return max(1, int(200_000 * seconds_each / max(time.perf_counter() - start, 1e-6)))


def cpu_bound_reference(tasks: int, loops: int) -> tuple[float, float]:
    """(f): ``tasks`` CPU-bound tasks of ``loops`` spins each, sequentially (in a thread at
    the workers' niceness, like the reference of (a)) and as Ray tasks; both times."""
    import ray

    def sequential() -> float:
        began = time.perf_counter()
        for _ in range(tasks):
            _spin(loops)
        return time.perf_counter() - began

    spin = ray.remote(num_cpus=1)(_spin)
    ray.get([spin.remote(1000) for _ in range(tasks)])  # warm the workers
    seq = at_worker_niceness(sequential)
    began = time.perf_counter()
    ray.get([spin.remote(loops) for _ in range(tasks)])
    return seq, time.perf_counter() - began


def plain_cpu_reference(pool, tasks: int, loops: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(g): (f) without Ray: the same spins sequentially (in a thread at the workers'
    niceness) and in the plain process pool of (e); both times. What the VM's cores give
    two plain processes right now, with nothing of LTS or Ray involved."""

    def sequential() -> float:
        began = time.perf_counter()
        for _ in range(tasks):
            _spin(loops)
        return time.perf_counter() - began

    seq = at_worker_niceness(sequential)
    began = time.perf_counter()
    pool.map(_spin, [loops] * tasks, chunksize=1)
    return seq, time.perf_counter() - began


def versus_ray(title: str, times: list[float], seq_times: list[float], t_ray: float, cores: int) -> str:
    """One line for a no-Ray alternative: its best time, its efficiency against the
    sequential reference (best times and median of pairs) and Ray's speed relative to it."""
    best = min(times)
    pairs = statistics.median(a / (cores * b) for a, b in zip(seq_times, times))
    return (f"{title}: {best:.2f} s (best of {len(times)}: {', '.join(f'{t:.2f}' for t in times)}), "
            f"parallel efficiency {min(seq_times) / (cores * best) * 100:.1f}% from the best times, "
            f"{pairs * 100:.1f}% median of pairs; Ray reaches {best / t_ray * 100:.1f}% of its speed "
            f"(best times)")


def task_overhead(path: Path, reps: int) -> tuple[float, float]:
    """Mean seconds of a 1,000-bar backtest called directly and through a Ray task."""
    import ray

    from actors.backtests.orchestrator import _backtest_task

    plan = build_plan(strategy=STRATEGY, files=[path], set_items=["fast=10", "slow=30"])
    spec = plan.runs()[0]
    data = load_data(str(path))
    ref = ray.put(data)
    for _ in range(5):  # warm both paths (imports, worker start)
        execute_run(spec, data, render_png=False)
        ray.get(_backtest_task.remote(spec, ref, False))
    direct, through_ray = [], []
    for _ in range(reps):
        _, t = timed(execute_run, spec, data, render_png=False)
        direct.append(t)
        _, t = timed(lambda: ray.get(_backtest_task.remote(spec, ref, False)))
        through_ray.append(t)
    return statistics.median(direct), statistics.median(through_ray)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=250_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--combos", type=int, default=4, help="values of 'fast' per file")
    parser.add_argument("--overhead_reps", type=int, default=40)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--address", default=None,
                        help="join a running cluster (e.g. one from `ray start --head`) instead "
                             "of starting a local one; --cpus is then the cluster's CPU count")
    parser.add_argument("--skip_reload", action="store_true", help="skip measurement (d)")
    parser.add_argument("--lower_driver", action="store_true",
                        help="lower this whole process (the driver too) to the Ray workers' niceness")
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions of (a)/(d)")
    args = parser.parse_args()

    import ray

    if args.lower_driver and hasattr(os, "nice"):
        # The setting before 2026-12-04: the driver competes with its own workers.
        os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))
    if args.address:
        ray.init(address=args.address, log_to_driver=False, configure_logging=False)
        cores = int(ray.cluster_resources().get("CPU", 1))
    else:
        cores = args.cpus
    with tempfile.TemporaryDirectory(prefix="lts-bench-") as tmp:
        folder = Path(tmp)
        files = []
        for i in range(args.files):
            path = folder / f"walk_{i}.csv"
            write_random_walk(path, args.bars, seed=1000 + i)
            files.append(path)
        small = folder / "small.csv"
        write_random_walk(small, 1_000, seed=7)
        fast_values = ",".join(str(v) for v in range(5, 5 + 3 * args.combos, 3))
        plan = build_plan(strategy=STRATEGY, files=files, grid_items=[f"fast={fast_values}"],
                          set_items=["slow=40", "stop_loss=30", "take_profit=60"])
        runs = len(plan.runs())
        total_bars = runs * args.bars
        print(f"{runs} backtests ({args.files} files x {args.combos} parameter sets) of "
              f"{args.bars:,} bars, strategy {STRATEGY}, {cores} cores")

        if not args.address:
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        try:
            # Warm up: imports in this process and in every Ray worker (not timed): one
            # small file per core, so every worker runs a loader task and backtests.
            smalls = []
            for i in range(cores):
                smalls.append(folder / f"small_{i}.csv")
                write_random_walk(smalls[-1], 1_000, seed=20 + i)
            warm = build_plan(strategy=STRATEGY, files=smalls, grid_items=["fast=2,4"])
            run_sequential(warm)
            for _ in range(2):
                run_ray(warm)

            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(cores, initializer=_pool_init)
            run_pool(pool, warm)

            # (f)'s tasks are as long as one run of (a): one untimed sequential pass
            # measures that (and warms this process's caches like the others).
            first, _ = run_sequential(plan)
            spin_loops = calibrate_spin(first / max(runs, 1))

            # Interleaved repetitions, best of each: on a shared machine the load drifts,
            # and the minimum is the figure least disturbed by other processes. (f) runs
            # in every repetition too, so (a) and its reference see the same machine.
            seq_times, ray_times, reload_times, pool_times, spins, plains = [], [], [], [], [], []
            by_file_times: list[float] = []
            for _ in range(args.reps):
                t, ok = run_sequential(plan)
                assert ok == runs, f"sequential: {ok} of {runs} runs succeeded"
                seq_times.append(t)
                t, ok = run_ray(plan)
                assert ok == runs, f"Ray: {ok} of {runs} runs succeeded"
                ray_times.append(t)
                if not args.address:
                    t, ok = run_pool(pool, plan)
                    assert ok == runs, f"process pool: {ok} of {runs} runs succeeded"
                    pool_times.append(t)
                    t, ok = run_pool_by_file(pool, plan)
                    assert ok == runs, f"process pool by file: {ok} of {runs} runs succeeded"
                    by_file_times.append(t)
                spins.append(cpu_bound_reference(runs, spin_loops))
                if not args.address:
                    plains.append(plain_cpu_reference(pool, runs, spin_loops))
                if not args.skip_reload:
                    t, ok = run_ray_reloading(plan)
                    assert ok == runs, f"Ray, re-reading: {ok} of {runs} runs succeeded"
                    reload_times.append(t)
            t_seq, t_ray = min(seq_times), min(ray_times)
            efficiency = t_seq / (cores * t_ray)
            print(f"(a) sequential, one process: {t_seq:8.2f} s  (best of {args.reps}: "
                  f"{', '.join(f'{t:.2f}' for t in seq_times)})")
            print(f"    Ray tasks on {cores} cores:   {t_ray:8.2f} s  (best of {args.reps}: "
                  f"{', '.join(f'{t:.2f}' for t in ray_times)})")
            pairwise = statistics.median(a / (cores * b) for a, b in zip(seq_times, ray_times))
            print(f"    speed-up {t_seq / t_ray:.2f}x, parallel efficiency {efficiency * 100:.1f}% "
                  f"from the best times, {pairwise * 100:.1f}% median of back-to-back pairs "
                  f"(target >= 90%)")

            if pool_times:
                print(versus_ray("(e) the same runs in a plain process pool, one task per run, no Ray",
                                 pool_times, seq_times, t_ray, cores))
            if by_file_times:
                print(versus_ray("(h) the pool with one task per file (each file parsed once, no wait "
                                 "between runs)", by_file_times, seq_times, t_ray, cores))
            pool.close()

            only = [run_backtests_only(plan) for _ in range(args.reps)]
            pair = statistics.median(a / (cores * b) for a, b in only)
            best_seq, best_ray = min(a for a, _ in only), min(b for _, b in only)
            print(f"    backtest tasks only (CSV already parsed): sequential {best_seq:.2f} s, "
                  f"Ray {best_ray:.2f} s, parallel efficiency {best_seq / (cores * best_ray) * 100:.1f}% "
                  f"from the best times, {pair * 100:.1f}% median of {args.reps} pairs")

            spin_seq, spin_ray = min(a for a, _ in spins), min(b for _, b in spins)
            spin_eff = spin_seq / (cores * spin_ray)
            spin_pair = statistics.median(a / (cores * b) for a, b in spins)
            # Per repetition: (a)'s efficiency over (f)'s, both measured within seconds.
            relative = statistics.median(
                (s_a / (cores * r_a)) / (s_f / (cores * r_f))
                for s_a, r_a, (s_f, r_f) in zip(seq_times, ray_times, spins))
            print(f"(f) {runs} CPU-bound pure-Python Ray tasks of {spin_seq / runs * 1e3:.0f} ms (no data), "
                  f"in the same repetitions: sequential {spin_seq:.2f} s, Ray {spin_ray:.2f} s, parallel "
                  f"efficiency {spin_eff * 100:.1f}% from the best times, {spin_pair * 100:.1f}% median of "
                  f"{args.reps} pairs: what these cores give today; (a) reaches "
                  f"{efficiency / spin_eff * 100:.1f}% of it from the best times, "
                  f"{relative * 100:.1f}% as the median of the repetitions' ratios")
            if plains:
                plain_seq, plain_par = min(a for a, _ in plains), min(b for _, b in plains)
                plain_pair = statistics.median(a / (cores * b) for a, b in plains)
                print(f"(g) the same spins in the plain process pool, no Ray: parallel efficiency "
                      f"{plain_seq / (cores * plain_par) * 100:.1f}% from the best times, "
                      f"{plain_pair * 100:.1f}% median of {args.reps} pairs: what the VM gives two "
                      f"plain processes today")

            direct, through_ray = task_overhead(small, args.overhead_reps)
            print(f"(b) 1,000-bar backtest direct: {direct * 1e3:7.2f} ms, through a Ray task: "
                  f"{through_ray * 1e3:7.2f} ms -> overhead {(through_ray - direct) * 1e3:.2f} ms "
                  f"per task (medians of {args.overhead_reps}; target < 20 ms)")
            print(f"(c) batch throughput through Ray: {total_bars / t_ray:,.0f} bars/s "
                  f"(sequential: {total_bars / t_seq:,.0f} bars/s)")
            if reload_times:
                t_reload = min(reload_times)
                print(f"(d) every task re-reading its CSV: {t_reload:8.2f} s, parallel efficiency "
                      f"{t_seq / (cores * t_reload) * 100:.1f}% (shared parse: {efficiency * 100:.1f}%)")
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"load average at the end: {load:.2f} on {os.cpu_count()} cores "
                  "(figures are only meaningful when it is below the core count)")
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
