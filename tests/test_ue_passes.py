"""Depth and character-mask passes of the ``unreal`` backend (issue 12 item 4): Movie Render Queue post-process
material passes in a multilayer EXR, turned into the files the Blender backend writes (``depth/camNN/00000.png``
uint16 planar millimetres, ``masks/camNN.mp4``).

The fake engine (tests/ue_support/fake_unreal.py) models the scene the passes see on its own: a ground plane at
z = 0 and the character as an upright capsule, SceneDepth as planar view depth in cm. The expected depth here comes
from the exported camera file through multicam.conventions (pixel rays hitting the ground), not from the fake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from exporters.camera_json import CAMERA_FILE, read_camera_json
from exporters.video import read_video_frames
from multicam.conventions import intrinsics_matrix, project_points_ue, ue_to_opencv_c2w
from render_jobs.backend import RenderError
from render_jobs.blender.exr import read_exr
from render_jobs.execute import render_scene
from render_jobs.unreal_backend import UnrealBackend

sys.path.insert(0, str(Path(__file__).parent))
from ue_support import fake_unreal  # noqa: E402
from ue_support.fake_editor import write_fake_editor, write_fake_project  # noqa: E402
from ue_support.jobs import ANIM, MAP, MESH, make_job  # noqa: E402

MASK_MATERIAL = "/Game/MultiCam/PP_CustomStencil.PP_CustomStencil"
SIZE, FRAMES = 48, 3


def _backend(tmp_path: Path, assets: dict[str, str]) -> UnrealBackend:
    project = write_fake_project(tmp_path / "MultiCam.uproject", assets)
    exe = write_fake_editor(tmp_path / "Engine" / "Binaries" / "Linux")
    return UnrealBackend(editor=str(exe), project=str(project), work_root=str(tmp_path / "work"))


def _ground_depth_mm(pose_ue: np.ndarray, focal_mm: float) -> np.ndarray:
    """Planar depth (mm) of the ground plane z = 0 through every pixel centre, 0 where the ray misses it or it is
    65 m or farther: our conventions' camera (OpenCV axes, RH world in m, K with the continuous pixel convention)."""
    c2w = ue_to_opencv_c2w(pose_ue)
    k = intrinsics_matrix(focal_mm, SIZE, SIZE)
    jj, ii = np.mgrid[0:SIZE, 0:SIZE]
    pix = np.stack([ii + 0.5, jj + 0.5, np.ones_like(ii, dtype=np.float64)], axis=-1)
    d_cam = pix @ np.linalg.inv(k).T  # z component 1: the ray parameter is the planar depth
    d = d_cam @ c2w[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 2] < 0, -c2w[2, 3] / d[..., 2], np.inf)
    return np.where(t < 65.0, np.round(t * 1000.0), 0.0)


def test_depth_and_mask_passes_land_in_the_blender_files(tmp_path: Path) -> None:
    b = _backend(tmp_path, {MAP: "World", MESH: "SkeletalMesh", ANIM: "AnimSequence",
                            MASK_MATERIAL: "Material:CustomStencil"})
    job = make_job(n_cameras=2, frames=FRAMES, size=SIZE, extra_passes=["depth", "mask"])
    out = tmp_path / "out"
    out.mkdir()
    render_scene(b, job, out)
    poses, names = read_camera_json(out / CAMERA_FILE)
    assert sorted(p.name for p in (out / "depth").iterdir()) == names
    scene = json.loads((out / "scene.json").read_text())
    assert scene["renderer"]["depth"]["unit"] == "mm" and scene["renderer"]["depth"]["kind"].startswith("planar")
    character_mid = np.array([[0.0, 0.0, 90.0]])  # the job's character stands at the origin
    for c, name in enumerate(names):
        assert sorted(p.name for p in (out / "depth" / name).iterdir()) == [f"{f:05d}.png" for f in range(FRAMES)]
        masks = read_video_frames(out / "masks" / f"{name}.mp4")
        assert len(masks) == FRAMES
        for f in range(FRAMES):
            png = cv2.imread(str(out / "depth" / name / f"{f:05d}.png"), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint16 and png.shape == (SIZE, SIZE)
            mask = masks[f][..., 0] > 127
            ground = _ground_depth_mm(poses[f, c], job.cameras[c].focal_mm)
            # off the character: the ground's planar depth in mm (to the millimetre), 0 where there is none
            diff = np.abs(png.astype(np.int64) - ground.astype(np.int64))
            assert diff[~mask].max() <= 1, (name, f, diff[~mask].max())
            # on the character: nearer than the ground behind it; the mask sits where the character projects
            assert 10 < mask.sum() < mask.size // 2
            behind = mask & (ground > 0)
            assert (png[behind] < ground[behind]).all()
            uv, _ = project_points_ue(character_mid, poses[f, c], intrinsics_matrix(job.cameras[c].focal_mm,
                                                                                    SIZE, SIZE))
            jj, ii = np.nonzero(mask)
            assert np.hypot(ii.mean() + 0.5 - uv[0, 0], jj.mean() + 0.5 - uv[0, 1]) < 3.0


def test_only_the_asked_passes_are_written(tmp_path: Path) -> None:
    b = _backend(tmp_path, {MAP: "World", MESH: "SkeletalMesh", ANIM: "AnimSequence"})
    job = make_job(n_cameras=1, frames=2, size=32, extra_passes=["depth"])
    out = tmp_path / "out"
    out.mkdir()
    render_scene(b, job, out)
    assert sorted(p.name for p in out.iterdir()) == ["cameras", "depth", "scene.json", "videos"]
    assert "mask" not in json.loads((out / "scene.json").read_text())["renderer"]


def test_missing_mask_material_names_the_asset(tmp_path: Path) -> None:
    b = _backend(tmp_path, {MAP: "World", MESH: "SkeletalMesh", ANIM: "AnimSequence"})
    job = make_job(n_cameras=1, frames=2, size=32, extra_passes=["mask"])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RenderError, match=r"mask pass material asset not found: '/Game/MultiCam/PP_CustomStencil"):
        render_scene(b, job, out)


def test_the_fakes_exr_is_what_the_reader_takes_and_compression_is_refused(tmp_path: Path) -> None:
    # Layers as MoviePipelineEXROutput.cpp names them: the first unnamed, the others "<pass>.R" ...
    rgba = np.random.default_rng(0).random((4, 6, 4)).astype(np.float32)
    depth = np.full((4, 6, 4), 1234.5, np.float32)
    fake_unreal._write_exr(str(tmp_path / "a.exr"), [("", rgba, False), ("FinalImageX", depth, True)], "NONE")
    ch = read_exr(tmp_path / "a.exr")
    assert sorted(ch) == ["A", "B", "FinalImageX.A", "FinalImageX.B", "FinalImageX.G", "FinalImageX.R", "G", "R"]
    np.testing.assert_array_equal(ch["FinalImageX.R"], depth[..., 0])  # 32-bit float layer, exact
    np.testing.assert_allclose(ch["G"], rgba[..., 1], atol=1e-3)  # the unnamed layer is half
    fake_unreal._write_exr(str(tmp_path / "b.exr"), [("", rgba, False)], "PIZ")  # MRQ's default compression
    with pytest.raises(ValueError, match="compressed EXR is not supported"):
        read_exr(tmp_path / "b.exr")
