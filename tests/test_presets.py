"""The ten validation trajectories have the stated magnitudes and directions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exporters.camera_json import read_camera_json
from multicam.conventions import ue_matrix_to_location_rotator
from trajectory.presets import preset_poses, preset_track


@pytest.fixture(scope="module")
def presets() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = preset_poses(4.0, 81)
    loc, rot = ue_matrix_to_location_rotator(p)
    return p, loc, rot


def _const_speed(x: np.ndarray) -> None:
    d = np.diff(x, axis=0)
    np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-9)


def test_start_level_facing_subject(presets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p, loc, rot = presets
    np.testing.assert_allclose(loc[:, 0], [[-400, 0, 100]] * 10, atol=1e-9)
    np.testing.assert_allclose(rot[:, 0], 0, atol=1e-9)


def test_pan_and_tilt(presets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, loc, rot = presets
    for k, (axis, total) in enumerate([(1, 20), (1, -20), (0, 10), (0, -10)]):
        assert np.allclose(loc[k], loc[k, 0])
        assert rot[k, -1, axis] == pytest.approx(total)
        assert np.allclose(rot[k, :, 1 - axis], 0, atol=1e-9)
        _const_speed(rot[k, :, axis])
    # pan right turns the view toward +Y (UE's right)
    p = preset_track(1)
    assert p[-1, 0, 1] > 0.3


def test_zoom_is_a_dolly(presets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p, loc, rot = presets
    np.testing.assert_allclose(loc[4, -1] - loc[4, 0], [200, 0, 0], atol=1e-9)
    np.testing.assert_allclose(loc[5, -1] - loc[5, 0], [-200, 0, 0], atol=1e-9)
    for k in (4, 5):
        assert np.allclose(p[k, :, :3, :3], np.eye(3)[None])
        _const_speed(loc[k])


def test_translate_keeps_subject_centred(presets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p, loc, rot = presets
    subject = np.array([0, 0, 100.0])
    for k, dz in ((6, 100), (7, -100)):
        np.testing.assert_allclose(loc[k, -1] - loc[k, 0], [0, 0, dz], atol=1e-9)
        _const_speed(loc[k])
        to_s = subject - loc[k]
        to_s /= np.linalg.norm(to_s, axis=-1, keepdims=True)
        np.testing.assert_allclose(np.einsum("fi,fi->f", p[k, :, 0, :3], to_s), 1, atol=1e-12)
    assert rot[6, -1, 0] == pytest.approx(-np.degrees(np.arctan2(1, 4)))  # up -> looks down
    assert rot[7, -1, 0] == pytest.approx(np.degrees(np.arctan2(1, 4)))


def test_arcs(presets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p, loc, rot = presets
    subject = np.array([0, 0, 100.0])
    for k, side in ((8, -1), (9, 1)):
        rel = loc[k, -1] - subject
        assert np.linalg.norm(rel) == pytest.approx(400)
        assert np.degrees(np.arctan2(rel[1], -rel[0])) == pytest.approx(side * 30)
        _const_speed(loc[k])  # straight chord at constant speed
        to_s = subject - loc[k]
        to_s /= np.linalg.norm(to_s, axis=-1, keepdims=True)
        np.testing.assert_allclose(np.einsum("fi,fi->f", p[k, :, 0, :3], to_s), 1, atol=1e-12)
        # arc left moves along the camera's -Y (its left)
        assert np.sign(np.dot(loc[k, -1] - loc[k, 0], p[k, 0, 1, :3])) == side


def test_presets_cli(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "multicam_app", "presets", "--out", str(tmp_path), "--frames", "33",
                        "--distance-m", "5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    poses, names = read_camera_json(tmp_path / "cameras" / "camera_extrinsics.json")
    assert poses.shape == (33, 10, 4, 4) and names[-1] == "cam10"
    np.testing.assert_allclose(poses, preset_poses(5.0, 33).swapaxes(0, 1), rtol=1e-8, atol=1e-6)
    bad = subprocess.run([sys.executable, "-m", "multicam_app", "presets", "--out", str(tmp_path / "x"),
                          "--distance-m", "1.5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--distance-m" in bad.stderr
