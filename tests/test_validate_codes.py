"""multicam validate: each defect planted in a real dataset (made by ``multicam generate`` with the test-synthetic
backend) is reported with its exact code, once, while the rest of the dataset is still checked and summarised."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cli_support import RELEASED_VAL_DIR, generate_synthetic
from typer.testing import CliRunner

from exporters.camera_json import read_camera_json, write_camera_json
from exporters.validate import CODES
from exporters.video import encode_mp4, read_video_frames
from multicam_app import app

runner = CliRunner()
FRAMES, SIZE, CAMS = 81, 32, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "ds"
    generate_synthetic(out, scenes=2, size=SIZE, frames=FRAMES, cameras=CAMS)
    return out


def _validate(*args: str) -> tuple[int, list[str], str]:
    res = runner.invoke(app, ["validate", *args, "--no-progress"])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    return res.exit_code, lines, res.stdout


def _scenes(ds: Path) -> list[Path]:
    return sorted(p.parent.parent for p in (ds / "train").rglob("camera_extrinsics.json"))


def _rewrite_poses(scene: Path, edit: Callable[[np.ndarray], object]) -> None:
    path = scene / "cameras" / "camera_extrinsics.json"
    poses, names = read_camera_json(path)
    edit(poses)
    write_camera_json(path, poses, names)


def _encode(path: Path, frames: np.ndarray, codec: str = "libx264", pix_fmt: str = "yuv420p") -> None:
    """A video through PyAV directly (not our encoder), for codecs and pixel formats our encoder never writes."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream(codec, rate=Fraction(15))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _csv_rows(ds: Path) -> list[list[str]]:
    with open(ds / "metadata.csv", newline="") as fh:
        return list(csv.reader(fh))


def _write_rows(ds: Path, rows: list[list[str]]) -> None:
    with open(ds / "metadata.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _turn_yaw_90(p: np.ndarray) -> None:
    r = p[4, 1, :3, :3].copy()
    p[4, 1, 0, :3], p[4, 1, 1, :3] = r[1], -r[0]


def _moving(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)


# kind -> (what to do to a copy of the dataset, the codes it must produce, text the planted line must hold)
DEFECTS: dict[str, tuple[Callable[[Path, Path], object], set[str], str]] = {
    "binary camera file": (lambda ds, s: (s / "cameras/camera_extrinsics.json").write_bytes(bytes(range(256)) * 4),
                           {"camera-file-encoding"}, "binary file (NUL byte at offset 0)"),
    "non-UTF-8 camera file": (lambda ds, s: (s / "cameras/camera_extrinsics.json").write_bytes(
        b'{"frame0": {"cam01": "\xff\xfe [1 0 0 0]'), {"camera-file-encoding"}, "not UTF-8 text (byte 0xff"),
    "truncated camera file": (lambda ds, s: (s / "cameras/camera_extrinsics.json").write_bytes(
        (s / "cameras/camera_extrinsics.json").read_bytes()[:700]), {"camera-file-json"}, "truncated?"),
    "bad matrix string": (lambda ds, s: (s / "cameras/camera_extrinsics.json").write_text(
        (s / "cameras/camera_extrinsics.json").read_text().replace("] [", "] ", 1)), {"camera-file-layout"},
        "frame0.cam01: expected 4 bracketed rows"),
    "camera file is a folder": (lambda ds, s: ((s / "cameras/camera_extrinsics.json").unlink(),
                                                (s / "cameras/camera_extrinsics.json").mkdir()),
                                {"camera-file-unreadable"}, "cannot be read (Is a directory)"),
    "no camera file": (lambda ds, s: (s / "cameras/camera_extrinsics.json").unlink(), {"camera-file-missing"},
                       "file not found"),
    "skewed rotation": (lambda ds, s: _rewrite_poses(s, lambda p: p[3, 2, 0, :3].__imul__(1.01)),
                        {"rotation-not-orthonormal"}, "cam03: frame3: |R R^T - I| = 0.0201"),
    "mirrored camera": (lambda ds, s: _rewrite_poses(s, lambda p: p[:, 0, 1, :3].__imul__(-1)),
                        {"rotation-reflection", "scene-json-mismatch"},  # it also reads as rolled 180 deg
                        "cam01: frame"),
    "homogeneous column": (lambda ds, s: _rewrite_poses(s, lambda p: p[2, 1, 0].__setitem__(3, 0.5)),
                           {"matrix-not-rigid"}, "cam02: frame2: homogeneous column"),
    "teleport": (lambda ds, s: _rewrite_poses(s, lambda p: p[4, 1, 3].__setitem__(slice(0, 3), p[4, 1, 3, :3] + 5000)),
                 {"teleport-step"}, "cam02: frame"),
    "sudden turn": (lambda ds, s: _rewrite_poses(s, _turn_yaw_90), {"teleport-turn"}, "cam02: frame"),
    "truncated scene.json": (lambda ds, s: (s / "scene.json").write_bytes((s / "scene.json").read_bytes()[:100]),
                             {"scene-json-invalid"}, "truncated?"),
    "binary scene.json": (lambda ds, s: (s / "scene.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"),
                          {"scene-json-invalid"}, "binary file"),
    "no scene.json": (lambda ds, s: (s / "scene.json").unlink(), {"scene-json-missing"}, "missing"),
    "scene.json frames": (lambda ds, s: (s / "scene.json").write_text(
        json.dumps({**json.loads((s / "scene.json").read_text()), "frames": 99})), {"scene-json-mismatch"},
        f"frames 99, the camera file has {FRAMES}"),
    "moved start": (lambda ds, s: _rewrite_poses(s, lambda p: p[0, 2, 3].__setitem__(0, p[0, 2, 3, 0] + 10)),
                    {"scene-json-mismatch"}, "cam03: start.location_cm"),
    "missing video": (lambda ds, s: (s / "videos/cam02.mp4").unlink(), {"video-missing", "metadata-row-extra"},
                      "cam02.mp4: missing (the camera file has cam02)"),
    "extra video": (lambda ds, s: shutil.copy(s / "videos/cam01.mp4", s / "videos/cam09.mp4"),
                    {"video-extra", "metadata-row-missing"}, "cam09.mp4: video without a camera"),
    "garbage video": (lambda ds, s: (s / "videos/cam02.mp4").write_bytes(b"\x00" * 4096), {"video-undecodable"},
                      "cam02.mp4: cannot be decoded"),
    "short video": (lambda ds, s: encode_mp4(s / "videos/cam02.mp4", _moving(FRAMES - 3)), {"video-frames"},
                    f"cam02.mp4: {FRAMES - 3} frames decoded, the camera file has {FRAMES}"),
    "other size": (lambda ds, s: encode_mp4(s / "videos/cam03.mp4", _moving(FRAMES, 48)), {"video-inconsistent"},
                   "cam03.mp4: 48x48 at 15 fps differs from the scene's 32x32"),
    "mpeg4 video": (lambda ds, s: _encode(s / "videos/cam02.mp4", _moving(FRAMES), "mpeg4"), {"video-codec"},
                    "codec mpeg4, expected h264"),
    "yuv444p video": (lambda ds, s: _encode(s / "videos/cam02.mp4", _moving(FRAMES), pix_fmt="yuv444p"),
                      {"video-pix-fmt"}, "pixel format yuv444p, expected yuv420p"),
    "black video": (lambda ds, s: encode_mp4(s / "videos/cam01.mp4", np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)),
                    {"video-black"}, "cam01.mp4: every frame is black"),
    "still video": (lambda ds, s: encode_mp4(s / "videos/cam01.mp4", np.repeat(_moving(1), FRAMES, 0)),
                    {"video-frozen"}, f"every frame is the same picture ({FRAMES} of {FRAMES} frames)"),
    "video stuck half way": (lambda ds, s: encode_mp4(s / "videos/cam01.mp4", np.concatenate(
        [_moving(3), np.repeat(_moving(1, seed=1), FRAMES - 3, 0)])), {"video-frozen"},
        f"frames 3..{FRAMES - 1} are the same picture ({FRAMES - 3} of {FRAMES} frames)"),
    "deleted scene": (lambda ds, s: shutil.rmtree(s), {"scene-missing", "metadata-row-extra"},
                      "planned in plan/manifest.jsonl but not there"),
    "garbage manifest line": (lambda ds, s: open(ds / "plan/manifest.jsonl", "a").write('{"broken\n'),
                              {"plan-unreadable"}, "manifest.jsonl:3: damaged manifest line"),
    "no metadata.csv": (lambda ds, s: (ds / "metadata.csv").unlink(), {"metadata-missing"},
                        "run `multicam captions`"),
    "binary metadata.csv": (lambda ds, s: (ds / "metadata.csv").write_bytes(b"\xff\xfe\x00\x01" * 10),
                            {"metadata-invalid"}, "cannot be read"),
    "dropped row": (lambda ds, s: _write_rows(ds, _csv_rows(ds)[:-1]), {"metadata-row-missing"}, "no row for"),
    "row without video": (lambda ds, s: _write_rows(ds, [*_csv_rows(ds), ["f1_aperture1/scene7/videos/cam01.mp4",
                                                                          "x", ""]]),
                          {"metadata-row-extra"}, "row for f1_aperture1/scene7/videos/cam01.mp4"),
    "duplicate row": (lambda ds, s: _write_rows(ds, [*_csv_rows(ds), _csv_rows(ds)[1]]), {"metadata-row-duplicate"},
                      "2 rows for"),
}


def test_every_code_is_planted() -> None:
    planted = set().union(*(codes for _, codes, _ in DEFECTS.values())) | {"camera-frames", "video-size"}
    assert planted == set(CODES)


def test_the_generated_dataset_is_clean(dataset: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code, lines, out = _validate(str(dataset), "--frames", str(FRAMES), "--size", str(SIZE), "--json", str(report))
    assert code == 0, lines
    assert lines == []
    assert f"2 scenes, {2 * CAMS} cameras checked: all complete" in out
    rep = json.loads(report.read_text())
    assert rep["ok"] is True and rep["problems"] == [] and rep["scenes"] == 2 and rep["cameras"] == 2 * CAMS
    assert rep["limits"] == {"decode": True, "frames": FRAMES, "size": [SIZE, SIZE], "max_step_m": 1.0,
                             "max_turn_deg": 30.0}


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_planted_defect_has_its_code(dataset: Path, tmp_path: Path, kind: str) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    damaged, clean = _scenes(ds)
    plant, codes, text = DEFECTS[kind]
    plant(ds, damaged)
    report = tmp_path / "report.json"
    code, lines, out = _validate(str(ds), "--json", str(report))
    assert code == 1
    got = {ln.split(" ", 1)[0] for ln in lines}
    assert got == codes, lines
    assert any(text in ln for ln in lines), lines
    if kind == "mirrored camera":
        assert any("det R = -1, expected +1" in ln and ln.endswith(f"({FRAMES} frames)") for ln in lines), lines
    assert all(str(clean) not in ln for ln in lines), lines  # the clean scene stays clean
    rep = json.loads(report.read_text())
    assert [f"{p['code']} {p['path']}: {p['message']}" for p in rep["problems"]] == lines
    assert rep["counts"] == {c: sum(ln.startswith(c + " ") for ln in lines) for c in sorted(codes)}
    n_scenes = 1 if kind == "deleted scene" else 2
    assert out.startswith(f"{n_scenes} scenes, ") and f"{len(lines)} problems (" in out


def test_expected_frames_and_size(dataset: Path) -> None:
    code, lines, _ = _validate(str(dataset), "--frames", "9", "--size", "64")
    assert code == 1
    assert sorted({ln.split(" ", 1)[0] for ln in lines}) == ["camera-frames", "video-size"]
    assert sum(ln.startswith("camera-frames ") and f"{FRAMES} frames, expected 9" in ln for ln in lines) == 2
    assert sum(ln.startswith("video-size ") and "32x32, expected 64x64" in ln for ln in lines) == 2 * CAMS


def test_many_problems_one_run(dataset: Path, tmp_path: Path) -> None:
    """A binary camera file in one scene, a truncated scene.json and a black video in the other: all three are
    reported, and the other scene's videos are still decoded."""
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    a, b = _scenes(ds)
    DEFECTS["binary camera file"][0](ds, a)
    DEFECTS["truncated scene.json"][0](ds, b)
    DEFECTS["black video"][0](ds, b)
    code, lines, out = _validate(str(ds))
    assert code == 1
    assert [ln.split(" ", 1)[0] for ln in lines] == ["camera-file-encoding", "scene-json-invalid", "video-black"]
    assert "3 problems (camera-file-encoding 1, scene-json-invalid 1, video-black 1)" in out


def test_teleport_bounds_are_options(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    s = _scenes(ds)[0]
    _rewrite_poses(s, lambda p: p[4, 1, 3].__setitem__(0, p[4, 1, 3, 0] + 150))  # 1.5 m in one frame
    code, lines, _ = _validate(str(ds), "--max-step-m", "1.4", "--max-turn-deg", "180")
    assert code == 1 and [ln.split(" ")[0] for ln in lines] == ["teleport-step"], lines
    assert "cam02: frame" in lines[0] and "(2 frames)" in lines[0]
    code, lines, _ = _validate(str(ds), "--max-step-m", "2.5", "--max-turn-deg", "180")
    assert code == 0, lines


def test_released_validation_file_passes(tmp_path: Path) -> None:
    """The published ten basic trajectories: rigid, det +1, no teleport at the default bounds."""
    scene = tmp_path / "10basic_trajectories"
    shutil.copytree(RELEASED_VAL_DIR, scene)
    _, names = read_camera_json(scene / "cameras" / "camera_extrinsics.json")
    for i, name in enumerate(names):
        encode_mp4(scene / "videos" / f"{name}.mp4", _moving(81, 16, seed=i))
    code, lines, out = _validate(str(scene), "--frames", "81")
    assert code == 0, lines
    assert "1 scenes, 10 cameras checked: all complete" in out
    (scene / "videos" / "cam04.mp4").unlink()
    code, lines, _ = _validate(str(scene), "--no-decode")
    assert code == 1 and lines == [f"video-missing {scene}/videos/cam04.mp4: missing (the camera file has cam04)"]


def test_bad_arguments_exit_2(tmp_path: Path, dataset: Path) -> None:
    for args, msg in ((["--max-step-m", "0"], "--max-step-m: must be a finite number > 0"),
                      (["--max-turn-deg", "nan"], "--max-turn-deg: must be a finite number > 0 and <= 180"),
                      (["--json", str(tmp_path)], "is a folder, expected a file name")):
        res = runner.invoke(app, ["validate", str(dataset), *args])
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and msg in res.stderr, res.output


def test_frames_decode_as_written(dataset: Path) -> None:
    """The fixture's videos are real, changing pictures (so 'clean' above is not vacuous)."""
    v = read_video_frames(_scenes(dataset)[0] / "videos" / "cam01.mp4")
    assert v.shape == (FRAMES, SIZE, SIZE, 3) and np.abs(np.diff(v.astype(int), axis=0)).max() > 1


@pytest.mark.blender
def test_a_tiny_blender_dataset_passes_then_damage_is_found(tmp_path: Path) -> None:
    """Real renders (2 cameras x 4 frames at 32 px, 1 sample) pass every check; a black video and a mirrored camera
    planted in them are found."""
    pytest.importorskip("bpy")
    ds = tmp_path / "bl"
    res = runner.invoke(app, ["generate", "--out", str(ds), "--scenes", "1", "--resolution", "32", "--frames", "4",
                              "--cameras", "2", "--samples", "1", "--no-denoise", "--no-dof", "--no-progress"])
    assert res.exit_code == 0, res.output
    code, lines, out = _validate(str(ds), "--frames", "4", "--size", "32")
    assert code == 0, lines
    assert "1 scenes, 2 cameras checked: all complete" in out
    (scene,) = _scenes(ds)
    encode_mp4(scene / "videos/cam02.mp4", np.zeros((4, 32, 32, 3), np.uint8))
    _rewrite_poses(scene, lambda p: p[:, 0, 1, :3].__imul__(-1))
    code, lines, _ = _validate(str(ds))
    assert code == 1
    assert {ln.split(" ", 1)[0] for ln in lines} == {"video-black", "rotation-reflection", "scene-json-mismatch"}


def test_default_bounds_pass_sampled_trajectories() -> None:
    """The sampler's own trajectories (500 scenes x 10 cameras x 81 frames) are never teleports at the defaults, and
    the bounds are not slack by orders of magnitude (the largest turn reaches a fifth of the default)."""
    from exporters.validate import MAX_TURN_DEG, Limits, check_poses
    from trajectory.sampler import sample_scenes

    batch = sample_scenes(0, range(1, 501), n_cameras=10, frames=81)
    worst = 0.0
    for s in batch.scenes:
        poses = s.poses_frame_major()
        assert check_poses(poses, [f"cam{i + 1:02d}" for i in range(10)], Path("x"), Limits()) == []
        r = poses[..., :3, :3]
        cos = (np.trace(r[1:] @ np.swapaxes(r[:-1], -1, -2), axis1=-2, axis2=-1) - 1) / 2
        worst = max(worst, float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max()))
    assert MAX_TURN_DEG / 5 < worst < MAX_TURN_DEG
