"""``multicam export``: a world point lands on the same pixel through every format as through the UE matrices.

The UE side is ``tests/ue_projection.py``, modelled from Unreal's conventions and not from ``multicam.conventions``.
Each format is read back as its own tools read it (pycolmap for COLMAP).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_support import RELEASED_VAL_JSON, generate_synthetic, run_cli
from ue_projection import read_ue, ue_project

# ---- readers of each format (as the tools read them) -> pixel (continuous) and depth, (F, C, 2) / (F, C) ----


def px_opencv(scene: Path, p_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.load(scene / "cameras.npz")
    doc = json.loads((scene / "cameras.json").read_text())
    names = list(z["names"])
    np.testing.assert_allclose(np.asarray([doc["cameras"][n]["w2c"] for n in names]).swapaxes(0, 1), z["w2c"])
    pc = np.einsum("fcij,j->fci", z["w2c"], np.append(p_m, 1.0))[..., :3]
    uvw = np.einsum("cij,fcj->fci", z["K"], pc)
    uv = uvw[..., :2] / uvw[..., 2:] + 0.5  # K has OpenCV's integer pixel centres
    rots = np.concatenate([z["c2w"][..., :3, :3], z["w2c"][..., :3, :3]])
    return uv, pc[..., 2], rots


def px_nerfstudio(scene: Path, p_m: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uv, depth, rots = [], [], []
    for f in range(frames):
        doc = json.loads((scene / f"t{f:05d}" / "transforms.json").read_text())
        c2w = np.asarray([fr["transform_matrix"] for fr in doc["frames"]])
        pc = np.einsum("cij,j->ci", np.linalg.inv(c2w), np.append(p_m, 1.0))[:, :3]
        x, y, zz = pc[:, 0], pc[:, 1], -pc[:, 2]  # OpenGL: looks down -z, y up
        uv.append(np.stack([doc["fl_x"] * x / zz + doc["cx"], doc["cy"] - doc["fl_y"] * y / zz], -1))
        depth.append(zz)
        rots.append(c2w[:, :3, :3])
    return np.asarray(uv), np.asarray(depth), np.asarray(rots)


def px_colmap(scene: Path, p_m: np.ndarray, frames: int, names: list[str]) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    import pycolmap

    uv, depth, rots = [], [], []
    for f in range(frames):
        rec = pycolmap.Reconstruction(str(scene / f"t{f:05d}" / "sparse" / "0"))
        assert rec.num_images() == len(names) and rec.num_points3D() == 0
        by_name = {im.name: im for im in rec.images.values()}
        assert sorted(by_name) == [f"{n}.png" for n in names]
        row_uv, row_d, row_r = [], [], []
        for n in names:
            im = by_name[f"{n}.png"]
            cam_from_world = im.cam_from_world()
            pc = cam_from_world * p_m
            row_d.append(pc[2])
            row_uv.append(rec.cameras[im.camera_id].img_from_cam(pc) if pc[2] > 0 else [np.nan, np.nan])
            row_r.append(cam_from_world.rotation.matrix())
        uv.append(row_uv)
        depth.append(row_d)
        rots.append(row_r)
    return np.asarray(uv, dtype=float), np.asarray(depth), np.asarray(rots)


def px_re10k(scene: Path, p_m: np.ndarray, names: list[str], w: int, h: int) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    uv, depth, rots = [], [], []
    for n in names:
        lines = (scene / f"{n}.txt").read_text().splitlines()
        assert lines[0].endswith(f"{n}.mp4")
        e = np.asarray([[float(x) for x in ln.split()] for ln in lines[1:]])
        assert e.shape[1] == 19 and np.all(e[:, 5:7] == 0)
        w2c = e[:, 7:].reshape(-1, 3, 4)
        pc = np.einsum("fij,j->fi", w2c, np.append(p_m, 1.0))
        uv.append(np.stack([e[:, 1] * w * pc[:, 0] / pc[:, 2] + e[:, 3] * w,
                            e[:, 2] * h * pc[:, 1] / pc[:, 2] + e[:, 4] * h], -1))
        depth.append(pc[:, 2])
        rots.append(w2c[:, :3, :3])
    return np.asarray(uv).swapaxes(0, 1), np.asarray(depth).T, np.asarray(rots)


def check_all_formats(dataset: Path, scene_rel: Path, out: Path, point_cm: np.ndarray, focal_mm: float, w: int,
                      h: int, tol_px: float, extra: tuple[str, ...] = (), tol_m: float = 1e-6) -> dict[str, str]:
    """Export ``dataset`` in every format, project ``point_cm`` through each and through the UE matrices."""
    ue, names = read_ue(dataset / scene_rel / "cameras" / "camera_extrinsics.json")
    want, fwd = ue_project(point_cm, ue, focal_mm, w, h)
    visible = fwd > 1.0
    assert visible.mean() > 0.5  # the point is in front of most cameras: the comparison is not vacuous
    p_m = np.array([point_cm[0], -point_cm[1], point_cm[2]]) / 100.0  # the documented RH world, by hand
    stderr = {}
    for fmt in ("opencv", "nerfstudio", "colmap", "realestate10k"):
        res = run_cli("export", str(dataset), "--to", fmt, "--out", str(out / fmt), "--no-progress", *extra)
        assert res.returncode == 0, res.stderr
        stderr[fmt] = res.stderr
        scene = out / fmt / scene_rel
        if fmt == "opencv":
            uv, depth, rots = px_opencv(scene, p_m)
        elif fmt == "nerfstudio":
            uv, depth, rots = px_nerfstudio(scene, p_m, ue.shape[0])
        elif fmt == "colmap":
            uv, depth, rots = px_colmap(scene, p_m, ue.shape[0], names)
        else:
            uv, depth, rots = px_re10k(scene, p_m, names, w, h)
        assert uv.shape == want.shape, fmt
        np.testing.assert_allclose(depth[visible], fwd[visible] / 100.0, atol=tol_m, err_msg=fmt)
        err = np.abs(uv[visible] - want[visible]).max()
        assert err < tol_px, f"{fmt}: {err} px"
        # every rotation is proper and orthonormal
        r = rots.reshape(-1, 3, 3)
        np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9, err_msg=fmt)
        np.testing.assert_allclose(r @ r.swapaxes(-1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    return stderr


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = tmp_path_factory.mktemp("ds") / "ds"
    generate_synthetic(ds, scenes=2, size=48, frames=6, cameras=4, extra_args=("--no-verify",))
    return ds


def _scenes(ds: Path) -> list[Path]:
    return sorted(p.parent.relative_to(ds) for p in ds.glob("train/*/scene*/scene.json"))


def test_aim_point_same_pixel_in_every_format(synthetic: Path, tmp_path: Path) -> None:
    for rel in _scenes(synthetic):
        rec = json.loads((synthetic / rel / "scene.json").read_text())
        aim = np.asarray(rec["character"]["aim_point_cm"])
        focal = rec["camera_set"]["focal_mm"]
        check_all_formats(synthetic, rel, tmp_path / rel.name / rel.parent.name, aim, focal, 48, 48, 1e-4)
        # frame 0: every camera aims at the character, so the aim point is the image centre in every format
        ue, _ = read_ue(synthetic / rel / "cameras" / "camera_extrinsics.json")
        uv0, _ = ue_project(aim, ue[0], focal, 48, 48)
        np.testing.assert_allclose(uv0, 24.0, atol=1e-6)


def test_a_point_off_the_axis_and_the_frames(synthetic: Path, tmp_path: Path) -> None:
    """Off-centre points catch a flipped axis that a point on the optical axis cannot; frames come out aligned."""
    rel = _scenes(synthetic)[0]
    rec = json.loads((synthetic / rel / "scene.json").read_text())
    aim = np.asarray(rec["character"]["aim_point_cm"])
    check_all_formats(synthetic, rel, tmp_path, aim + np.array([30.0, -20.0, 25.0]), rec["camera_set"]["focal_mm"],
                      48, 48, 1e-4, extra=("--frames-out",))
    import cv2

    from exporters.video import read_video_frames

    video = read_video_frames(synthetic / rel / "videos" / "cam03.mp4")
    for fmt, path in (("opencv", "images/cam03/00004.png"), ("colmap", "t00004/images/cam03.png"),
                      ("nerfstudio", "t00004/images/cam03.png"), ("realestate10k", "images/cam03/00004.png")):
        png = cv2.imread(str(tmp_path / fmt / rel / path))[..., ::-1]
        np.testing.assert_array_equal(png, video[4], err_msg=fmt)


def test_released_validation_file(tmp_path: Path) -> None:
    """The val layout (only cameras/camera_extrinsics.json): 1280x1280 and 24 mm by default, said on stderr."""
    val = tmp_path / "val" / "10basic_trajectories"
    (val / "cameras").mkdir(parents=True)
    shutil.copy(RELEASED_VAL_JSON, val / "cameras" / "camera_extrinsics.json")
    point = np.array([3390.0 + 400.0, 1380.0 + 35.0, 240.0 - 20.0])  # ~4 m ahead of the shared start pose
    stderr = check_all_formats(tmp_path / "val", Path("10basic_trajectories"), tmp_path / "out", point, 24.0, 1280,
                               1280, 0.02, tol_m=1e-5)
    assert "default 24 mm" in stderr["opencv"] and "1280x1280" in stderr["opencv"]
    # --focal-mm changes K and only K
    res = run_cli("export", str(val), "--to", "opencv", "--out", str(tmp_path / "f50"), "--focal-mm", "50",
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    a = np.load(tmp_path / "out" / "opencv" / "10basic_trajectories" / "cameras.npz")
    b = np.load(tmp_path / "f50" / "10basic_trajectories" / "cameras.npz")
    np.testing.assert_allclose(b["K"][0, 0, 0], 50 / 23.76 * 1280)
    np.testing.assert_array_equal(a["c2w"], b["c2w"])


def test_focal_from_the_folder_name_and_frames_out_without_videos(tmp_path: Path) -> None:
    """A released-layout scene without scene.json takes the focal length from its f<focal>_aperture<a> folder."""
    scene = tmp_path / "ds" / "train" / "f35_aperture2.4" / "scene7"
    (scene / "cameras").mkdir(parents=True)
    shutil.copy(RELEASED_VAL_JSON, scene / "cameras" / "camera_extrinsics.json")
    res = run_cli("export", str(tmp_path / "ds"), "--to", "realestate10k", "--out", str(tmp_path / "o"), "--frames-out",
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    first = (tmp_path / "o" / "train" / "f35_aperture2.4" / "scene7" / "cam01.txt").read_text().splitlines()[1]
    assert float(first.split()[1]) == pytest.approx(35 / 23.76)
    assert "10 camera(s) have no video" in res.stderr and "focal default" not in res.stderr


def test_recammaster_convention_has_det_minus_one_ours_plus_one() -> None:
    """What docs/export.md says about ReCamMaster's loader, on the released file."""
    from multicam.conventions import ue_to_opencv_c2w, ue_to_recammaster_c2w

    ue, _ = read_ue(RELEASED_VAL_JSON)
    assert np.allclose(np.linalg.det(ue_to_recammaster_c2w(ue)[..., :3, :3]), -1.0, atol=1e-5)
    assert np.allclose(np.linalg.det(ue_to_opencv_c2w(ue)[..., :3, :3]), 1.0, atol=1e-5)
    # ours = diag(1, -1, 1, 1) @ theirs, so the poses relative to a reference camera (what ReCamMaster trains on)
    # are the same proper rotations in both
    ours, theirs = ue_to_opencv_c2w(ue), ue_to_recammaster_c2w(ue)
    np.testing.assert_allclose(ours, np.diag([1.0, -1.0, 1.0, 1.0]) @ theirs, atol=1e-12)
    rel_ours = np.linalg.inv(ours[0, 0]) @ ours
    rel_theirs = np.linalg.inv(theirs[0, 0]) @ theirs
    np.testing.assert_allclose(rel_ours, rel_theirs, atol=1e-9)


def test_bad_input_is_one_line_exit_2(tmp_path: Path, synthetic: Path) -> None:
    res = run_cli("export", str(synthetic), "--to", "blender")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: --to: must be one of opencv, nerfstudio, colmap, realestate10k, got 'blender'"]
    res = run_cli("export", str(tmp_path / "nope"), "--to", "opencv")
    assert res.returncode == 2 and "no such folder" in res.stderr
    res = run_cli("export", str(synthetic), "--to", "opencv", "--focal-mm", "0")
    assert res.returncode == 2 and "--focal-mm" in res.stderr
    # a reflection in the camera file is named by frame and camera
    bad = tmp_path / "bad"
    (bad / "cameras").mkdir(parents=True)
    (bad / "cameras" / "camera_extrinsics.json").write_text(json.dumps(
        {"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] ",
                    "cam02": "[-1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] "}}))
    res = run_cli("export", str(bad), "--to", "colmap", "--out", str(tmp_path / "o"), "--no-progress")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "frame0.cam02" in res.stderr and "reflection" in res.stderr
    (bad / "cameras" / "camera_extrinsics.json").write_text(json.dumps(
        {"frame0": {"cam01": "[1 0 0 0] [0 1.01 0 0] [0 0 1 0] [0 0 0 1] "}}))
    res = run_cli("export", str(bad), "--to", "opencv", "--out", str(tmp_path / "o"), "--no-progress")
    assert res.returncode == 2 and "frame0.cam01: not a rotation (|R R^T - I| = 0.0201 > 0.001)" in res.stderr


def depth_agreement(depth_a: np.ndarray, depth_b: np.ndarray, k: np.ndarray, c2w_a: np.ndarray,
                    w2c_b: np.ndarray) -> tuple[float, int]:
    """Back-project camera a's depth PNG (uint16 mm, planar) through the exported K (integer pixel centres) and
    pose, project into camera b: the fraction of the points landing in b's image whose depth there agrees with b's
    own depth PNG (3 cm + 2 %), and how many landed. Occlusions and ground seen at grazing angles (a 48 px pixel
    spans metres of depth there) lower it for some pairs; a wrong pose lowers it to ~0 for every pair."""
    h, w = depth_a.shape
    v, u = np.mgrid[0:h, 0:w]
    z = depth_a / 1000.0
    ok = z > 0
    pts = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z, np.ones_like(z)], -1)[ok]
    pb = pts @ (w2c_b @ c2w_a).T
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.round(k[0, 0] * pb[:, 0] / pb[:, 2] + k[0, 2])
        iv = np.round(k[1, 1] * pb[:, 1] / pb[:, 2] + k[1, 2])
    inside = (pb[:, 2] > 0.1) & (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
    zb = depth_b[iv[inside].astype(int), iu[inside].astype(int)] / 1000.0
    zp = pb[inside, 2][zb > 0]
    zb = zb[zb > 0]
    return (float(np.mean(np.abs(zb - zp) < 0.03 + 0.02 * zb)) if zb.size else 0.0), int(zb.size)


@pytest.mark.blender
def test_blender_depth_and_mask_passes_aligned(tmp_path: Path) -> None:
    """A tiny Blender render with depth and mask passes (independent cameras: wide baselines). The exported depth
    at the aim pixel is the character's surface in front of the aim point and the mask covers that pixel, in the
    per-camera and per-time-step layouts; one camera's depth, back-projected through the exported K and poses,
    lands on the other cameras' depth (and not with the pose matrix taken the wrong way round)."""
    pytest.importorskip("bpy")
    import cv2

    size, frames = 48, 3
    ds = tmp_path / "bl"
    res = run_cli("generate", "--out", str(ds), "--scenes", "1", "--resolution", str(size), "--frames", str(frames),
                  "--samples", "1", "--cameras", "3", "--camera-profile", "independent", "--pass", "depth", "--pass",
                  "mask", "--no-progress", "--no-dof", "--no-denoise")
    assert res.returncode == 0, res.stderr
    (rel,) = _scenes(ds)
    rec = json.loads((ds / rel / "scene.json").read_text())
    aim = np.asarray(rec["character"]["aim_point_cm"])
    ue, names = read_ue(ds / rel / "cameras" / "camera_extrinsics.json")
    uv, fwd = ue_project(aim, ue, rec["camera_set"]["focal_mm"], size, size)
    res = run_cli("export", str(ds), "--to", "nerfstudio", "--out", str(tmp_path / "ns"), "--no-progress")
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "ns" / rel / "t00002" / "transforms.json").read_text())
    assert doc["depth_unit_scale_factor"] == 0.001
    for fr in doc["frames"]:
        depth_png = tmp_path / "ns" / rel / "t00002" / fr["depth_file_path"]
        np.testing.assert_array_equal(cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED), cv2.imread(
            str(ds / rel / "depth" / fr["camera"] / "00002.png"), cv2.IMREAD_UNCHANGED))
        assert (tmp_path / "ns" / rel / "t00002" / fr["character_mask_path"]).is_file()
    for fmt in ("opencv", "colmap"):
        res = run_cli("export", str(ds), "--to", fmt, "--out", str(tmp_path / fmt), "--no-progress")
        assert res.returncode == 0, res.stderr
        for f in range(frames):
            for c, n in enumerate(names):
                sub = f"{{}}/{n}/{f:05d}.png" if fmt == "opencv" else f"t{f:05d}/{{}}/{n}.png"
                depth = cv2.imread(str(tmp_path / fmt / rel / sub.format("depth")), cv2.IMREAD_UNCHANGED)
                mask = cv2.imread(str(tmp_path / fmt / rel / sub.format("masks")), cv2.IMREAD_UNCHANGED)
                assert depth.dtype == np.uint16 and mask.dtype == np.uint8
                if not (0 <= uv[f, c, 0] < size and 0 <= uv[f, c, 1] < size):
                    continue
                u, v = (int(x) for x in uv[f, c])
                assert mask[v, u] == 255, (fmt, f, n)
                surface_m = depth[v, u] / 1000.0
                assert fwd[f, c] / 100 - 0.4 < surface_m < fwd[f, c] / 100, (fmt, f, n, surface_m)
    z = np.load(tmp_path / "opencv" / rel / "cameras.npz")
    k, c2w, w2c = z["K"][0], z["c2w"], z["w2c"]
    scene = tmp_path / "opencv" / rel
    agree, wrong = [], []
    for f in range(frames):
        d = [cv2.imread(str(scene / "depth" / n / f"{f:05d}.png"), cv2.IMREAD_UNCHANGED) for n in names]
        for a_ in range(len(names)):
            for b in range(len(names)):
                if a_ != b:
                    frac, landed = depth_agreement(d[a_], d[b], k, c2w[f, a_], w2c[f, b])
                    if landed > 50:
                        agree.append(frac)
                        wrong.append(depth_agreement(d[a_], d[b], k, c2w[f, a_], c2w[f, b])[0])
    assert len(agree) >= 2, "no camera pair sees a common surface: the check would be vacuous"
    assert np.median(agree) > 0.8 and min(agree) > 0.3 and max(wrong) < 0.1, (agree, wrong)
