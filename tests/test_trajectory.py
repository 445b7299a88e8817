"""The paper's trajectory rules of the ``independent`` camera profile, checked on the sampled poses for any seed
(hypothesis). The ``released`` profile (the default) has its own rules: tests/test_camera_profiles.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_camera_profiles import brute_body_distance, check_random_path  # pytest puts tests/ on sys.path

from exporters.camera_json import read_camera_json
from multicam.conventions import CAMERA_SETS, ue_matrix_to_location_rotator
from trajectory.sampler import (
    ALLOWED_RADII_M,
    BODY_RADIUS_M,
    MAX_PITCH_DEG,
    MIN_DISTANCE_M,
    TRAJECTORY_TYPES,
    SceneSample,
    sample_scene,
    sample_scenes,
)
from trajectory.speed import A_RANGE, progress

FRAMES = 81


def _wrap(deg: np.ndarray) -> np.ndarray:
    return (deg + 180.0) % 360.0 - 180.0


def _expected_progress(speed: dict[str, Any], frames: int) -> np.ndarray:
    i = np.arange(frames) / (frames - 1)
    if speed["mode"] == "constant":
        assert speed["a"] is None
        return i
    a = speed["a"]
    assert A_RANGE[0] <= abs(a) <= A_RANGE[1] == 3.0
    return (1 - np.exp(-a * i)) / (1 - np.exp(-a))


def check_scene(sc: SceneSample) -> None:
    """Every rule of the issue, on one scene's poses and records."""
    rec = sc.record()
    json.dumps(rec)  # serialisable
    assert sc.radius_m in ALLOWED_RADII_M
    assert (sc.focal_mm, sc.aperture) in CAMERA_SETS
    assert rec["camera_profile"] == sc.camera_profile == "independent"
    g = sc.character_location_cm / 100.0
    aim = g + [0, 0, sc.aim_height_m]
    assert np.allclose(np.asarray(rec["character"]["aim_point_cm"]) / 100.0, aim)
    loc, rot = ue_matrix_to_location_rotator(sc.poses_ue)
    loc = loc / 100.0
    fwd = sc.poses_ue[..., 0, :3]
    for c, cam in enumerate(sc.cameras):
        assert cam["focal_mm"] == sc.focal_mm and cam["aperture"] == sc.aperture  # one set per scene
        kind = cam["trajectory"]
        assert kind in TRAJECTORY_TYPES
        p, r = loc[c], rot[c]
        rel = p - g
        dist = np.linalg.norm(rel, axis=-1)
        # start: upper hemisphere, inside the radius, aimed at the character's centre
        assert 0.5 * sc.radius_m - 1e-9 <= dist[0] <= sc.radius_m + 1e-9
        assert rel[0, 2] >= 0.2 - 1e-9
        to_aim = (aim - p[0]) / np.linalg.norm(aim - p[0])
        assert np.dot(fwd[c, 0], to_aim) > 1 - 1e-9
        # whole trajectory: body clearance (capsule ground -> head, at and between frames), pitch rules, no roll
        assert dist.min() > MIN_DISTANCE_M
        assert brute_body_distance(rel, sc.character_height_m) > BODY_RADIUS_M
        assert np.abs(r[:, 0]).max() <= MAX_PITCH_DEG + 1e-9
        assert np.abs(r[:, 2]).max() < 1e-6
        assert rel[:, 2].min() >= 0.2 - 1e-6
        d0 = dist[0]
        expected = _expected_progress(cam["speed"], sc.frames)
        if kind == "static":
            assert cam["speed"] == {"mode": "constant", "a": None}
            assert np.allclose(sc.poses_ue[c], sc.poses_ue[c, 0])
            continue
        if kind == "pan":
            assert 5 <= cam["angle_deg"] <= 45
            assert np.allclose(p, p[0]) and np.allclose(r[:, 0], r[0, 0], atol=1e-9)
            dyaw = _wrap(r[:, 1] - r[0, 1])
            sign = 1 if cam["direction"] == "right" else -1
            np.testing.assert_allclose(dyaw, sign * cam["angle_deg"] * expected, atol=1e-7)
        elif kind == "tilt":
            assert 5 <= cam["angle_deg"] <= 30
            assert np.allclose(p, p[0])
            assert np.allclose(_wrap(r[:, 1] - r[0, 1]), 0, atol=1e-7)
            sign = 1 if cam["direction"] == "up" else -1
            np.testing.assert_allclose(r[:, 0] - r[0, 0], sign * cam["angle_deg"] * expected, atol=1e-7)
        elif kind == "translation":
            L = cam["distance_m"]
            assert 0.25 * d0 - 1e-9 <= L <= d0 + 1e-9
            assert np.allclose(sc.poses_ue[c, :, :3, :3], sc.poses_ue[c, 0, :3, :3])
            axis_row = {"x": 0, "y": 1, "z": 2}[cam["axis"][1]]
            sign = 1.0 if cam["axis"][0] == "+" else -1.0
            disp = p - p[0]
            direction = sign * sc.poses_ue[c, 0, axis_row, :3]
            np.testing.assert_allclose(disp, np.outer(expected * L, direction), atol=1e-7)
        elif kind == "arc":
            assert 15 <= cam["angle_deg"] <= 75
            hor = np.hypot(rel[:, 0], rel[:, 1])
            np.testing.assert_allclose(hor, hor[0], rtol=1e-9)
            np.testing.assert_allclose(rel[:, 2], rel[0, 2], atol=1e-9)
            az = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
            sign = 1 if cam["direction"] == "left" else -1
            np.testing.assert_allclose(_wrap(az - az[0]), sign * cam["angle_deg"] * expected, atol=1e-6)
            # moving left means moving along the camera's -Y (right axis) at the start
            if sc.frames > 2:
                step = p[1] - p[0]
                assert np.sign(np.dot(step, sc.poses_ue[c, 0, 1, :3])) in (-sign, 0)
        elif kind == "random":
            check_random_path(cam, p, d0)
        if kind in ("arc", "random"):  # facing the character throughout
            to_aim = (aim - p) / np.linalg.norm(aim - p, axis=-1, keepdims=True)
            assert np.all(np.einsum("fi,fi->f", fwd[c], to_aim) > 1 - 1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scene=st.integers(1, 10**6),
       radius=st.sampled_from([None, 3.0, 5.0, 7.0, 10.0]),
       ground=st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.floats(-500, 500)),
       height=st.floats(1.0, 2.2), frames=st.sampled_from([2, 17, 81]))
def test_rules_hold_for_any_seed(seed: int, scene: int, radius: float | None,
                                 ground: tuple[float, float, float], height: float, frames: int) -> None:
    sc = sample_scene(seed, scene, radius_m=radius, character_location_cm=ground,
                      character_height_m=height, frames=frames, camera_profile="independent")
    assert sc.poses_ue.shape == (10, frames, 4, 4)
    if radius is not None:
        assert sc.radius_m == radius
    check_scene(sc)


def test_rules_on_many_scenes_and_type_mix() -> None:
    batch = sample_scenes(7, range(1, 401), camera_profile="independent")
    kinds: dict[str, int] = {}
    speeds = {"constant": 0, "variable": 0}
    for sc in batch.scenes:
        check_scene(sc)
        for cam in sc.cameras:
            kinds[cam["trajectory"]] = kinds.get(cam["trajectory"], 0) + 1
            if cam["trajectory"] != "static":
                speeds[cam["speed"]["mode"]] += 1
    assert set(kinds) == set(TRAJECTORY_TYPES)
    assert min(kinds.values()) > 4000 / 6 * 0.8
    assert abs(speeds["constant"] - speeds["variable"]) < 0.1 * sum(speeds.values())
    sets = {(sc.focal_mm, sc.aperture) for sc in batch.scenes}
    assert sets == set(CAMERA_SETS)
    directions = {(c["trajectory"], c.get("direction")) for sc in batch.scenes for c in sc.cameras}
    for pair in [("pan", "left"), ("pan", "right"), ("tilt", "up"), ("tilt", "down"), ("arc", "left"),
                 ("arc", "right")] + [("translation", d) for d in
                                      ("forward", "backward", "left", "right", "up", "down")]:
        assert pair in directions


@pytest.mark.parametrize("profile", ["independent", "released"])
def test_scene_independent_of_batch_and_camera_extension(profile: str) -> None:
    a = sample_scenes(3, [5], camera_profile=profile).scenes[0]
    b = sample_scenes(3, range(1, 9), camera_profile=profile).scenes[4]
    assert a.scene_index == b.scene_index == 5
    np.testing.assert_array_equal(a.poses_ue, b.poses_ue)
    assert a.record() == b.record()
    # adding cam11, cam12 leaves cam01..cam10 untouched
    ext = sample_scene(3, 5, camera_indices=[10, 11], camera_profile=profile)
    full = sample_scene(3, 5, n_cameras=12, camera_profile=profile)
    np.testing.assert_array_equal(full.poses_ue[:10], a.poses_ue)
    np.testing.assert_array_equal(full.poses_ue[10:], ext.poses_ue)
    assert list(ext.record()["cameras"]) == ["cam11", "cam12"]
    # a different seed changes the scene
    assert not np.array_equal(sample_scene(4, 5, camera_profile=profile).poses_ue, a.poses_ue)


def test_speed_profile_formula() -> None:
    s = progress(81, [np.nan, 2.0, -1.5])
    np.testing.assert_allclose(s[0], np.arange(81) / 80)
    i = np.arange(81)
    np.testing.assert_allclose(s[1], (1 - np.exp(-2.0 * i / 80)) / (1 - np.exp(-2.0)))
    np.testing.assert_allclose(s[2], (1 - np.exp(1.5 * i / 80)) / (1 - np.exp(1.5)))
    assert np.all(np.diff(s, axis=1) > 0)
    with pytest.raises(ValueError, match="frames"):
        progress(1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="radius_m must be one of"):
        sample_scene(0, 1, radius_m=4.0)
    with pytest.raises(ValueError, match="frames must be >= 2"):
        sample_scene(0, 1, frames=1)
    with pytest.raises(ValueError, match="camera_set"):
        sample_scene(0, 1, camera_set=7)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "multicam_app", *args], capture_output=True, text=True)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_cameras_cli_files_are_deterministic(tmp_path: Path) -> None:
    r1 = _run_cli("sample-cameras", "--scenes", "3", "--seed", "11", "--out", str(tmp_path / "a"), "--frames", "21")
    assert r1.returncode == 0, r1.stderr
    r2 = _run_cli("sample-cameras", "--scenes", "5", "--seed", "11", "--out", str(tmp_path / "b"), "--frames", "21")
    assert r2.returncode == 0, r2.stderr
    da, db = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert sorted(da) == [f"scene{i}/{f}" for i in (1, 2, 3)
                          for f in ("cameras/camera_extrinsics.json", "scene.json")]
    assert all(db[k] == v for k, v in da.items())  # byte-identical, whatever --scenes is
    poses, names = read_camera_json(tmp_path / "a/scene2/cameras/camera_extrinsics.json")
    assert poses.shape == (21, 10, 4, 4) and names == [f"cam{i:02d}" for i in range(1, 11)]
    rec = json.loads((tmp_path / "a/scene2/scene.json").read_text())
    assert isinstance(rec["radius_m"], float) and rec["character"]["location_cm"] == [0.0, 0.0, 0.0]
    assert rec["camera_profile"] == "released"  # the default
    for _name, cam in rec["cameras"].items():
        assert cam["trajectory"] in TRAJECTORY_TYPES and cam["focal_mm"] in (18, 24, 35, 50)
        assert cam["speed"]["mode"] in ("constant", "variable") and cam["seed"][:2] == [11, 2]
        assert rec["camera_motion"][_name].startswith(cam["trajectory"] if cam["trajectory"] in
                                                      ("pan", "tilt", "arc", "static") else ("move", "free path"))
    sc = sample_scene(11, 2, frames=21)
    assert np.all(np.abs(poses - sc.poses_frame_major()) <= 1e-6 * np.abs(sc.poses_frame_major()).max())
    r3 = _run_cli("sample-cameras", "--scenes", "3", "--seed", "12", "--out", str(tmp_path / "c"), "--frames", "21")
    assert r3.returncode == 0
    assert _tree_digest(tmp_path / "c") != da


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenes", "0", "--seed", "1"], "--scenes: must be an integer in 1..1000000, got 0"),
        (["--scenes", "2", "--seed", "1", "--radius-m", "4"], "--radius-m: must be one of 3, 5, 7, 10"),
        (["--scenes", "2", "--seed", "1", "--frames", "1"], "--frames: must be an integer in 2..100000, got 1"),
        (["--scenes", "2", "--seed", "1", "--camera-profile", "wide"],
         "--camera-profile: must be one of released, independent, got 'wide'"),
    ],
)
def test_sample_cameras_cli_errors(tmp_path: Path, args: list[str], message: str) -> None:
    r = _run_cli("sample-cameras", *args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_output_path_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    for cmd in (["sample-cameras", "--scenes", "1", "--seed", "1"], ["presets"]):
        r = _run_cli(*cmd, "--out", str(f))
        assert r.returncode == 2 and "is a file" in r.stderr
