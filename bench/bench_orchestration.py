"""Benchmark of the job machinery (no rendering): planning at paper scale and local-executor throughput.

    python bench/bench_orchestration.py [--jobs 1000] [--workers 2] [--frames 81] [--size 16]

1. Plans 13,600 scenes from a synthetic catalog at the paper's scale (37 environments, 66 characters,
   93 animations) and reports the time and the usage spread.
2. Runs ``--jobs`` jobs through ``multicam render``'s machinery (``run_dataset``, local executor) with
   the ``test-noop`` backend, which renders nothing: it links a cached tiny video per camera and writes
   the camera JSON. Everything else is the real path: job store claims and outcomes, manifest ->
   RenderJob (trajectory sampler), temp folder, full verification (every video decoded, camera JSON
   compared with the plan), atomic rename. Reports jobs/s (target >= 200).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from render_jobs.planner import plan_dataset
from render_jobs.runner import run_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore
from scene_catalog.compose import compose_scenes, usage_spread
from scene_catalog.models import Catalog


def paper_catalog() -> Catalog:
    skel = ["mannequin", "quadruped"]
    sizes = ["small", "medium", "large", "huge"]
    return Catalog.model_validate({
        "environments": [{"id": f"env{i:02d}", "asset": f"/Game/Maps/E{i}.E{i}", "size": sizes[i % 4],
                          "anchors": [{"location_cm": [300.0 * j, 100.0 * i, 0.0], "free_radius_m": 10}
                                      for j in range(1 + i % 3)]} for i in range(37)],
        "characters": [{"id": f"char{i:02d}", "asset": f"/Game/C/C{i}", "height_m": 1.5 + i / 100,
                        "skeleton": skel[i % 2]} for i in range(66)],
        "animations": [{"id": f"anim{i:02d}", "asset": f"/Game/A/A{i}", "skeleton": skel[i % 2],
                        "length_frames": 60 + 3 * i, "fps": 30, "loopable": i % 3 == 0} for i in range(93)],
    })


def steady_rate(ds: Path) -> float:
    """Jobs finished after the first one / time from the first to the last recorded ``done`` (jobs/s)."""
    with JobStore.for_dataset(ds) as store:
        t0, t1 = store.conn.execute("SELECT MIN(finished_at), MAX(finished_at) FROM jobs").fetchone()
        n_after_first = store.conn.execute("SELECT COUNT(*) FROM jobs WHERE finished_at > ?", (t0,)).fetchone()[0]
    return float(n_after_first / (t1 - t0)) if t1 > t0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--size", type=int, default=16, help="video width = height (pixels)")
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-plan", action="store_true")
    args = ap.parse_args()
    cat = paper_catalog()
    root = Path(tempfile.mkdtemp(prefix="bench_orch_"))
    try:
        print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
        if not args.skip_plan:
            t = time.perf_counter()
            draws = compose_scenes(cat, 13_600, seed=1)
            t_compose = time.perf_counter() - t
            t = time.perf_counter()
            plan_dataset(cat, 13_600, 1, root / "paper")
            t_plan = time.perf_counter() - t
            print(f"compose 13,600 scenes: {t_compose:.2f} s")
            print(f"plan 13,600 scenes (compose + scene-level sampler draws + manifest + job store): {t_plan:.2f} s")
            for s in usage_spread(cat, draws):
                print(f"  {s}")

        settings = RenderSettings(width=args.size, height=args.size, frames=args.frames, samples=1)
        shape = (f"{args.jobs} jobs x {args.cameras} cameras x {args.frames} frames ({args.size}x{args.size}), "
                 f"{args.workers} workers")
        walls, steadies = [], []
        for rep in range(args.repeat):
            ds = root / f"noop{rep}"
            plan_dataset(cat, args.jobs, 2, ds, settings, n_cameras=args.cameras)
            t = time.perf_counter()
            summary = run_dataset(ds, "test-noop", workers=args.workers, progress=False)
            wall = time.perf_counter() - t
            assert summary.counts["done"] == args.jobs, summary.counts
            walls.append(args.jobs / wall)
            steadies.append(steady_rate(ds))
            print(f"  run {rep + 1}: {wall:.2f} s wall -> {walls[-1]:.0f} jobs/s incl. worker start; "
                  f"{steadies[-1]:.0f} jobs/s steady state")
        print(f"local executor, test-noop backend, {shape}, full verification: median "
              f"{statistics.median(walls):.0f} jobs/s incl. worker start, {statistics.median(steadies):.0f} jobs/s "
              "steady state")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
