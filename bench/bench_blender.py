"""Benchmark of the Blender backend: scene build, render seconds per camera-frame, encode time.

Renders a few frames of every demo environment (the first cameras of a sampled scene, the
animation at its real speed) and extrapolates to a full MultiCamVideo scene (10 cameras x 81
frames). Reports wall seconds and CPU seconds (all cores of this process: the per-core cost).

    python bench/bench_blender.py --size 256 --frames 4 --cameras 10 --samples 8
    python bench/bench_blender.py --size 1280 --frames 2 --cameras 1 --samples 32 --envs plaza
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from render_jobs.blender.calibration import job_from_poses
from render_jobs.blender_backend import BlenderBackend
from render_jobs.execute import render_scene
from trajectory.sampler import sample_scene

ENVS = {"plaza": ("mannequin_slim", 1.8, "walk"), "park": ("mannequin_stocky", 1.66, "dance"),
        "hall": ("mannequin_athletic", 1.9, "jump")}
FULL_CAMERA_FRAMES = 810


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--envs", default="plaza,park,hall")
    ap.add_argument("--json", type=Path, default=None, help="append one JSON line per environment here")
    args = ap.parse_args()
    backend = BlenderBackend()
    print(f"# blender bench: {args.size}x{args.size}, {args.samples} samples, {args.cameras} cameras x "
          f"{args.frames} frames, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| env | build s | render s/cam-frame (wall) | CPU s/cam-frame | encode s/cam-frame | "
          "full scene wall (est.) | build % | encode % of render |")
    print("|---|---|---|---|---|---|---|---|")
    for env in args.envs.split(","):
        char, height, anim = ENVS[env]
        smp = sample_scene(1, 1, n_cameras=args.cameras, frames=81, character_height_m=height)
        poses = np.asarray(smp.poses_ue)[:, : args.frames]
        job = job_from_poses(poses, focal_mm=smp.focal_mm, aperture=smp.aperture, environment=f"builtin:{env}",
                             character=f"builtin:{char}", animation=f"builtin:{anim}", height_m=height,
                             width=args.size, height=args.size, samples=args.samples)
        with tempfile.TemporaryDirectory() as tmp:
            c0 = os.times()
            t0 = time.perf_counter()
            render_scene(backend, job, Path(tmp))
            wall = time.perf_counter() - t0
            c1 = os.times()
        tm = backend.last_timings
        n = tm["camera_frames"]
        cpu = (c1.user + c1.system - c0.user - c0.system)
        per = tm["render_s"] / n
        enc = tm["encode_s"] / n
        cpu_per = (cpu - tm["build_s"]) / n  # build is single-threaded python; close enough
        full = tm["build_s"] + FULL_CAMERA_FRAMES * (per + enc)
        print(f"| {env} | {tm['build_s']:.2f} | {per:.3f} | {cpu_per:.3f} | {enc:.4f} | {full / 60:.1f} min | "
              f"{100 * tm['build_s'] / full:.2f} | {100 * enc / per:.2f} |", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps({"env": env, "size": args.size, "samples": args.samples, "wall_s": wall,
                                     "cpu_s": cpu, **tm}) + "\n")


if __name__ == "__main__":
    main()
