"""Acceptance tests of the Blender backend's camera labels: what is rendered is what is recorded.

* Geometric fidelity: emissive markers at known world positions, detected with OpenCV in every
  camera and frame, land where the exported ``camera_extrinsics.json`` (read with the project's
  reader) and ``intrinsics_matrix`` project them, within 0.5 % of the image width. Cameras include
  focal lengths off the dataset's four, a pitched + rolled camera and a non-square image.
* Synchronisation: a beacon moving on a known path is seen by all 10 sampled cameras at the same
  time instant in the same frame index.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from exporters.camera_json import CAMERA_FILE, read_camera_json
from exporters.video import probe_video, read_video_frames
from multicam.conventions import (
    intrinsics_matrix,
    project_points_ue,
    ue_location_rotator_to_matrix,
    ue_look_at_rotator,
)
from render_jobs.blender.calibration import MARKERS_CM, beacon_path_cm, job_from_poses
from render_jobs.execute import render_scene
from render_jobs.verify import verify_scene_dir

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

TOL_FRACTION = 0.005  # of the image width


def detect_blobs(rgb: np.ndarray, threshold: int = 40, min_area: int = 2) -> np.ndarray:
    """Intensity-weighted centroids (continuous pixel coordinates, pixel centres at +0.5) of bright blobs."""
    gray = rgb.astype(np.float64).sum(-1) / 3.0
    n, labels, stats, _ = cv2.connectedComponentsWithStats((gray > threshold).astype(np.uint8), connectivity=8)
    ys, xs = np.mgrid[0 : gray.shape[0], 0 : gray.shape[1]]
    out = []
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < min_area:
            continue
        m = labels == k
        w = gray[m]
        out.append([np.sum(xs[m] * w) / w.sum() + 0.5, np.sum(ys[m] * w) / w.sum() + 0.5])
    return np.array(out).reshape(-1, 2)


def _render(job, out_dir: Path, views_per_call: int = 0) -> Path:  # type: ignore[no-untyped-def]
    from render_jobs.blender_backend import BlenderBackend

    out_dir.mkdir(parents=True, exist_ok=True)
    render_scene(BlenderBackend(device="CPU", views_per_call=views_per_call), job, out_dir)
    assert verify_scene_dir(job, out_dir) == []
    return out_dir


def _calibration_poses(frames: int) -> tuple[np.ndarray, list[float]]:
    """(C, F, 4, 4) UE poses around the markers: plain, pitched + rolled, odd focal lengths, moving."""
    aim = np.array([0.0, 0.0, 100.0])
    specs = [  # eye (cm), roll (deg), focal (mm)
        ((320.0, 20.0, 150.0), 0.0, 24.0),
        ((-180.0, 260.0, 330.0), 25.0, 24.0),  # looks down ~35 deg and rolled
        ((30.0, -360.0, 60.0), -12.0, 31.0),  # looks up, rolled the other way, focal off the dataset's
        ((-430.0, -150.0, 220.0), 8.0, 43.5),
    ]
    poses = np.zeros((len(specs), frames, 4, 4))
    for c, (eye, roll, _) in enumerate(specs):
        for f in range(frames):
            e = np.asarray(eye) + f * np.array([6.0, -4.0, 3.0])  # the camera moves between frames
            rot = ue_look_at_rotator(e, aim) + np.array([0.0, 1.5 * f, roll])
            poses[c, f] = ue_location_rotator_to_matrix(e, rot)
    return poses, [s[2] for s in specs]


@pytest.mark.parametrize("views_per_call", [0, 3])  # all 4 cameras in one render call, or calls of 3 + 1
def test_markers_project_where_the_camera_file_says(tmp_path: Path, views_per_call: int) -> None:
    frames, w, h = 3, 200, 136
    poses, focals = _calibration_poses(frames)
    job = job_from_poses(poses, focal_mm=focals, aperture=10.0, character="builtin:none",
                         width=w, height=h, samples=16, denoise=False, depth_of_field=False, video_crf=8)
    out = _render(job, tmp_path / "calib", views_per_call)
    cams, names = read_camera_json(out / CAMERA_FILE)
    assert cams.shape == (frames, 4, 4, 4) and names == ["cam01", "cam02", "cam03", "cam04"]
    tol = TOL_FRACTION * w
    errors = []
    for c, name in enumerate(names):
        video = read_video_frames(out / "videos" / f"{name}.mp4")
        assert video.shape == (frames, h, w, 3)
        k = intrinsics_matrix(focals[c], w, h, sensor_fit="horizontal")
        for f in range(frames):
            uv, depth = project_points_ue(MARKERS_CM, cams[f, c], k)
            inside = (depth > 0) & np.all((uv > 4) & (uv < np.array([w, h]) - 4), axis=-1)
            # markers that overlap in this view merge into one blob: leave them out
            sep = np.linalg.norm(uv[:, None] - uv[None], axis=-1) + np.eye(len(uv)) * 1e9
            inside &= sep.min(axis=1) > 8.0
            assert inside.sum() >= 5, f"{name} frame {f}: only {inside.sum()} separate markers in view"
            blobs = detect_blobs(video[f])
            d = np.linalg.norm(uv[inside][:, None] - blobs[None], axis=-1)  # (markers, blobs)
            nearest = d.min(axis=1)
            errors.extend(nearest.tolist())
            assert np.all(nearest < tol), (
                f"{name} frame {f}: marker reprojection errors {np.round(nearest, 2)} px, tolerance {tol:.2f} px")
            # one blob per marker: no two markers matched to the same blob
            assert len(set(d.argmin(axis=1).tolist())) == int(inside.sum())
    assert len(errors) >= 4 * frames * 5
    print(f"markers: max error {max(errors):.3f} px, mean {np.mean(errors):.3f} px, tol {tol:.2f}")
    # The test would catch a 1 % focal error: projecting with a wrong focal length misses.
    k_bad = intrinsics_matrix(focals[0] * 1.03, w, h, sensor_fit="horizontal")
    uv_bad, _ = project_points_ue(MARKERS_CM, cams[0, 0], k_bad)
    blobs = detect_blobs(read_video_frames(out / "videos" / "cam01.mp4")[0])
    assert np.max(np.linalg.norm(uv_bad[:, None] - blobs[None], axis=-1).min(axis=1)) > tol


def test_all_ten_cameras_see_the_same_instant(tmp_path: Path) -> None:
    from trajectory.sampler import sample_scene

    frames, w = 5, 160
    smp = sample_scene(11, 1, n_cameras=10, frames=frames, radius_m=3.0, camera_set=1)
    job = job_from_poses(np.asarray(smp.poses_ue), focal_mm=smp.focal_mm, aperture=smp.aperture,
                         environment="builtin:void", character="builtin:beacon",
                         width=w, height=w, samples=8, denoise=False, depth_of_field=True, video_crf=8)
    out = _render(job, tmp_path / "sync")
    cams, names = read_camera_json(out / CAMERA_FILE)
    assert cams.shape[:2] == (frames, 10)
    beacon = beacon_path_cm(np.arange(frames) / job.settings.fps)  # placement at the origin, yaw 0
    k = intrinsics_matrix(smp.focal_mm, w, w, sensor_fit="horizontal")
    tol = TOL_FRACTION * w
    offsets: list[float] = []
    errs: list[float] = []
    checked = np.zeros((10, frames), bool)
    for c, name in enumerate(names):
        info = probe_video(out / "videos" / f"{name}.mp4")
        assert (info.frames, info.width, info.height) == (frames, w, w)
        video = read_video_frames(out / "videos" / f"{name}.mp4")
        for f in range(frames):
            uv, depth = project_points_ue(beacon, cams[f, c], k)  # beacon at every time, seen from frame f
            blobs = detect_blobs(video[f])
            if not (depth[f] > 0 and np.all((uv[f] > 4) & (uv[f] < w - 4))):
                continue  # pans and tilts may turn a camera away from the character
            checked[c, f] = True
            near = np.linalg.norm(blobs - uv[f], axis=-1)
            assert near.size and near.min() < tol, (
                f"{name} frame {f}: beacon detected {near.min() if near.size else 'nowhere'} px from its "
                f"frame-{f} projection (tolerance {tol:.2f} px)")
            others = [np.linalg.norm(uv[g] - blobs[near.argmin()]) for g in (f - 1, f + 1) if 0 <= g < frames]
            offsets.extend(others)
            errs.append(float(near.min()))
    assert checked.any(axis=1).all() and checked.mean() >= 0.6, checked
    # A one-frame offset anywhere would have been caught: neighbouring instants project far away.
    assert np.median(offsets) > 4 * tol
    print(f"beacon: max error {max(errs):.3f} px, median one-frame offset {np.median(offsets):.2f} px, tol {tol:.2f}")
