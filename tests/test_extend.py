"""``multicam extend``: new cameras for rendered scenes, on real files made by the code.

Test backends (test-synthetic) cover the job machinery: old files byte-identical (same inodes), the camera file
and scene.json gain entries with the old ones kept character for character, the new cameras are the ones the
sampler draws for (seed, scene, camera), resume after SIGKILL at known points (mid-render, staged, committed),
scenes without a plan, bad arguments. Blender (tiny sizes) covers synchronization: a moving beacon matches its
projection in old and new cameras at every frame (a one-frame-off camera would fail), and the prop layout is the
first render's. The Unreal backend runs through the fake editor (tests/ue_support/).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from exporters.camera_json import CAMERA_FILE, read_camera_json, render_camera_json
from multicam_app import app
from render_jobs.extend import FAULT_ENV, recover_scene
from render_jobs.planner import iter_manifest, load_settings, materialize, plan_dataset
from render_jobs.runner import run_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore
from render_jobs.testing import KILL_ENV
from scene_catalog.loader import load_catalog

runner = CliRunner()
CATALOG = {
    "environments": [{"id": "plaza", "asset": "builtin:plaza", "anchors": [{"location_cm": [0, 0, 0]}]}],
    "characters": [{"id": "ada", "asset": "builtin:m"}],
    "animations": [{"id": "walk", "asset": "builtin:walk", "length_frames": 60, "loopable": True}],
}
N_SCENES, N_CAMS, FRAMES = 2, 3, 6


def _plan(tmp: Path, catalog: dict[str, Any], n_scenes: int, n_cams: int, settings: RenderSettings,
          seed: int = 3) -> Path:
    (tmp / "c.yaml").write_text(yaml.safe_dump(catalog))
    ds = tmp / "ds"
    plan_dataset(load_catalog(tmp / "c.yaml"), n_scenes, seed, ds, settings, n_cameras=n_cams)
    return ds


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("base")
    ds = _plan(tmp, CATALOG, N_SCENES, N_CAMS, RenderSettings(width=32, height=32, frames=FRAMES, samples=1))
    summary = run_dataset(ds, "test-synthetic", progress=False)
    assert summary.rendered == N_SCENES
    return ds


@pytest.fixture
def ds(rendered: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    return out


def scene_dirs(ds: Path) -> list[Path]:
    return sorted(p for p in (ds / "train").glob("*/scene*"))


def files(ds: Path) -> dict[str, tuple[str, int]]:
    """Every file of the scenes under train/ -> (sha256, inode); hidden folders (a killed run's staged copy) are
    not scenes."""
    return {p.relative_to(ds).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
            for p in sorted((ds / "train").rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(ds).parts)}


def extend(ds: Path, *args: str) -> Any:
    return runner.invoke(app, ["extend", str(ds), "--no-progress", *args])


def extend_process(ds: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "multicam_app", "extend", str(ds), "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
                          start_new_session=True)


def assert_old_kept(ds: Path, before: dict[str, tuple[str, int]], new: list[str], only: int | None = None) -> None:
    """Old videos are the same files; the camera file and scene.json hold the old entries byte for byte (of the
    extended scenes: all, or scene ``only``; the others are unchanged)."""
    after = files(ds)
    extended = scene_dirs(ds) if only is None else [ds / e.output_dir for e in iter_manifest(ds)
                                                     if e.scene_index == only]
    for rel, (sha, ino) in before.items():
        if rel.endswith((".json",)) and any(rel.startswith(d.relative_to(ds).as_posix() + "/") for d in extended):
            continue
        assert after[rel] == (sha, ino), f"{rel} changed"
    for scene in extended:
        rel = scene.relative_to(ds).as_posix()
        old_cams = json.loads(_old_text(ds, before, f"{rel}/{CAMERA_FILE.as_posix()}"))
        now = json.loads((scene / CAMERA_FILE).read_text())
        assert list(now) == list(old_cams)
        for frame, cams in old_cams.items():
            assert {k: now[frame][k] for k in cams} == cams  # every old entry's text unchanged
            assert list(now[frame]) == [*cams, *new]
        # dropping the new cameras gives the old file back, byte for byte
        poses, names = read_camera_json(scene / CAMERA_FILE)
        keep = [i for i, n in enumerate(names) if n not in new]
        assert render_camera_json(poses[:, keep], [names[i] for i in keep]) == _old_text(
            ds, before, f"{rel}/{CAMERA_FILE.as_posix()}")
        old_rec = json.loads(_old_text(ds, before, f"{rel}/scene.json"))
        rec = json.loads((scene / "scene.json").read_text())
        for key, value in old_rec.items():
            if key in ("cameras", "camera_motion"):
                assert {k: rec[key][k] for k in value} == value and list(rec[key]) == [*value, *new]
            else:
                assert rec[key] == value, key
        for n in new:
            assert (scene / "videos" / f"{n}.mp4").is_file()


_TEXTS: dict[str, str] = {}


def _old_text(ds: Path, before: dict[str, tuple[str, int]], rel: str) -> str:
    return _TEXTS[before[rel][0]]


def snapshot(ds: Path) -> dict[str, tuple[str, int]]:
    snap = files(ds)
    for rel in snap:
        if rel.endswith(".json"):
            text = (ds / rel).read_text()
            _TEXTS[hashlib.sha256(text.encode()).hexdigest()] = text
    return snap


def test_extend_adds_the_sampled_cameras_and_keeps_old_files(ds: Path) -> None:
    before = snapshot(ds)
    res = extend(ds, "--cameras", "2")
    assert res.exit_code == 0, res.output
    assert_old_kept(ds, before, ["cam04", "cam05"])
    settings, _ = load_settings(ds)
    for entry in iter_manifest(ds):
        scene = ds / entry.output_dir
        # the new cameras are those a plan of 5 cameras draws for cam04/cam05: seeded by (seed, scene, camera)
        want = materialize(entry, settings, 5).poses_array()
        names = ["cam01", "cam02", "cam03", "cam04", "cam05"]
        assert (scene / CAMERA_FILE).read_text() == render_camera_json(want, names)
        rec = json.loads((scene / "scene.json").read_text())
        assert [e["cameras"] for e in rec["extensions"]] == [["cam04", "cam05"]]
    csv = (ds / "metadata.csv").read_text().splitlines()
    assert len(csv) == 1 + N_SCENES * 5 and sum("cam05.mp4" in r for r in csv) == N_SCENES
    assert runner.invoke(app, ["validate", str(ds), "--frames", str(FRAMES), "--size", "32"]).exit_code == 0
    assert not [p for p in (ds / "train").rglob(".*")]  # no staged or aside folder left
    assert list((ds / ".tmp").iterdir()) == []
    with JobStore.for_dataset(ds) as store:
        assert store.counts("extend")["done"] == N_SCENES and store.counts()["done"] == N_SCENES
    # extending again adds the next cameras, keeping cam04/cam05
    before2 = snapshot(ds)
    res = extend(ds, "--cameras", "1", "--scenes", "2")
    assert res.exit_code == 0, res.output
    scene2 = next(e for e in iter_manifest(ds) if e.scene_index == 2)
    _, names = read_camera_json(ds / scene2.output_dir / CAMERA_FILE)
    assert names[-1] == "cam06"
    other = next(e for e in iter_manifest(ds) if e.scene_index == 1)
    assert files(ds)[f"{other.output_dir}/scene.json"] == before2[f"{other.output_dir}/scene.json"]


def test_same_request_same_cameras(rendered: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(rendered, a)
    shutil.copytree(rendered, b)
    assert extend(a, "--cameras", "2", "--seed", "9").exit_code == 0
    assert extend(b, "--cameras", "2", "--seed", "9").exit_code == 0
    for sa, sb in zip(scene_dirs(a), scene_dirs(b), strict=True):
        assert (sa / CAMERA_FILE).read_bytes() == (sb / CAMERA_FILE).read_bytes()
        assert (sa / "videos" / "cam05.mp4").read_bytes() == (sb / "videos" / "cam05.mp4").read_bytes()
    c = tmp_path / "c"
    shutil.copytree(rendered, c)
    assert extend(c, "--cameras", "2").exit_code == 0  # another seed: other cameras
    assert (scene_dirs(a)[0] / CAMERA_FILE).read_bytes() != (scene_dirs(c)[0] / CAMERA_FILE).read_bytes()


@pytest.mark.parametrize("how", ["render", "staged", "committed"])
def test_sigkill_mid_extension_then_resume(ds: Path, how: str) -> None:
    before = snapshot(ds)
    env = {KILL_ENV: "1"} if how == "render" else {FAULT_ENV: how}
    killed = extend_process(ds, "--cameras", "2", "--scenes", "1", env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    entry = next(e for e in iter_manifest(ds) if e.scene_index == 1)
    scene = ds / entry.output_dir
    _, names = read_camera_json(scene / CAMERA_FILE)
    if how == "committed":  # fully extended, the store not told yet
        assert names == ["cam01", "cam02", "cam03", "cam04", "cam05"]
        assert_old_kept(ds, before, ["cam04", "cam05"], only=1)
    else:  # as it was
        assert names == ["cam01", "cam02", "cam03"]
        assert files(ds) == before
    with JobStore.for_dataset(ds) as store:
        assert store.counts("extend")["running"] == 1
    res = extend_process(ds, "--cameras", "2", "--scenes", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming 1 unfinished extension job(s)" in res.stdout
    assert ("found complete 1" in res.stdout) == (how == "committed")
    assert_old_kept(ds, before, ["cam04", "cam05"], only=1)
    with JobStore.for_dataset(ds) as store:
        assert store.counts("extend") == {"pending": 0, "running": 0, "done": 1, "failed": 0}
        assert list(store.event_counts("done").values()).count(1) == N_SCENES + 1
        assert sum(store.event_counts("requeued").values()) >= 1
    assert not [p for p in (ds / "train").rglob(".*")]
    assert list((ds / ".tmp").iterdir()) == []
    rec = json.loads((scene / "scene.json").read_text())
    assert len(rec["extensions"]) == 1


def test_killed_between_two_renames_is_rolled_forward_or_back(tmp_path: Path) -> None:
    """Without RENAME_EXCHANGE the commit is two renames; a scene missing with its copy aside is recovered."""
    final = tmp_path / "train" / "f24_aperture5" / "scene1"
    for state, want in (("staged", "new"), ("aside only", "old")):
        shutil.rmtree(tmp_path / "train", ignore_errors=True)
        final.parent.mkdir(parents=True)
        aside = final.with_name(".scene1.pre-extend-x000001-0123456789")
        aside.mkdir()
        (aside / "which").write_text("old")
        if state == "staged":
            staged = final.with_name(".scene1.extend-x000001-0123456789")
            staged.mkdir()
            (staged / "which").write_text("new")
        recover_scene(final)
        assert (final / "which").read_text() == want


def test_trajectory_options(ds: Path, tmp_path: Path) -> None:
    res = extend(ds, "--cameras", "1", "--scenes", "1", "--trajectory", "arc_right")
    assert res.exit_code == 0, res.output
    entry = next(e for e in iter_manifest(ds) if e.scene_index == 1)
    rec = json.loads((ds / entry.output_dir / "scene.json").read_text())
    assert rec["cameras"]["cam04"]["preset"] == "arc_right"
    assert rec["camera_motion"]["cam04"] == "arc right 30 deg around the subject, constant speed"
    res = extend(ds, "--cameras", "1", "--scenes", "1", "--trajectory", "pan_left")
    assert res.exit_code == 0, res.output
    rec = json.loads((ds / entry.output_dir / "scene.json").read_text())
    assert rec["cameras"]["cam05"]["preset"] == "pan_left"
    assert rec["camera_motion"]["cam05"] == "pan left 20 deg, constant speed"
    poses, names = read_camera_json(ds / entry.output_dir / CAMERA_FILE)
    aim = np.asarray(rec["character"]["aim_point_cm"])
    start = poses[0, names.index("cam05")]
    assert np.isclose(np.linalg.norm(start[3, :3] - aim), rec["radius_m"] * 100.0)  # at the scene's radius
    assert np.allclose(start[0, :3], (aim - start[3, :3]) / np.linalg.norm(aim - start[3, :3]))  # facing it
    # a track from a camera file: the file's cam02 of the other scene
    other = next(e for e in iter_manifest(ds) if e.scene_index == 2)
    src = ds / other.output_dir / CAMERA_FILE
    res = extend(ds, "--cameras", "1", "--scenes", "1", "--trajectory-file", str(src), "--cam", "cam02")
    assert res.exit_code == 0, res.output
    poses, names = read_camera_json(ds / entry.output_dir / CAMERA_FILE)
    src_poses, src_names = read_camera_json(src)
    assert names[-1] == "cam06"
    assert np.allclose(poses[:, -1], src_poses[:, src_names.index("cam02")], atol=1e-9)


def _yaw_pitch_deg(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch (deg) of UE row-vector poses ``(F, 4, 4)``: the forward axis is row 0."""
    fwd = poses[:, 0, :3]
    return np.degrees(np.arctan2(fwd[:, 1], fwd[:, 0])), np.degrees(np.arcsin(np.clip(fwd[:, 2], -1, 1)))


def _aim_error_deg(poses: np.ndarray, aim: np.ndarray) -> float:
    """Largest angle between the forward axis and the direction to ``aim`` over the frames."""
    to_aim = aim - poses[:, 3, :3]
    to_aim /= np.linalg.norm(to_aim, axis=-1, keepdims=True)
    return float(np.degrees(np.arccos(np.clip(np.sum(poses[:, 0, :3] * to_aim, -1), -1, 1))).max())


def test_trajectory_sampler_types_are_measured_in_the_camera_file(ds: Path) -> None:
    """``--trajectory TYPE``: each new camera is of that type, measured from the written poses, from the scene's
    shared start (the released profile), and the old cameras stay byte for byte."""
    before = snapshot(ds)
    types = ["pan", "tilt", "translation", "arc", "random", "static"]
    for t in types:
        res = extend(ds, "--cameras", "1", "--scenes", "1", "--trajectory", t)
        assert res.exit_code == 0, res.output
    new = [f"cam{c:02d}" for c in range(4, 4 + len(types))]
    assert_old_kept(ds, before, new, only=1)
    entry = next(e for e in iter_manifest(ds) if e.scene_index == 1)
    scene = ds / entry.output_dir
    rec = json.loads((scene / "scene.json").read_text())
    poses, names = read_camera_json(scene / CAMERA_FILE)
    aim = np.asarray(rec["character"]["aim_point_cm"])
    start = poses[0, names.index("cam01"), 3, :3]  # the scene's shared start (cam01 pans from it)
    for t, name in zip(types, new, strict=True):
        assert rec["cameras"][name]["trajectory"] == t and rec["camera_motion"][name]
        p = poses[:, names.index(name)]
        loc = p[:, 3, :3]
        yaw, pitch = _yaw_pitch_deg(p)
        moved = np.linalg.norm(loc - loc[0], axis=-1)
        assert np.allclose(loc[0], start, atol=1e-6), t
        assert np.allclose(p[:, 1, 2], 0.0, atol=1e-9), t  # no roll: the right axis stays level
        if t == "pan":
            assert moved.max() < 1e-6 and np.ptp(pitch) < 1e-6 and np.ptp(yaw) > 4.9, (t, np.ptp(yaw))
        elif t == "tilt":
            assert moved.max() < 1e-6 and np.ptp(yaw) < 1e-6 and np.ptp(pitch) > 4.9, (t, np.ptp(pitch))
        elif t == "translation":  # along one world axis
            d = loc - loc[0]
            axis = int(np.argmax(np.abs(d[-1])))
            assert np.abs(np.delete(d, axis, axis=1)).max() < 1e-6 and abs(d[-1, axis]) > 50.0, (t, d[-1])
        elif t == "arc":  # the chord to a point at the same height and distance around the character, aimed
            ground = np.asarray(rec["character"]["location_cm"])
            r = np.linalg.norm((loc - ground)[:, :2], axis=-1)
            assert abs(r[-1] - r[0]) < 1e-6 and np.ptp(loc[:, 2]) < 1e-6 and moved.max() > 50.0
            chord = (loc[-1] - loc[0]) / np.linalg.norm(loc[-1] - loc[0])
            off = (loc - loc[0]) - ((loc - loc[0]) @ chord)[:, None] * chord
            assert np.abs(off).max() < 1e-6 and _aim_error_deg(p, aim) < 0.01  # the file keeps ~7 digits
        elif t == "random":  # through its recorded waypoints to the last one, path length as recorded
            wp = np.asarray(rec["cameras"][name]["waypoints_cm"])
            assert np.allclose(loc[-1], wp[-1], atol=1e-3), (loc[-1], wp[-1])
            steps = np.linalg.norm(np.diff(loc, axis=0), axis=-1).sum()
            length_cm = rec["cameras"][name]["length_m"] * 100
            assert 0.5 * length_cm < steps <= length_cm + 1e-3  # chords of the curve between frames
        else:  # static
            assert np.abs(p - p[0]).max() < 1e-9
    # a pan's angle as recorded: 5-45 deg
    assert 5.0 <= rec["cameras"]["cam04"]["angle_deg"] <= 45.0


def test_trajectory_type_follows_the_independent_profile(tmp_path: Path) -> None:
    """With the ``independent`` profile a new camera of a type gets its own start and that profile's geometry: a
    translation along one of its own start axes, orientation fixed."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CATALOG))
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(tmp_path / "c.yaml"), 1, 4, ds, RenderSettings(width=32, height=32, frames=FRAMES,
                 samples=1), n_cameras=2, camera_profile="independent")
    assert run_dataset(ds, "test-synthetic", progress=False).rendered == 1
    res = extend(ds, "--cameras", "2", "--trajectory", "translation")
    assert res.exit_code == 0, res.output
    scene = scene_dirs(ds)[0]
    poses, names = read_camera_json(scene / CAMERA_FILE)
    rec = json.loads((scene / "scene.json").read_text())
    starts = poses[0, :, 3, :3]
    assert len({tuple(np.round(s, 3)) for s in starts}) == 4  # every camera its own start
    for name in ("cam03", "cam04"):
        p = poses[:, names.index(name)]
        assert rec["cameras"][name]["trajectory"] == "translation" and "axes" not in rec["cameras"][name]
        assert np.abs(p[:, :3, :3] - p[0, :3, :3]).max() < 1e-6  # orientation fixed
        d = p[-1, 3, :3] - p[0, 3, :3]
        along = np.abs(p[0, :3, :3] @ d) / np.linalg.norm(d)  # cosines with its forward, right, up axes
        assert np.isclose(along.max(), 1.0, atol=1e-6), along


def test_trajectory_type_is_deterministic_from_seed_scene_camera(rendered: Path, tmp_path: Path) -> None:
    from render_jobs.planner import _sample_entry

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(rendered, d)
        res = extend(d, "--cameras", "2", "--trajectory", "random", "--seed", "7")
        assert res.exit_code == 0, res.output
    for sa, sb in zip(scene_dirs(a), scene_dirs(b), strict=True):
        assert (sa / CAMERA_FILE).read_bytes() == (sb / CAMERA_FILE).read_bytes()
        ra, rb = (json.loads((s / "scene.json").read_text()) for s in (sa, sb))
        assert ra["cameras"] == rb["cameras"]
    for entry in iter_manifest(a):
        poses, names = read_camera_json(a / entry.output_dir / CAMERA_FILE)
        want = _sample_entry(entry, FRAMES, [3, 4], 7, "random").poses_ue  # (seed 7, scene, camera 4 / 5)
        assert np.allclose(poses[:, 3:].swapaxes(0, 1), want, atol=1e-9)
        rec = json.loads((a / entry.output_dir / "scene.json").read_text())
        assert rec["cameras"]["cam05"]["seed"] == [7, entry.scene_index, 4]


def _plant_prop(scene: Path, xy_cm: list[float], radius_m: float) -> None:
    """Record a prop in scene.json as the Blender environments do (environment_build.obstacles), in the format
    multicam writes it."""
    rec = json.loads((scene / "scene.json").read_text())
    rec.setdefault("environment_build", {}).setdefault("obstacles", []).append(
        {"xy_cm": [float(v) for v in xy_cm], "radius_m": radius_m})
    (scene / "scene.json").write_text(json.dumps(rec, indent=2) + "\n")


def _prop_gap_m(loc_cm: np.ndarray, xy_cm: list[float]) -> float:
    """Horizontal distance (m) of a path to a point, densely sampled between the frames."""
    t = np.linspace(0.0, 1.0, 101)[None, :, None]
    dense = (loc_cm[:-1, None, :2] + t * (loc_cm[1:, None, :2] - loc_cm[:-1, None, :2])).reshape(-1, 2)
    return float(np.linalg.norm(dense - np.asarray(xy_cm), axis=-1).min() / 100.0)


def test_a_prop_on_the_path_makes_the_camera_drawn_again(rendered: Path, tmp_path: Path) -> None:
    from render_jobs.planner import _sample_entry

    entry = next(e for e in iter_manifest(rendered) if e.scene_index == 1)
    # a seed whose first arc for cam04 moves far enough from the shared start to plant a prop at its end
    seed = next(s for s in range(50) if np.linalg.norm(np.diff(_sample_entry(entry, FRAMES, [3], s, "arc").poses_ue[
        0, [0, -1], 3, :2], axis=0)) > 250.0)
    args = ["--cameras", "1", "--scenes", "1", "--trajectory", "arc", "--seed", str(seed)]
    free, ds = tmp_path / "free", tmp_path / "ds"
    shutil.copytree(rendered, free)
    shutil.copytree(rendered, ds)
    res = extend(free, *args)
    assert res.exit_code == 0, res.output
    poses, names = read_camera_json(free / entry.output_dir / CAMERA_FILE)
    path = poses[:, names.index("cam04"), 3, :3]
    prop = [float(v) for v in path[-1, :2]]  # where the camera would go
    scene = ds / entry.output_dir
    _plant_prop(scene, prop, 0.3)
    before = snapshot(ds)
    res = extend(ds, *args)
    assert res.exit_code == 0, res.output
    assert_old_kept(ds, before, ["cam04"], only=1)
    poses, names = read_camera_json(scene / CAMERA_FILE)
    loc = poses[:, names.index("cam04"), 3, :3]
    assert _prop_gap_m(path, prop) < 0.01  # the first draw went through the prop
    assert _prop_gap_m(loc, prop) > 1.2 + 0.3  # the redraw keeps the planned cameras' gap
    rec = json.loads((scene / "scene.json").read_text())
    cam = rec["cameras"]["cam04"]
    assert cam["trajectory"] == "arc" and cam["seed"][:3] == [seed, 1, 3] and cam["seed"][3] >= 1
    assert rec["environment_build"]["obstacles"] == [{"xy_cm": prop, "radius_m": 0.3}]
    # the same request again on a fresh copy: the same redraw, byte for byte
    again = tmp_path / "again"
    shutil.copytree(rendered, again)
    _plant_prop(again / entry.output_dir, prop, 0.3)
    assert extend(again, *args).exit_code == 0
    assert (again / entry.output_dir / CAMERA_FILE).read_bytes() == (scene / CAMERA_FILE).read_bytes()


def test_no_draw_clear_of_the_props_exits_2(ds: Path) -> None:
    entry = next(e for e in iter_manifest(ds) if e.scene_index == 1)
    scene = ds / entry.output_dir
    _plant_prop(scene, entry.placement.location_cm[:2], 1000.0)  # covers the whole scene
    before = files(ds)
    for args in (["--cameras", "1"], ["--cameras", "1", "--trajectory", "arc_left"],
                 ["--cameras", "1", "--trajectory-file", str(scene / CAMERA_FILE), "--cam", "cam01"]):
        res = extend(ds, "--scenes", "1", *args)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert "from prop 0" in lines[0] and ("32 draws" in lines[0] or "the track" in lines[0]), lines[0]
        assert files(ds) == before


def test_new_cameras_stay_inside_the_radius_free_of_tall_things(rendered: Path, tmp_path: Path) -> None:
    """scene.json's environment_build.clear_radius_m (Blender: buildings, trees, walls stand outside it): a draw
    that leaves it is drawn again; none inside gives exit 2."""
    ds = tmp_path / "ds"
    shutil.copytree(rendered, ds)
    entry = next(e for e in iter_manifest(ds) if e.scene_index == 1)
    scene = ds / entry.output_dir
    poses, _ = read_camera_json(scene / CAMERA_FILE)
    ground = np.asarray(entry.placement.location_cm[:2])
    start_m = float(np.linalg.norm(poses[0, 0, 3, :2] - ground)) / 100.0  # the shared start of every camera
    rec = json.loads((scene / "scene.json").read_text())
    rec["environment_build"] = {"clear_radius_m": start_m + 0.3}
    (scene / "scene.json").write_text(json.dumps(rec, indent=2) + "\n")
    res = extend(ds, "--cameras", "2", "--scenes", "1", "--trajectory", "translation")
    assert res.exit_code == 0, res.output
    poses, names = read_camera_json(scene / CAMERA_FILE)
    far = np.linalg.norm(poses[:, names.index("cam04"):, 3, :2] - ground, axis=-1).max() / 100.0
    assert far < start_m + 0.3  # e.g. vertical moves, or horizontal ones towards the character
    rec = json.loads((scene / "scene.json").read_text())
    rec["environment_build"] = {"clear_radius_m": 0.1}
    (scene / "scene.json").write_text(json.dumps(rec, indent=2) + "\n")
    before = files(ds)
    res = extend(ds, "--cameras", "1", "--scenes", "1")
    assert res.exit_code == 2 and "beyond the 0.10 m kept free of tall things" in res.output, res.output
    assert files(ds) == before


@pytest.mark.parametrize(("args", "option"), [
    (["--cameras", "0"], "--cameras"),
    (["--cameras", "97"], "--cameras"),
    (["--cameras", "1", "--scenes", "9"], "--scenes"),
    (["--cameras", "1", "--scenes", "x"], "--scenes"),
    (["--cameras", "1", "--cam", "cam01"], "--cam"),
    (["--cameras", "1", "--trajectory", "pan", "--trajectory-file", "f.json", "--cam", "cam01"], "--trajectory"),
    (["--cameras", "1", "--trajectory", "spiral"], "--trajectory"),
    (["--cameras", "1", "--trajectory", "Pan"], "--trajectory"),
    (["--cameras", "2", "--trajectory-file", "F", "--cam", "cam01"], "--cameras"),
    (["--cameras", "1", "--trajectory-file", "missing.json", "--cam", "cam01"], "--trajectory-file"),
    (["--cameras", "1", "--trajectory-file", "F", "--cam", "cam09"], "--trajectory-file"),
    (["--cameras", "1", "--seed", "-1"], "--seed"),
])
def test_bad_arguments_exit_2_naming_the_option(ds: Path, args: list[str], option: str) -> None:
    before = files(ds)
    src = scene_dirs(ds)[0] / CAMERA_FILE
    res = extend(ds, *[str(src) if a == "F" else a for a in args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), res.output
    assert files(ds) == before


def test_trajectory_file_with_other_frame_count_is_refused(ds: Path, tmp_path: Path) -> None:
    other = tmp_path / "cams.json"
    poses, names = read_camera_json(scene_dirs(ds)[0] / CAMERA_FILE)
    other.write_text(render_camera_json(poses[:4], names))
    res = extend(ds, "--cameras", "1", "--trajectory-file", str(other), "--cam", "cam01")
    assert res.exit_code == 2 and "--trajectory-file" in res.output and "4 frames" in res.output, res.output


def test_scenes_without_their_plan(ds: Path, tmp_path: Path) -> None:
    # a released-dataset-like folder: scenes, no plan
    released = tmp_path / "released"
    shutil.copytree(scene_dirs(ds)[0], released / "train" / "f24_aperture5" / "scene1")
    res = extend(released, "--cameras", "1")
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "plan.json" in lines[0] and "missing" in lines[0]
    # a planned scene whose scene.json is gone
    (scene_dirs(ds)[0] / "scene.json").unlink()
    before = files(ds)
    res = extend(ds, "--cameras", "1")
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "no scene.json" in lines[0], res.output
    assert files(ds) == before


def test_unrendered_scene_is_refused(tmp_path: Path) -> None:
    ds = _plan(tmp_path, CATALOG, 1, 2, RenderSettings(width=32, height=32, frames=4, samples=1))
    res = extend(ds, "--cameras", "1")
    assert res.exit_code == 2 and "not rendered yet" in res.output, res.output


def test_unfinished_other_request_is_named(ds: Path) -> None:
    killed = extend_process(ds, "--cameras", "2", "--scenes", "1", env={KILL_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL
    res = extend(ds, "--cameras", "3", "--scenes", "1")
    assert res.exit_code == 2 and "unfinished extension job" in res.output and "cam04, cam05" in res.output


# -- Unreal (fake editor) ------------------------------------------------------------------------------------


def test_unreal_backend_extends_through_the_fake_editor(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from ue_support.fake_editor import write_fake_editor, write_fake_project
    from ue_support.jobs import ANIM, MAP, MESH

    project = write_fake_project(tmp_path / "MultiCam.uproject", {MAP: "World", MESH: "SkeletalMesh",
                                                                   ANIM: "AnimSequence"})
    cat = {"environments": [{"id": "town", "asset": MAP, "size": "huge",
                             "anchors": [{"location_cm": [0, 0, 0], "free_radius_m": 10}]}],
           "characters": [{"id": "hero", "asset": MESH, "height_m": 1.8}],
           "animations": [{"id": "walk", "asset": ANIM, "length_frames": 120, "fps": 30, "loopable": True}]}
    ds = _plan(tmp_path, cat, 1, 2, RenderSettings(width=32, height=32, frames=4, fps=15, samples=1))
    exe = write_fake_editor(tmp_path / "UE", "ok")
    opts = ["-o", f"editor={exe}", "-o", f"project={project}", "-o", f"work_root={tmp_path / 'work'}"]
    summary = run_dataset(ds, "unreal", backend_options={"editor": str(exe), "project": str(project),
                                                         "work_root": str(tmp_path / "work")}, progress=False)
    assert summary.rendered == 1
    before = snapshot(ds)
    res = extend(ds, "--cameras", "1", *opts)
    assert res.exit_code == 0, res.output
    assert_old_kept(ds, before, ["cam03"])
    entry = next(iter(iter_manifest(ds)))
    settings, _ = load_settings(ds)
    poses, names = read_camera_json(ds / entry.output_dir / CAMERA_FILE)
    want = materialize(entry, settings, 3).poses_array()
    assert names == ["cam01", "cam02", "cam03"]
    assert np.allclose(poses, want, atol=1e-2)  # what the editor evaluated is what was sampled for cam03
    rec = json.loads((ds / entry.output_dir / "scene.json").read_text())
    assert rec["backend"] == "unreal" and rec["extensions"][0]["backend"] == "unreal"


# -- Blender (tiny sizes) ------------------------------------------------------------------------------------


def _blender_dataset(tmp_path: Path, catalog: dict[str, Any], size: int, frames: int, samples: int,
                     n_cams: int, seed: int) -> Path:
    pytest.importorskip("bpy")
    settings = RenderSettings(width=size, height=size, frames=frames, samples=samples, denoise=False,
                              depth_of_field=False, video_crf=8)
    ds = _plan(tmp_path, catalog, 1, n_cams, settings, seed=seed)
    summary = run_dataset(ds, "blender", backend_options={"device": "CPU"}, progress=False)
    assert summary.rendered == 1, summary.errors
    return ds


BEACON_CATALOG = {
    "environments": [{"id": "void", "asset": "builtin:void", "size": "small", "anchors": [{"location_cm": [0, 0, 0]}]}],
    "characters": [{"id": "beacon", "asset": "builtin:beacon"}],
    "animations": [{"id": "orbit", "asset": "builtin:orbit", "length_frames": 200, "loopable": True}],
}


@pytest.mark.blender
@pytest.mark.slow
def test_blender_old_and_new_cameras_see_the_beacon_at_the_same_instant(tmp_path: Path) -> None:
    from exporters.video import read_video_frames
    from multicam.conventions import intrinsics_matrix, project_points_ue, ue_rotator_to_axes
    from render_jobs.blender.calibration import beacon_path_cm

    sys.path.insert(0, str(Path(__file__).parent))
    from test_blender_geometry import detect_blobs  # the issue-4 beacon test's blob detector

    size, frames = 96, 6
    ds = _blender_dataset(tmp_path, BEACON_CATALOG, size, frames, 4, 2, seed=11)
    before = snapshot(ds)
    res = extend(ds, "--cameras", "2", "-o", "device=CPU")
    assert res.exit_code == 0, res.output
    res = extend(ds, "--cameras", "1", "--trajectory", "arc_left", "-o", "device=CPU")  # always facing the beacon
    assert res.exit_code == 0, res.output
    scene = scene_dirs(ds)[0]
    assert_old_kept(ds, before, ["cam03", "cam04", "cam05"])
    rec = json.loads((scene / "scene.json").read_text())
    anim, place = rec["animation"], rec["placement"]
    # the beacon's path at the plan's time line (animation start offset included), placed and turned by the plan
    times = anim["start_frame"] / anim["fps"] + np.arange(frames) / 15.0
    beacon = np.asarray(place["location_cm"]) + beacon_path_cm(times) @ ue_rotator_to_axes([0.0, place["yaw_deg"],
                                                                                              0.0])
    cams, names = read_camera_json(scene / CAMERA_FILE)
    assert names == ["cam01", "cam02", "cam03", "cam04", "cam05"]
    k = intrinsics_matrix(rec["camera_set"]["focal_mm"], size, size, sensor_fit="horizontal")
    tol = 0.01 * size
    checked = np.zeros((len(names), frames), bool)
    for c, name in enumerate(names):
        video = read_video_frames(scene / "videos" / f"{name}.mp4")
        for f in range(frames):
            uv, depth = project_points_ue(beacon, cams[f, c], k)
            if not (depth[f] > 0 and np.all((uv[f] > 4) & (uv[f] < size - 4))):
                continue  # a pan or tilt may turn a camera away from the beacon
            blobs = detect_blobs(video[f])
            near = np.linalg.norm(blobs - uv[f], axis=-1)
            assert near.size and near.min() < tol, f"{name} frame {f}: beacon {near.min() if near.size else '-'} px " \
                                                   f"from its projection (tolerance {tol:.2f} px)"
            # a camera one frame off would fail: the neighbouring instants project outside the tolerance
            for g in (f - 1, f + 1):
                if 0 <= g < frames:
                    assert np.linalg.norm(uv[g] - blobs[near.argmin()]) > tol, f"{name} frame {f}: beacon too slow"
            checked[c, f] = True
    # every camera, old and new, was checked in some frames; most frames were checked
    assert checked.any(axis=1).all() and checked.mean() >= 0.4, checked


PLAZA_CATALOG = {
    "environments": [{"id": "plaza", "asset": "builtin:plaza", "anchors": [{"location_cm": [0, 0, 0]}]}],
    "characters": [{"id": "ada", "asset": "builtin:mannequin_slim"}],
    "animations": [{"id": "walk", "asset": "builtin:walk", "length_frames": 60, "loopable": True}],
}


@pytest.mark.blender
@pytest.mark.slow
def test_blender_new_camera_on_an_old_track_renders_the_old_video(tmp_path: Path) -> None:
    """The scene is rebuilt exactly (props laid out around the planned cameras, the walk at the planned start
    offset, the same light): a new camera given cam01's own track renders cam01's frames."""
    from exporters.video import read_video_frames

    ds = _blender_dataset(tmp_path, PLAZA_CATALOG, 48, 3, 2, 3, seed=5)
    scene = scene_dirs(ds)[0]
    src = tmp_path / "cam01_track.json"
    shutil.copyfile(scene / CAMERA_FILE, src)
    before = snapshot(ds)
    res = extend(ds, "--cameras", "1", "--trajectory-file", str(src), "--cam", "cam01", "-o", "device=CPU")
    assert res.exit_code == 0, res.output
    assert_old_kept(ds, before, ["cam04"])
    old, new = (read_video_frames(scene / "videos" / f"{n}.mp4").astype(int) for n in ("cam01", "cam04"))
    other = read_video_frames(scene / "videos" / "cam02.mp4").astype(int)

    def differ(a: np.ndarray, b: np.ndarray) -> float:  # fraction of pixels off by more than 10 levels
        return float((np.abs(a - b).max(-1) > 10).mean())

    assert differ(new, old) < 0.01, differ(new, old)  # the same frames up to path-tracing noise at edges
    assert differ(other, old) > 0.1  # another camera's frames are nothing alike
    assert differ(new[1:], old[:-1]) > 0.1  # cam04 one frame off would not match
    # the props laid out are recorded, clear of the planned cameras by the environments' gap
    rec = json.loads((scene / "scene.json").read_text())
    props = rec["environment_build"]["obstacles"]
    assert props and len(props) == rec["environment_build"]["props"]
    poses, names = read_camera_json(scene / CAMERA_FILE)
    for p in props:
        gaps = np.linalg.norm(poses[:, :3, 3, :2] - np.asarray(p["xy_cm"]), axis=-1) / 100.0
        assert gaps.min() > 1.2 + p["radius_m"], (p, gaps.min())
    ground = np.asarray(rec["placement"]["location_cm"][:2])
    far = np.linalg.norm(poses[:, :3, 3, :2] - ground, axis=-1).max() / 100.0
    assert far < rec["environment_build"]["clear_radius_m"]  # inside the circle kept free of tall things
    # a scene whose scene.json predates the record: the render itself refuses a camera standing in a prop
    del rec["environment_build"]["obstacles"], rec["environment_build"]["clear_radius_m"]
    (scene / "scene.json").write_text(json.dumps(rec, indent=2) + "\n")
    inside = np.repeat(poses[:1, :1], 3, axis=0).copy()
    inside[:, 0, 3, :2] = props[0]["xy_cm"]
    track = tmp_path / "in_a_prop.json"
    track.write_text(render_camera_json(inside, ["cam01"]))
    before = files(ds)
    res = extend(ds, "--cameras", "1", "--trajectory-file", str(track), "--cam", "cam01", "-o", "device=CPU")
    assert res.exit_code == 1 and "cam05 passes 0.00 m from prop 0" in res.output, res.output
    assert files(ds) == before
