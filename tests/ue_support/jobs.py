"""Small real RenderJobs for the Unreal tests (poses from the trajectory sampler)."""

from __future__ import annotations

from typing import Any

import numpy as np

from render_jobs.schema import RenderJob
from trajectory.sampler import sample_scene

MAP = "/Game/Maps/TestTown.TestTown"
MESH = "/Game/Characters/Hero/SK_Hero.SK_Hero"
ANIM = "/Game/Characters/Hero/Anims/Walk.Walk"


def make_job(job_id: str = "scene1", n_cameras: int = 3, frames: int = 6, size: int = 32,
             seed: int = 7, **settings: Any) -> RenderJob:
    s = sample_scene(seed, 1, n_cameras=n_cameras, frames=frames)
    cams = []
    for i in range(n_cameras):
        cams.append({"name": f"cam{i + 1:02d}", "focal_mm": float(s.focal_mm), "aperture": float(s.aperture),
                     "poses_ue": np.asarray(s.poses_ue[i]).tolist(),
                     "focus_points_cm": [s.record()["character"]["aim_point_cm"]] * frames, "trajectory": {}})
    return RenderJob.model_validate({
        "job_id": job_id, "scene_index": 1, "seed": seed,
        "environment": {"id": "town", "asset": MAP},
        "character": {"id": "hero", "asset": MESH, "height_m": 1.8},
        "animation": {"id": "walk", "asset": ANIM, "fps": 30.0, "start_frame": 12},
        "placement": {"location_cm": [0.0, 0.0, 0.0], "yaw_deg": 30.0},
        "cameras": cams,
        "layout_seed": 5,
        "settings": {"width": size, "height": size, "frames": frames, "fps": 15.0, "samples": 4,
                     "warmup_frames": 2, **settings},
        "output_dir": f"train/f18_aperture10/{job_id}",
        "scene": s.record(),
    })


def populate_assets(fake: Any) -> None:
    """Register the project's assets in the fake engine (what a real .uproject would contain)."""
    fake._add_asset(MAP, fake.World())
    fake._add_asset(MESH, fake.SkeletalMesh())
    fake._add_asset(ANIM, fake.AnimSequence())
