"""multicam validate: a real dataset passes, each kind of damage is reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from exporters.camera_json import write_camera_json
from exporters.video import encode_mp4
from trajectory.sampler import sample_scene


def _scene(root: Path, frames: int = 9, cams: int = 3, size: int = 32) -> Path:
    sc = sample_scene(0, 1, n_cameras=cams, frames=frames)
    write_camera_json(root / "cameras" / "camera_extrinsics.json", sc.poses_frame_major())
    rng = np.random.default_rng(0)
    for c in range(cams):
        frames_rgb = (rng.integers(0, 255, (frames, size, size, 3))).astype(np.uint8)
        encode_mp4(root / "videos" / f"cam{c + 1:02d}.mp4", frames_rgb, fps=15)
    return root


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "multicam_app", "validate", *args], capture_output=True, text=True)


def test_complete_dataset_passes(tmp_path: Path) -> None:
    for i in (1, 2):
        _scene(tmp_path / "train" / "f18_aperture10" / f"scene{i}")
    r = _validate(str(tmp_path), "--frames", "9", "--size", "32")
    assert r.returncode == 0, r.stderr
    assert "2 scenes, 6 cameras checked: all complete" in r.stdout


def test_damage_is_reported(tmp_path: Path) -> None:
    s = _scene(tmp_path / "scene1")
    (s / "videos" / "cam02.mp4").unlink()
    encode_mp4(s / "videos" / "cam03.mp4", np.zeros((5, 32, 32, 3), np.uint8))  # too short
    encode_mp4(s / "videos" / "cam09.mp4", np.zeros((9, 32, 32, 3), np.uint8))  # no such camera
    r = _validate(str(tmp_path))
    assert r.returncode == 1
    assert "cam02.mp4: missing" in r.stderr
    assert "cam03.mp4: 5 frames decoded, the camera file has 9" in r.stderr
    assert "cam09.mp4: video without a camera" in r.stderr
    r = _validate(str(tmp_path), "--frames", "81")
    assert "9 frames, expected 81" in r.stderr
    (s / "cameras" / "camera_extrinsics.json").write_text("{")
    r = _validate(str(tmp_path))
    assert r.returncode == 1 and "not valid JSON" in r.stderr


def test_bad_arguments(tmp_path: Path) -> None:
    r = _validate(str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = _validate(str(tmp_path))
    assert r.returncode == 2 and "no scene folders" in r.stderr
