"""What running the book's artifact graph on an engine costs, beside the plain serial path.

    python benchmarks/plan_overhead.py [--tasks 50] [--repeat 3] [--engines dask ray] [--sleep 1.0]
    python benchmarks/plan_overhead.py --smoke unlearnable-examples     (also a real chapter plan, cold)

1. The engines alone, on 2 workers of one thread (one process each): start-up, the first task that
   imports torch, per-task latency on a chain and on a fan of `--tasks` no-op tasks, resident memory
   of the driver and everything it started, close. Ray is measured only when it is installed
   (`pip install ray`; the project depends on Dask only).
2. plan.run on a graph of sleeping tasks (a diamond + independent ones, `--sleep` seconds each) at
   workers=1 (serial, no cluster) and workers=2 (Dask): wall time against the ideal (work / workers,
   or the critical path), and the engine's own start + close.
3. --smoke CHAPTER...: `plan.prepare` of those chapters on the smoke profile from a cold private store,
   workers=1 then workers=2 (each its own store), wall times and engine overhead.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _tree_rss_mb() -> tuple[float, int]:
    import psutil

    me = psutil.Process()
    procs = [me] + me.children(recursive=True)
    rss = 0
    for p in procs:
        try:
            rss += p.memory_info().rss
        except psutil.Error:
            pass
    return rss / 2**20, len(procs)


def noop(x=None, *rest):
    return 1


def torch_task(x=None):
    import torch

    torch.set_num_threads(1)
    return float(torch.ones(4).sum())


def bench_dask(n: int) -> dict:
    import logging

    t0 = time.perf_counter()
    from distributed import Client, LocalCluster

    imported = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    start = time.perf_counter() - t0
    t = time.perf_counter()
    client.submit(torch_task, pure=False).result()
    first = time.perf_counter() - t
    t = time.perf_counter()
    f = None
    for i in range(n):
        f = client.submit(noop, f, key=f"chain-{i}")
    f.result()
    chain = (time.perf_counter() - t) / n
    t = time.perf_counter()
    client.gather([client.submit(noop, i, key=f"fan-{i}") for i in range(n)])
    fan = (time.perf_counter() - t) / n
    rss, procs = _tree_rss_mb()
    t = time.perf_counter()
    client.close()
    cluster.close()
    return {"import_s": imported, "start_s": start, "first_torch_task_s": first, "chain_ms_per_task": 1e3 * chain,
            "fan_ms_per_task": 1e3 * fan, "rss_mb": rss, "processes": procs, "close_s": time.perf_counter() - t}


def bench_ray(n: int) -> dict:
    t0 = time.perf_counter()
    import ray

    imported = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rnoop, rtorch = ray.remote(num_cpus=1)(noop), ray.remote(num_cpus=1)(torch_task)
    start = time.perf_counter() - t0
    t = time.perf_counter()
    ray.get(rtorch.remote())
    first = time.perf_counter() - t
    t = time.perf_counter()
    f = None
    for _ in range(n):
        f = rnoop.remote(f)
    ray.get(f)
    chain = (time.perf_counter() - t) / n
    t = time.perf_counter()
    ray.get([rnoop.remote(i) for i in range(n)])
    fan = (time.perf_counter() - t) / n
    rss, procs = _tree_rss_mb()
    t = time.perf_counter()
    ray.shutdown()
    return {"import_s": imported, "start_s": start, "first_torch_task_s": first, "chain_ms_per_task": 1e3 * chain,
            "fan_ms_per_task": 1e3 * fan, "rss_mb": rss, "processes": procs, "close_s": time.perf_counter() - t}


def _engine_in_subprocess(engine: str, n: int) -> dict:
    """Each measurement in a fresh interpreter (imports and memory are not shared between them)."""
    import subprocess

    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); import plan_overhead as b; "
            "import cloudpickle; cloudpickle.register_pickle_by_value(b); "  # workers cannot import this file
            f"print(json.dumps(b.bench_{engine}({n})))")
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return "ok"


def sleep_graph(sleep: float):
    """a -> (b, c) -> d, plus e, f, g, h alone: 8 tasks, work 8 x sleep, critical path 3 x sleep."""
    from unlearnability.book import plan

    p = plan.Plan("smoke")
    deps = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": (), "f": (), "g": (), "h": ()}
    for name, ds in deps.items():
        p.add(plan.Task(f"@bench {name}", "bench", f"sleep {name}", functools.partial(sleeper, sleep),
                        tuple(f"@bench {d}" for d in ds)), "bench")
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engines", nargs="*", default=["dask", "ray"])
    ap.add_argument("--sleep", type=float, default=1.0)
    ap.add_argument("--smoke", nargs="*", default=None, metavar="CHAPTER",
                    help="also prepare these chapters on the smoke profile, cold, workers=1 vs 2 (none named: all)")
    args = ap.parse_args()

    print(f"machine: {len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.2f}\n")
    print(f"1. engines alone: 2 workers x 1 thread, {args.tasks} no-op tasks, median of {args.repeat} fresh runs")
    for engine in args.engines:
        try:
            __import__({"dask": "distributed", "ray": "ray"}[engine])
        except ImportError:
            print(f"  {engine}: not installed, skipped")
            continue
        runs = [_engine_in_subprocess(engine, args.tasks) for _ in range(args.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"  {engine:5s} import {med['import_s']:.2f}s, start {med['start_s']:.2f}s, first torch task "
              f"{med['first_torch_task_s']:.2f}s, chain {med['chain_ms_per_task']:.1f} ms/task, fan "
              f"{med['fan_ms_per_task']:.1f} ms/task, {med['rss_mb']:.0f} MB resident in {med['processes']:.0f} "
              f"processes, close {med['close_s']:.2f}s")

    import cloudpickle

    from unlearnability.book import plan

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    print(f"\n2. plan.run on 8 sleeping tasks of {args.sleep:g}s (work {8 * args.sleep:g}s, critical path "
          f"{3 * args.sleep:g}s)")
    with tempfile.TemporaryDirectory() as store:
        os.environ["UNLEARN_HOME"] = store
        for workers in (1, 2):
            walls, engine = [], []
            for _ in range(args.repeat):
                s = plan.run(sleep_graph(args.sleep), workers, progress=False)
                assert s.ok, s.errors()
                walls.append(s.wall_seconds)
                engine.append(s.engine_seconds)
            ideal = max(8 * args.sleep / workers, 3 * args.sleep)
            wall = statistics.median(walls)
            print(f"  workers={workers} ({'serial, no cluster' if workers == 1 else 'dask'}): wall {wall:.2f}s "
                  f"(ideal {ideal:.2f}s, overhead {wall - ideal:+.2f}s; cluster start + close "
                  f"{statistics.median(engine):.2f}s)")

    if args.smoke is not None:
        chapters = args.smoke or None
        print(f"\n3. plan.prepare({chapters or 'all chapters'}, 'smoke') from a cold store")
        for workers in (1, 2):
            with tempfile.TemporaryDirectory(prefix=f"plan-smoke-w{workers}-") as store:
                t = time.perf_counter()
                s = plan.prepare(chapters, "smoke", {}, workers=workers, store=store, progress=False)
                wall = time.perf_counter() - t
                work = sum(r["seconds"] or 0 for r in s.tasks)
                print(f"  workers={workers}: {wall:.0f}s wall ({s.engine}; engine {s.engine_seconds:.1f}s); "
                      f"{sum(r['status'] == 'done' for r in s.tasks)} tasks, {len(s.made())} artifacts made, "
                      f"task seconds summed {work:.0f}s; {'ok' if s.ok else 'FAILED: ' + s.errors()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
