"""Benchmark: sample and write the paper-scale camera set (13,600 scenes x 10 cameras x 81 frames).

Measures (1) sampling alone (no I/O), vectorised over chunks of scenes, and (2) the full
``multicam sample-cameras`` work: sampling + camera_extrinsics.json + scene.json for every scene.
Reports wall time, peak RSS and output size. Targets (issue 2): total < 60 s and sampling < 5 s on one core.

    python bench/bench_sampling.py --scenes 13600 --out /tmp/mc_bench [--camera-profile independent]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import time
from datetime import date
from pathlib import Path

from tqdm import tqdm

from exporters.scene_files import write_scene_cameras
from trajectory.sampler import sample_scenes

CHUNK = 256


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=13600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--out", type=Path, default=Path("/tmp/multicam_bench_sampling"))
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    ap.add_argument("--sample-only", action="store_true", help="time the sampling pass only (no files)")
    ap.add_argument("--camera-profile", default="released", choices=("released", "independent"))
    args = ap.parse_args()

    load = os.getloadavg()[0]
    kw = {"frames": args.frames, "camera_profile": args.camera_profile}
    sample_scenes(args.seed, range(1, 9), **kw)  # warm-up (imports, caches)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(1, args.scenes + 1, CHUNK):
        sample_scenes(args.seed, range(start, min(start + CHUNK, args.scenes + 1)), **kw)
    t_sample, c_sample = time.perf_counter() - t0, time.process_time() - c0

    if args.sample_only:
        print(f"scenes: {args.scenes} x 10 cameras x {args.frames} frames, camera profile {args.camera_profile}; "
              f"load average at start: {load:.2f}")
        print(f"sampling only (no I/O): {t_sample:.2f} s wall, {c_sample:.2f} s CPU "
              f"({args.scenes / t_sample:.0f} scenes/s)")
        return
    shutil.rmtree(args.out, ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    with tqdm(total=args.scenes, unit="scene", mininterval=2.0) as bar:
        for start in range(1, args.scenes + 1, CHUNK):
            batch = sample_scenes(args.seed, range(start, min(start + CHUNK, args.scenes + 1)), **kw)
            for sc in batch.scenes:
                write_scene_cameras(sc, args.out / f"scene{sc.scene_index}", durable=False)
                bar.update(1)
    t_total, c_total = time.perf_counter() - t0, time.process_time() - c0
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    print(f"date: {date.today()}  machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores visible, python {platform.python_version()}")
    print(f"scenes: {args.scenes} x 10 cameras x {args.frames} frames, camera profile {args.camera_profile}")
    print(f"load average at start: {load:.2f}")
    print(f"sampling only (no I/O): {t_sample:.2f} s wall, {c_sample:.2f} s CPU "
          f"({args.scenes / t_sample:.0f} scenes/s)")
    print(f"sample + write JSON:    {t_total:.2f} s wall, {c_total:.2f} s CPU  ({args.scenes / t_total:.0f} scenes/s), "
          f"{size / 2**20:.0f} MiB written")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
