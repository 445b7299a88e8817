"""Render a contact sheet of the built-in demo assets: docs/contact_sheet.png.

Rows: the three demo environments (each with another character and animation), two cameras each;
columns: frames 0, 20, 40, 60, 80 of the 81-frame clip (the job renders only those five instants:
its frame rate is divided by 20 so that the animation time of column k is 20 k / 15 s).

    python bench/contact_sheet.py [--out docs/contact_sheet.png] [--size 256] [--samples 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from exporters.video import read_video_frames
from render_jobs.blender.calibration import job_from_poses
from render_jobs.blender_backend import BlenderBackend
from render_jobs.execute import render_scene
from trajectory.sampler import sample_scene

ROWS = [  # environment, character, height, animation, seed, radius
    ("plaza", "mannequin_slim", 1.80, "walk", 1, 5.0),
    ("park", "mannequin_stocky", 1.66, "dance", 2, 3.0),
    ("hall", "mannequin_athletic", 1.90, "jump", 3, 5.0),
    ("plaza", "mannequin_stocky", 1.66, "wave", 4, 3.0),
]
STEP = 20
CAMS = (0, 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs/contact_sheet.png"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=16)
    args = ap.parse_args()
    backend = BlenderBackend()
    tiles = []
    t0 = time.perf_counter()
    for env, char, height, anim, seed, radius in ROWS:
        smp = sample_scene(seed, 1, n_cameras=10, frames=81, radius_m=radius, character_height_m=height)
        poses = np.asarray(smp.poses_ue)[list(CAMS), ::STEP]
        job = job_from_poses(poses, focal_mm=smp.focal_mm, aperture=smp.aperture, environment=f"builtin:{env}",
                             character=f"builtin:{char}", animation=f"builtin:{anim}", height_m=height,
                             yaw_deg=37.0 * seed, seed=seed, width=args.size, height=args.size,
                             samples=args.samples, fps=15.0 / STEP)
        with tempfile.TemporaryDirectory() as tmp:
            render_scene(backend, job, Path(tmp))
            for c in range(len(CAMS)):
                frames = read_video_frames(Path(tmp) / "videos" / f"cam{c + 1:02d}.mp4")
                row = np.concatenate(list(frames), axis=1)
                label = f"{env} / {char} / {anim} / cam{CAMS[c] + 1:02d} f{smp.focal_mm:g}mm"
                cv2.putText(row, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(row, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(row)
        print(f"{env}: {backend.last_timings}", flush=True)
    sheet = np.concatenate(tiles, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
