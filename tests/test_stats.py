"""``multicam stats``: its counts and ranges equal those read straight from the scene files; planted rule breaks are
flagged by scene, camera and rule; the released validation file and a generated dataset work."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_support import RELEASED_VAL_JSON, generate_synthetic, run_cli
from ue_projection import read_ue, ue_project


def run_stats(ds: Path, tmp: Path, *extra: str) -> tuple[SimpleNamespace, dict]:
    res = run_cli("stats", str(ds), "--json", str(tmp / "s.json"), "--out", str(tmp / "png"), "--no-progress",
                  *extra)
    assert res.returncode in (0, 1), res.stderr
    return res, json.loads((tmp / "s.json").read_text())


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sampled") / "ds"
    res = run_cli("sample-cameras", "--scenes", "30", "--seed", "5", "--out", str(out), "--frames", "9")
    assert res.returncode == 0, res.stderr
    return out


def records(ds: Path) -> list[tuple[Path, dict]]:
    return [(p.parent, json.loads(p.read_text())) for p in sorted(ds.rglob("scene.json"))]


def test_counts_and_ranges_equal_the_scene_files(sampled: Path, tmp_path: Path) -> None:
    res, s = run_stats(sampled, tmp_path)
    recs = records(sampled)
    cams = [c for _, r in recs for c in r["cameras"].values()]
    assert s["scenes"] == 30 and s["cameras"] == 300
    assert s["counts"]["trajectory"] == dict(Counter(c["trajectory"] for c in cams))
    # released profile: cam01 pans, cam02 tilts, cam10 is static, the others move (trajectory/sampler.py docstring)
    assert s["counts"]["role"] == {"moving": 210, "pan": 30, "tilt": 30, "static": 30}
    assert s["counts"]["camera_profile"] == {"released": 30}
    # measured from the poses alone: pans only turn in yaw, tilts in pitch, static cameras do neither
    for kind in ("pan", "tilt", "static"):
        assert s["counts"]["measured_motion"][kind] == s["counts"]["trajectory"][kind], kind
    assert s["counts"]["speed_mode"] == dict(Counter(c["speed"]["mode"] for c in cams))
    assert s["counts"]["camera_set"] == dict(Counter(f"{r['camera_set']['focal_mm']:g}mm f/"
                                                     f"{r['camera_set']['aperture']:g}" for _, r in recs))
    for kind in ("pan", "tilt", "arc"):
        angles = [c["angle_deg"] for c in cams if c["trajectory"] == kind]
        got = s["numeric"][f"angle_deg.{kind}"]
        assert (got["n"], got["min"], got["max"]) == (len(angles), min(angles), max(angles))
    dist = [c["start"]["distance_m"] for c in cams]
    assert s["numeric"]["start_distance_m"]["max"] == max(dist)
    assert s["flags"] == [] and "0 rule flag(s)" in res.stdout
    # the character's aim point in view, per camera, by the independent UE projection at 1280 px (no videos)
    seen: dict[str, list[float]] = {}
    for d, r in recs:
        ue, names = read_ue(d / "cameras" / "camera_extrinsics.json")
        uv, fwd = ue_project(np.asarray(r["character"]["aim_point_cm"]), ue, r["camera_set"]["focal_mm"], 1280, 1280)
        inside = (fwd > 0) & np.all((uv >= 0) & (uv < 1280), -1)
        for c, n in enumerate(names):
            seen.setdefault(n, []).append(inside[:, c].mean())
    want = {n: float(np.mean(v)) for n, v in seen.items()}
    assert s["in_view_fraction_per_camera"].keys() == want.keys()
    np.testing.assert_allclose(list(s["in_view_fraction_per_camera"].values()), list(want.values()))
    assert min(want.values()) < 1.0  # some cameras lose the character: the fraction is not trivially 1
    # PNG histograms that decode, one per distribution
    import matplotlib.image

    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert {"start_distance_m.png", "angle_deg_pan.png", "count_trajectory.png",
            "in_view_fraction_per_camera.png", "overview.png"} <= {p.name for p in pngs}
    for p in pngs:
        assert matplotlib.image.imread(p).shape[0] > 100


def _set_pose(path: Path, frame: int, cam: str, matrix: np.ndarray) -> None:
    data = json.loads(path.read_text())
    data[f"frame{frame}"][cam] = " ".join("[" + " ".join(f"{v:.10g}" for v in row) + "]" for row in matrix) + " "
    path.write_text(json.dumps(data, indent=4))


def test_planted_rule_breaks_are_flagged(sampled: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(sampled, ds)
    d, rec = records(ds)[0]
    name = d.relative_to(ds).as_posix()
    cams = rec["cameras"]
    pan = next(n for n, c in cams.items() if c["trajectory"] == "pan")
    cams[pan]["angle_deg"] = 50.0
    other = next(n for n, c in cams.items() if n != pan and c["trajectory"] != "static")
    cams[other]["start"]["distance_m"] = rec["radius_m"] + 1.0
    cams[other]["speed"] = {"mode": "variable", "a": 5.0}
    rec["camera_set"] = {"focal_mm": 20.0, "aperture": 5.0}
    cams["cam10"]["trajectory"] = "tilt"  # cam10's role is static
    (d / "scene.json").write_text(json.dumps(rec))
    # in the camera file: cam01 frame 2 looks up 60 deg with a 10 deg roll; cam02 frame 3 stands 0.3 m from the
    # character's ground point
    p, y, r = np.radians([60.0, 20.0, 10.0])
    fwd = [np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)]
    right0 = np.array([-np.sin(y), np.cos(y), 0.0])
    up0 = np.cross(fwd, right0)
    right, up = np.cos(r) * right0 + np.sin(r) * up0, np.cos(r) * up0 - np.sin(r) * right0
    cam_file = d / "cameras" / "camera_extrinsics.json"
    ue, _ = read_ue(cam_file)
    _set_pose(cam_file, 2, "cam01", np.array([[*fwd, 0], [*right, 0], [*up, 0], [*ue[2, 0, 3, :3], 1]]))
    near = ue[3, 1].copy()
    near[3, :3] = np.asarray(rec["character"]["location_cm"]) + [30.0, 0.0, 25.0]
    _set_pose(cam_file, 3, "cam02", near)
    res, s = run_stats(ds, tmp_path, "--strict", "--no-png")
    assert res.returncode == 1
    flags = "\n".join(s["flags"])
    assert f"{name}/{pan}: pan angle 50.0 deg outside [5, 45]" in flags
    assert f"{name}/{other}: start distance" in flags and f"{name}/{other}: speed a = 5.0 outside" in flags
    assert f"{name}/cam10: role static but trajectory 'tilt'" in flags
    assert f"{name}: camera set 20 mm f/5.0 is not one of the dataset's four" in flags
    assert f"{name}/cam01: pitch reaches 60.00 deg" in flags and f"{name}/cam01: roll reaches 10 deg" in flags
    near_flag = re.search(rf"{name}/cam02: comes within (0\.\d+) m of the character's body", flags)
    assert near_flag and float(near_flag.group(1)) <= 0.30  # 0.3 m from the body's axis at frame 3
    assert all(f.startswith(name) for f in s["flags"])  # the other 29 scenes are clean
    assert run_cli("stats", str(ds), "--no-png", "--no-progress").returncode == 0  # flags alone do not fail


def test_generated_dataset(tmp_path: Path) -> None:
    ds = tmp_path / "gen"
    generate_synthetic(ds, scenes=3, size=32, frames=4, cameras=3, extra_args=("--no-verify",))
    _, s = run_stats(ds, tmp_path, "--no-png")
    recs = [r for _, r in records(ds / "train")]
    for key in ("environment", "character", "animation"):
        assert s["counts"][key] == dict(Counter(r[key]["id"] for r in recs)), key
    assert s["counts"]["cameras_per_scene"] == {"3": 3} and s["flags"] == []
    assert set(s["in_view_fraction_per_camera"]) == {"cam01", "cam02", "cam03"}


def test_released_validation_file(tmp_path: Path) -> None:
    val = tmp_path / "val" / "10basic_trajectories"
    (val / "cameras").mkdir(parents=True)
    shutil.copy(RELEASED_VAL_JSON, val / "cameras" / "camera_extrinsics.json")
    res, s = run_stats(tmp_path / "val", tmp_path, "--no-png")
    assert res.returncode == 0 and s["scenes"] == 1 and s["cameras"] == 10
    assert s["counts"]["camera_set"] == {"24mm (assumed)": 1} and s["counts"]["frames"] == {"81": 1}
    assert s["flags"] == []  # level starts, |pitch| <= 14 deg, no roll
    # pan right/left, tilt up/down, zoom in/out (a dolly), and four moves that turn to keep the subject: translate
    # up/down and the two arcs, which in the released file are straight chords
    assert s["counts"]["measured_motion"] == {"straight+turn": 4, "pan": 2, "tilt": 2, "straight": 2}
    ue, _ = read_ue(RELEASED_VAL_JSON)
    fz = ue[..., 0, 2] / np.linalg.norm(ue[..., 0, :3], axis=-1)
    np.testing.assert_allclose(s["numeric"]["pitch_max_deg"]["max"], np.degrees(np.arcsin(fz)).max(), atol=1e-6)
    path = np.linalg.norm(np.diff(ue[:, :, 3, :3], axis=0), axis=-1).sum(0) / 100
    np.testing.assert_allclose(s["numeric"]["path_length_m"]["max"], path.max())
    # zoom in/out dolly without turning; the arcs turn most, by their ~30 deg around the subject
    assert s["numeric"]["rotation_deg"]["min"] < 1e-3 and 29.0 < s["numeric"]["rotation_deg"]["max"] < 30.5


def test_bad_input(tmp_path: Path) -> None:
    res = run_cli("stats", str(tmp_path / "nope"))
    assert res.returncode == 2 and res.stderr.strip() == f"error: {tmp_path / 'nope'}: no such folder"
    res = run_cli("stats", str(tmp_path), "--no-progress")
    assert res.returncode == 2 and "no scene folders" in res.stderr
    res = run_cli("stats", str(tmp_path), "--focal-mm", "-1")
    assert res.returncode == 2 and "--focal-mm" in res.stderr
