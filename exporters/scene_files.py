"""Write a sampled scene's camera files: ``cameras/camera_extrinsics.json`` and ``scene.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.camera_json import CAMERA_FILE, cam_name, write_camera_json
from exporters.formats import json_text
from exporters.metadata import camera_motion_labels
from multicam.io import atomic_write_text
from trajectory.sampler import SceneSample

SCENE_FILE = "scene.json"


def scene_json_text(record: dict[str, Any]) -> str:
    """``scene.json`` text: one top-level key per line and one camera per line.

    Readable in a diff and with ``grep cam03``, and encoded by json's C encoder (``indent`` would
    switch to the pure-Python one, 10x slower at 13,600 scenes). ``json.load`` reads it as usual.
    """
    return json_text(record)


def write_scene_cameras(sample: SceneSample, scene_dir: str | Path, durable: bool = True) -> Path:
    """Write ``scene_dir/cameras/camera_extrinsics.json`` and ``scene_dir/scene.json`` (atomically):
    the sampler's record plus ``camera_motion`` (:func:`exporters.metadata.camera_motion_label` per camera).

    ``durable=False`` skips fsync (bulk output that can be regenerated bit-for-bit from the seed).
    """
    scene_dir = Path(scene_dir)
    names = [cam_name(c) for c in sample.camera_indices]
    write_camera_json(scene_dir / CAMERA_FILE, sample.poses_frame_major(), names, durable)
    record = sample.record()
    record["camera_motion"] = camera_motion_labels(record)  # words for each camera, as rendered scenes have
    atomic_write_text(scene_dir / SCENE_FILE, scene_json_text(record), durable)
    return scene_dir
