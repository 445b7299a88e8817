"""Benchmark of the coordinator on a simulated Ray cluster: jobs/s against the local executor's, and the job
store's write rate.

    python bench/bench_ray_cluster.py [--jobs 300] [--nodes 4] [--slots 1] [--workers 2] [--store-jobs 2000]

1. Plans ``--jobs`` tiny jobs (1 camera x 2 frames, 16x16) and runs them with the ``test-noop`` backend (it links a
   cached video and writes the camera JSON: no rendering) through ``run_dataset``: first the local executor with
   ``--workers`` processes, then the Ray executor on a ``ray.cluster_utils.Cluster`` of ``--nodes`` raylets
   (``--slots`` job slots each, a custom ``render`` resource; the head, where the coordinator runs, takes no jobs).
   Everything but rendering is real: store claims with leases and outcomes, manifest -> RenderJob, share marker,
   temp folder, full verification, lease check, rename.
2. Measures the job store alone: ``take`` + ``finish`` of ``--store-jobs`` jobs one at a time (two transactions
   and one lease file per job: the slowest pattern) and in batches of 32 (what the coordinator does when many
   outcomes arrive together).

Prints jobs/s including start-up and in steady state (jobs after the first / first to last ``done``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_orchestration import paper_catalog, steady_rate

from render_jobs.planner import plan_dataset
from render_jobs.runner import run_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore


def store_rate(root: Path, n: int, batch: int) -> tuple[float, float]:
    """(jobs/s, transactions/s) of take + finish on a fresh store of ``n`` jobs, ``batch`` jobs per transaction."""
    root.mkdir(parents=True)
    with JobStore(root / "jobs.sqlite") as store:
        store.add_jobs([(f"j{i:06d}", i, f"train/x/scene{i}") for i in range(n)])
        ids = [f"j{i:06d}" for i in range(n)]
        t = time.perf_counter()
        for k in range(0, n, batch):
            got = store.take(ids[k:k + batch], started=True)
            store.finish([(j, 1.0, "node-a") for j in got], [])
        dt = time.perf_counter() - t
        assert store.counts()["done"] == n
    tx = 2 * ((n + batch - 1) // batch)
    return n / dt, tx / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--slots", type=int, default=1, help="job slots (CPUs and `render` units) per node")
    ap.add_argument("--workers", type=int, default=2, help="local executor processes")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--store-jobs", type=int, default=2000)
    args = ap.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    root = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    cat = paper_catalog()
    settings = RenderSettings(width=16, height=16, frames=2, samples=1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, ray {ray.__version__}, load average {os.getloadavg()[0]:.1f} at start")
    results: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
    cluster = None
    try:
        for rep in range(args.repeat):
            ds = root / f"local{rep}"
            plan_dataset(cat, args.jobs, 2, ds, settings, n_cameras=1)
            t = time.perf_counter()
            s = run_dataset(ds, "test-noop", workers=args.workers, progress=False)
            assert s.counts["done"] == args.jobs, s.counts
            results["local"].append((args.jobs / (time.perf_counter() - t), steady_rate(ds)))
            print(f"  local run {rep + 1}: {results['local'][-1][0]:.0f} jobs/s incl. start, "
                  f"{results['local'][-1][1]:.0f} steady")

        t = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(args.nodes):
            cluster.add_node(num_cpus=args.slots, resources={"render": float(args.slots)})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        print(f"  cluster of {args.nodes} nodes x {args.slots} slots up in {time.perf_counter() - t:.1f} s")
        for rep in range(args.repeat):
            ds = root / f"ray{rep}"
            plan_dataset(cat, args.jobs, 2, ds, settings, n_cameras=1)
            t = time.perf_counter()
            s = run_dataset(ds, "test-noop", executor="ray", address=cluster.address, progress=False,
                            ray_resources={"render": 1.0})
            assert s.counts["done"] == args.jobs, s.counts
            results["ray"].append((args.jobs / (time.perf_counter() - t), steady_rate(ds)))
            with JobStore.for_dataset(ds) as store:
                spread = Counter(n for (n,) in store.conn.execute("SELECT node FROM events WHERE event='done'"))
            print(f"  ray run {rep + 1}: {results['ray'][-1][0]:.0f} jobs/s incl. start, "
                  f"{results['ray'][-1][1]:.0f} steady; jobs per node {sorted(spread.values())}")
    finally:
        if cluster is not None:
            ray.shutdown()
            cluster.shutdown()
    for name, rows in results.items():
        print(f"{name}: median {statistics.median(r[0] for r in rows):.0f} jobs/s incl. start-up, "
              f"{statistics.median(r[1] for r in rows):.0f} jobs/s steady state "
              f"({args.jobs} jobs x 1 camera x 2 frames, 16x16)")
    for batch in (1, 32):
        jobs_s, tx_s = store_rate(root / f"store{batch}", args.store_jobs, batch)
        print(f"job store, take + finish, {batch} job(s) per transaction: {jobs_s:.0f} jobs/s, "
              f"{tx_s:.0f} transactions/s ({args.store_jobs} jobs, one lease file per job)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
