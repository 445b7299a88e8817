"""Write a sampled scene's camera files: ``cameras/camera_extrinsics.json`` and ``scene.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporters.camera_json import CAMERA_FILE, cam_name, write_camera_json
from multicam.io import atomic_write_text
from trajectory.sampler import SceneSample

SCENE_FILE = "scene.json"


def scene_json_text(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2) + "\n"


def write_scene_cameras(sample: SceneSample, scene_dir: str | Path) -> Path:
    """Write ``scene_dir/cameras/camera_extrinsics.json`` and ``scene_dir/scene.json`` (atomically)."""
    scene_dir = Path(scene_dir)
    names = [cam_name(c) for c in sample.camera_indices]
    write_camera_json(scene_dir / CAMERA_FILE, sample.poses_frame_major(), names)
    atomic_write_text(scene_dir / SCENE_FILE, scene_json_text(sample.record()))
    return scene_dir
