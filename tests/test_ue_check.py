"""``multicam unreal check`` end to end against the fake editor (tests/ue_support: the real editor script on a fake
``unreal`` that renders marker spheres with a camera model of its own, from the engine's formulas)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exporters.camera_json import CAMERA_FILE, read_camera_json
from multicam.conventions import intrinsics_matrix, project_points_ue
from multicam_app import app
from render_jobs.unreal_backend import frame_files, read_rgb_frame
from render_jobs.unreal_check import (
    MARKER_RADIUS_CM,
    MARKERS_CM,
    CheckSpec,
    check_camera_poses,
    compare_markers,
)
from ue_scripts.job_file import JobError, job_to_dict, parse_job

sys.path.insert(0, str(Path(__file__).parent))
from ue_support.fake_editor import write_fake_editor, write_fake_project  # noqa: E402

runner = CliRunner()


@pytest.fixture
def install(tmp_path: Path) -> tuple[Path, Path]:
    exe = write_fake_editor(tmp_path / "Engine" / "Binaries" / "Linux")
    return exe, write_fake_project(tmp_path / "Empty.uproject", {})


def _check(install: tuple[Path, Path], *args: str) -> tuple[int, str]:
    exe, project = install
    res = runner.invoke(app, ["unreal", "check", "--editor", str(exe), "--project", str(project), *args])
    return res.exit_code, res.output


def _kept(keep: Path, spec: CheckSpec) -> tuple[np.ndarray, list[list[np.ndarray]], list[str]]:
    poses, names = read_camera_json(keep / CAMERA_FILE)
    frames = [[read_rgb_frame(p, spec.size_px, spec.size_px)
               for p in frame_files([keep / "frames" / n / f"{f:04d}.png" for f in range(spec.frames)], n)]
              for n in names]
    return poses, frames, names


def test_check_passes_on_the_fake_editor_and_keeps_its_files(install: tuple[Path, Path], tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    code, out = _check(install, "--keep", str(keep))
    assert code == 0, out
    assert "PASS" in out and out.count(": ok") == 2
    job = json.loads((keep / "job.json").read_text())
    assert job["map"] == "/Engine/Maps/Entry" and job["character_mesh"] == "" and len(job["markers_cm"]) == 3
    poses, frames, names = _kept(keep, CheckSpec())
    assert names == ["cam01", "cam02"] and poses.shape == (8, 2, 4, 4)
    # every marker was found in every frame, within the tolerance (0.64 px at 128 px)
    results = compare_markers(poses, frames, names, CheckSpec())
    assert all(r.missing == 0 and r.max_error_px <= 0.64 for r in results)


def test_check_of_another_size_and_length(install: tuple[Path, Path], tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    code, out = _check(install, "--keep", str(keep), "--cameras", "3", "--frames", "12", "--resolution", "256")
    assert code == 0, out
    assert "3 cameras x 12 frames at 256 px" in out
    assert len(read_camera_json(keep / CAMERA_FILE)[1]) == 3


def test_a_camera_one_frame_off_or_turned_fails(install: tuple[Path, Path], tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    assert _check(install, "--keep", str(keep))[0] == 0
    spec = CheckSpec()
    poses, frames, names = _kept(keep, spec)
    tol = spec.tolerance * spec.size_px
    # poses one frame late (what a [start, end] vs [start, end) mix-up gives): every camera fails
    late = np.concatenate([poses[1:], poses[-1:]], axis=0)
    assert all(r.max_error_px > tol for r in compare_markers(late, frames, names, spec))
    # half a degree of yaw: fails too
    turned = poses.copy()
    a = np.radians(0.5)
    rz = np.array([[np.cos(a), np.sin(a), 0, 0], [-np.sin(a), np.cos(a), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    turned[..., :3, :3] = turned[..., :3, :3] @ rz[:3, :3]
    assert all(r.max_error_px > tol for r in compare_markers(turned, frames, names, spec))


def test_markers_are_apart_and_in_view_in_every_check_frame() -> None:
    spec = CheckSpec(cameras=10, frames=300)
    poses = np.swapaxes(check_camera_poses(spec), 0, 1)  # (F, C, 4, 4)
    k = intrinsics_matrix(spec.focal_mm, spec.size_px, spec.size_px)
    uv, depth = project_points_ue(np.asarray(MARKERS_CM), poses, k)
    assert (depth > 0).all()
    assert ((uv > 8) & (uv < spec.size_px - 8)).all()
    gaps = np.linalg.norm(uv[:, :, :, None] - uv[:, :, None, :], axis=-1)
    radius_px = k[0, 0] * MARKER_RADIUS_CM / 100.0 / depth.min()
    off_diag = gaps[:, :, ~np.eye(len(MARKERS_CM), dtype=bool)]
    assert off_diag.min() > 4 * radius_px


def test_bad_configuration_is_one_line_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["unreal", "check", "--editor", str(tmp_path / "nope"), "--project",
                              str(tmp_path / "nope.uproject")])
    assert res.exit_code == 2 and "not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["unreal", "check", "--frames", "1"], env={"MULTICAM_UE_EDITOR": "",
                                                                        "MULTICAM_UE_PROJECT": ""})
    assert res.exit_code == 2


def test_job_file_rejects_half_a_character_and_bad_markers(tmp_path: Path) -> None:
    from render_jobs.unreal_check import check_job

    good = job_to_dict(check_job(CheckSpec(), tmp_path))
    assert parse_job(good).markers_cm == [list(p) for p in MARKERS_CM]
    cases = (({"character_mesh": "/Game/A.A"}, "both"), ({"markers_cm": [[0.0, 1.0]]}, "[x, y, z]"),
             ({"marker_radius_cm": 0.0}, "marker_radius_cm"), ({"depth_of_field": True}, "depth_of_field"))
    for change, words in cases:
        with pytest.raises(JobError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_job({**good, **change})
