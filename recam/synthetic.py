"""A small synthetic MultiCamVideo-layout dataset for tests and demos (no renderer needed).

Cameras come from the real trajectory sampler (:func:`trajectory.sampler.sample_scene`); each frame
is a splat rendering, through :func:`multicam.conventions.project_points_ue`, of a coloured ground
grid and a turning, textured column at the character's place, so every camera sees the same moving
scene from its own pose. Files are written with the real writers (``exporters``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, write_camera_json
from exporters.video import encode_mp4
from multicam.conventions import camera_set_folder, intrinsics_matrix, project_points_ue
from multicam.io import atomic_write_json


def _world_points(rng: np.random.Generator, frames: int) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """Points ``(F, N, 3)`` UE cm and colours ``(N, 3)``: a static ground grid and a turning column."""
    g = np.linspace(-600.0, 600.0, 25)
    gx, gy = np.meshgrid(g, g)
    ground = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], -1)
    ground_col = np.where(
        ((gx.ravel() // 100 + gy.ravel() // 100) % 2 == 0)[:, None],
        rng.integers(40, 120, 3),
        rng.integers(140, 230, 3),
    ).astype(np.uint8)
    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    hz = np.linspace(10.0, 180.0, 12)
    a, z = np.meshgrid(ang, hz)
    spin = np.linspace(0, np.pi, frames)[:, None]
    col_pts = np.stack(
        [
            30 * np.cos(a.ravel() + spin),
            30 * np.sin(a.ravel() + spin),
            np.broadcast_to(z.ravel(), (frames, a.size)),
        ],
        -1,
    )
    col_col = (
        127
        + 120
        * np.stack(
            [np.sin(3 * a.ravel()), np.cos(2 * a.ravel() + z.ravel() / 40), np.sin(z.ravel() / 30)], -1
        )
    ).astype(np.uint8)
    pts = np.concatenate([np.broadcast_to(ground, (frames,) + ground.shape), col_pts], axis=1)
    return pts, np.concatenate([ground_col, col_col])


def render_points(
    points_cm: NDArray[np.float64],
    colours: NDArray[np.uint8],
    poses_ue: NDArray[np.float64],
    focal_mm: float,
    width: int,
    height: int,
) -> NDArray[np.uint8]:
    """Splat ``points (F, N, 3)`` seen by ``poses (F, 4, 4)`` -> RGB ``(F, H, W, 3)``, far to near."""
    k = intrinsics_matrix(focal_mm, width, height)
    uv, depth = project_points_ue(points_cm, poses_ue, k)
    n_f = poses_ue.shape[0]
    sky = np.linspace(200, 90, height, dtype=np.float64)[:, None, None] * np.array([0.6, 0.75, 1.0])
    out = np.broadcast_to(sky, (n_f, height, width, 3)).astype(np.uint8).copy()
    r = max(1, width // 64)
    for f in range(n_f):
        ok = (depth[f] > 0.05) & np.all(np.isfinite(uv[f]), axis=-1)
        order = np.argsort(-depth[f][ok])
        px = np.floor(uv[f][ok][order]).astype(np.int64)
        col = colours[ok][order]
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                x, y = px[:, 0] + dx, px[:, 1] + dy
                inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
                out[f, y[inside], x[inside]] = col[inside]
    return out


def write_synthetic_dataset(
    root: str | os.PathLike[str],
    scenes: int = 2,
    cameras: int = 3,
    frames: int = 17,
    size: int = 64,
    seed: int = 0,
    split: str = "train",
) -> list[Path]:
    """Write ``scenes`` scene folders under ``root/split/<camera set>/sceneN``; returns them."""
    from trajectory.sampler import sample_scene

    out = []
    for s in range(1, scenes + 1):
        sample = sample_scene(seed, s, n_cameras=cameras, frames=frames, radius_m=3.0)
        rng = np.random.default_rng([seed, s])
        pts, cols = _world_points(rng, frames)
        sdir = Path(root) / split / camera_set_folder(sample.focal_mm, sample.aperture) / f"scene{s}"
        for c in range(cameras):
            video = render_points(pts, cols, sample.poses_ue[c], sample.focal_mm, size, size)
            encode_mp4(sdir / "videos" / f"cam{c + 1:02d}.mp4", video, fps=15.0, crf=18)
        write_camera_json(sdir / CAMERA_FILE, sample.poses_frame_major())
        rec = sample.record()
        rec["caption"] = f"A textured column turning on a chequered floor, scene {s}."
        atomic_write_json(sdir / "scene.json", rec)
        out.append(sdir)
    return out
