"""Measure the camera structure of written datasets (issue 13's table) for both camera profiles.

Writes ``--scenes`` scenes (default 2,000 = 20,000 cameras) per profile with ``multicam sample-cameras``, then
reads the files back (``cameras/camera_extrinsics.json`` for the poses; ``scene.json`` only for the character's
aim point and height, the camera set and the recorded types and speed exponents) and prints one Markdown table:
start poses, roles, translations, arcs, variable speed, body clearance.

    python bench/check_camera_profiles.py --scenes 2000 --out /tmp/mc_profiles
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from exporters.camera_json import read_camera_json

PROFILES = ("released", "independent")
WORLD_AXIS_TOL = 1e-6
AIM_TOL_M = 0.06
SENSOR_MM = 23.76


def _q(a: np.ndarray, lo: float = 5, hi: float = 95, fmt: str = "{:.2f}") -> str:
    if not len(a):
        return "-"
    return f"{fmt.format(np.percentile(a, lo))}-{fmt.format(np.percentile(a, hi))}"


def _read(folder: Path, n: int) -> dict[str, Any]:
    poses, aims, heights, grounds, focal, kinds, a_values = [], [], [], [], [], [], []
    for k in range(1, n + 1):
        p, _ = read_camera_json(folder / f"scene{k}" / "cameras" / "camera_extrinsics.json")
        rec = json.loads((folder / f"scene{k}" / "scene.json").read_text())
        poses.append(p)
        aims.append(rec["character"]["aim_point_cm"])
        grounds.append(rec["character"]["location_cm"])
        heights.append(rec["character"]["height_m"])
        focal.append(rec["camera_set"]["focal_mm"])
        cams = list(rec["cameras"].values())
        kinds.append([c["trajectory"] for c in cams])
        a_values += [c["speed"]["a"] for c in cams if c["speed"]["mode"] == "variable"]
    return {"poses": np.stack(poses), "aim": np.asarray(aims) / 100.0, "ground": np.asarray(grounds) / 100.0,
            "height": np.asarray(heights), "focal": np.asarray(focal), "kinds": np.asarray(kinds),
            "a": np.asarray(a_values)}


def _segment_axis_distance(a: np.ndarray, b: np.ndarray, h: np.ndarray, samples: int = 16) -> np.ndarray:
    """Distance of segments a->b (relative to the ground point) to the body axis, by dense sampling."""
    t = np.linspace(0.0, 1.0, samples + 1)
    best = np.full(a.shape[:-1], np.inf)
    for ti in t:
        p = a + ti * (b - a)
        dz = p[..., 2] - np.clip(p[..., 2], 0.0, h)
        best = np.minimum(best, np.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2 + dz**2))
    return best


def measure(d: dict[str, Any]) -> dict[str, str]:
    poses = d["poses"]  # (S, F, C, 4, 4)
    s_n, f_n, c_n = poses.shape[:3]
    loc = poses[..., 3, :3] / 100.0
    fwd = poses[..., 0, :3]
    rot = poses[..., :3, :3]
    aim = d["aim"][:, None, None, :]
    rel = loc - d["ground"][:, None, None, :]
    h = d["height"][:, None, None]
    out: dict[str, str] = {}

    shared = np.all(poses[:, 0] == poses[:, 0, :1], axis=(1, 2, 3))
    start = loc[:, 0]
    pair = np.linalg.norm(start[:, :, None] - start[:, None, :], axis=-1)[:, *np.triu_indices(c_n, 1)].ravel()
    out["start: scenes whose cameras share the frame-0 pose"] = f"{shared.mean():.1%}"
    out["start: distance between cameras of a scene (5-95 %)"] = _q(pair, fmt="{:.1f}") + " m"

    moved = np.linalg.norm(loc - loc[:, :1], axis=-1).max(1)  # (S, C)
    turned = np.abs(rot - rot[:, :1]).max(axis=(1, 3, 4))  # (S, C)
    fwd_xy = np.degrees(np.arctan2(fwd[..., 1], fwd[..., 0]))
    pitch = np.degrees(np.arcsin(np.clip(fwd[..., 2], -1, 1)))
    yaw_turn = np.abs((fwd_xy[:, -1] - fwd_xy[:, 0] + 180) % 360 - 180)
    pitch_turn = np.abs(pitch[:, -1] - pitch[:, 0])
    fixed = moved < 1e-6
    pans = fixed[:, 0] & (np.abs(pitch[:, :, 0] - pitch[:, :1, 0]).max(1) < 1e-6)
    tilts = fixed[:, 1] & (np.abs(yaw_turn[:, 1]) < 1e-6)
    static = fixed & (turned < 1e-9)
    out["roles: cam01 pans (position and pitch fixed): share, angle 5-95 %"] = (
        f"{pans.mean():.1%}, " + _q(yaw_turn[pans, 0], fmt="{:.1f}") + " deg")
    out["roles: cam02 tilts (position and yaw fixed): share, angle 5-95 %"] = (
        f"{tilts.mean():.1%}, " + _q(pitch_turn[tilts, 1], fmt="{:.1f}") + " deg")
    out["roles: cam10 static / cam03-cam09 moving"] = f"{static[:, 9].mean():.1%} / {(~fixed[:, 2:9]).mean():.1%}"

    # straight moves: every displacement parallel to the last one
    disp = loc - loc[:, :1]
    end = disp[:, -1]
    length = np.linalg.norm(end, axis=-1)
    cross = np.linalg.norm(np.cross(disp, end[:, None]), axis=-1).max(1)
    straight = ~fixed & (cross <= 1e-6 * np.maximum(length, 1e-9))
    world = straight & (np.abs(end).max(-1) >= (1 - WORLD_AXIS_TOL) * length)
    v = aim - loc
    off = np.linalg.norm(v - np.einsum("sfci,sfci->sfc", v, fwd)[..., None] * fwd, axis=-1)  # (S, F, C)
    aimed = off.max(1) <= AIM_TOL_M
    keeps = turned < 1e-9
    kinds = d["kinds"]
    trans = kinds == "translation"
    # the character in the last frame: the aim point projects inside the (square) image
    w2c_z = np.einsum("sci,sci->sc", v[:, -1], fwd[:, -1])
    right, up = poses[:, -1, :, 1, :3], poses[:, -1, :, 2, :3]
    half = SENSOR_MM / (2 * d["focal"])[:, None]
    inside = (w2c_z > 0) & (np.abs(np.einsum("sci,sci->sc", v[:, -1], right)) <= half * w2c_z) & (
        np.abs(np.einsum("sci,sci->sc", v[:, -1], up)) <= half * w2c_z)
    out["translations: along a world axis / straight, other axis"] = (
        f"{world[trans].mean():.1%} / {(straight & ~world)[trans].mean():.1%}")
    out["translations: length 5-95 % (min-max)"] = (
        _q(length[trans]) + f" m ({length[trans].min():.2f}-{length[trans].max():.2f})")
    mov = ~fixed
    out["moving cameras: aim point on the optical axis at every frame (6 cm) / keep orientation"] = (
        f"{aimed[mov].mean():.1%} / {keeps[mov].mean():.1%}")
    out["translations: character in the last frame"] = f"{inside[trans].mean():.1%}"
    arcs = kinds == "arc"
    hor = np.hypot(rel[..., 0], rel[..., 1])
    circular = (np.abs(hor - hor[:, :1]).max(1) < 1e-6) & arcs
    out["arcs: straight chords / circular (constant distance)"] = (
        f"{(straight & arcs).sum() / max(arcs.sum(), 1):.1%} / {circular.sum() / max(arcs.sum(), 1):.1%}")
    a = d["a"]
    out["variable speed: share of non-static cameras, a 5-95 % (min-max)"] = (
        f"{len(a) / max(int((kinds != 'static').sum()), 1):.1%}, " + _q(a) + f" ({a.min():.2f} .. {a.max():.2f})")

    seg = _segment_axis_distance(rel[:, :-1], rel[:, 1:], h)  # (S, F-1, C)
    body = seg.min(1)
    to_aim = np.linalg.norm(v, axis=-1)
    out["clearance: cameras within 0.5 m / 0.25 m of the body (at or between frames)"] = (
        f"{int((body <= 0.5).sum())} / {int((body <= 0.25).sum())} of {s_n * c_n}")
    out["clearance: cameras ending within 0.1 m of the aim point; nearest approach to it"] = (
        f"{int((to_aim[:, -1] <= 0.1).sum())}; {to_aim.min():.2f} m")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/multicam_check_profiles"))
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    args = ap.parse_args()
    rows: dict[str, dict[str, str]] = {}
    for prof in PROFILES:
        folder = args.out / prof
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "multicam_app", "sample-cameras", "--scenes", str(args.scenes),
                        "--seed", str(args.seed), "--out", str(folder), "--camera-profile", prof, "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL)
        t_write = time.perf_counter() - t0
        rows[prof] = measure(_read(folder, args.scenes))
        print(f"{prof}: wrote {args.scenes} scenes in {t_write:.1f} s", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  machine: {platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}; {args.scenes} scenes x 10 cameras x 81 "
          f"frames per profile, seed {args.seed}")
    print()
    print("| measured from the written files | released | independent |")
    print("|---|---|---|")
    for key in rows[PROFILES[0]]:
        print(f"| {key} | {rows['released'][key]} | {rows['independent'][key]} |")


if __name__ == "__main__":
    main()
