"""Verification of a rendered scene folder against its job: the gate before a job may be ``done``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from exporters.camera_json import CAMERA_FILE, CameraFileError, read_camera_json, render_camera_json
from exporters.video import probe_video
from render_jobs.schema import RenderJob

#: Camera JSON vs planned poses: rotation entries (unitless) and locations (cm).
ROTATION_TOL = 1e-4
LOCATION_TOL_CM = 1e-2


def verify_scene_dir(job: RenderJob, folder: str | os.PathLike[str]) -> list[str]:
    """Every problem with ``folder`` as the output of ``job`` (empty list = complete and correct).

    Checks: each camera's ``videos/camNN.mp4`` decodes to exactly ``settings.frames`` frames of
    ``settings.width`` x ``settings.height`` at ``settings.fps``; no unexpected videos;
    ``cameras/camera_extrinsics.json`` parses, has the job's cameras and frames, and matches the
    planned poses within tolerance; ``scene.json`` parses.
    """
    folder = Path(folder)
    s = job.settings
    problems: list[str] = []
    names = [c.name for c in job.cameras]
    videos = folder / "videos"
    present = sorted(p.name for p in videos.glob("*.mp4")) if videos.is_dir() else []
    extra = sorted(set(present) - {f"{n}.mp4" for n in names})
    if extra:
        problems.append(f"videos/: unexpected files {extra}")
    for n in names:
        path = videos / f"{n}.mp4"
        if not path.is_file():
            problems.append(f"videos/{n}.mp4: missing")
            continue
        try:
            info = probe_video(path)
        except Exception as exc:  # noqa: BLE001 - any decoder error means a broken file
            problems.append(f"videos/{n}.mp4: cannot decode ({type(exc).__name__}: {exc})")
            continue
        if info.frames != s.frames:
            problems.append(f"videos/{n}.mp4: {info.frames} frames, expected {s.frames}")
        if (info.width, info.height) != (s.width, s.height):
            problems.append(f"videos/{n}.mp4: {info.width}x{info.height}, expected {s.width}x{s.height}")
        if abs(info.fps - s.fps) > 1e-3 * s.fps:
            problems.append(f"videos/{n}.mp4: {info.fps:g} fps, expected {s.fps:g}")
    problems.extend(_check_cameras(job, folder, names))
    scene_file = folder / "scene.json"
    try:
        json.loads(scene_file.read_text())
    except FileNotFoundError:
        problems.append("scene.json: missing")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"scene.json: not valid JSON ({exc})")
    return problems


def _check_cameras(job: RenderJob, folder: Path, names: list[str]) -> list[str]:
    path = folder / CAMERA_FILE
    want = job.poses_array()
    # Fast path: a backend that wrote the planned poses with the shared writer produced exactly this
    # text. Anything else (poses read back from an engine) is parsed and compared numerically.
    try:
        if path.read_text() == render_camera_json(want, names):
            return []
    except (OSError, UnicodeDecodeError):
        pass
    try:
        poses, cams = read_camera_json(path)
    except CameraFileError as exc:
        return [str(exc).replace(str(folder) + os.sep, "")]
    if cams != names:
        return [f"{CAMERA_FILE}: cameras {cams}, expected {names}"]
    if poses.shape[0] != job.settings.frames:
        return [f"{CAMERA_FILE}: {poses.shape[0]} frames, expected {job.settings.frames}"]
    drot = float(np.max(np.abs(poses[..., :3, :3] - want[..., :3, :3])))
    dloc = float(np.max(np.abs(poses[..., 3, :3] - want[..., 3, :3])))
    if drot > ROTATION_TOL or dloc > LOCATION_TOL_CM:
        f, c = np.unravel_index(np.argmax(np.abs(poses - want).max(axis=(2, 3))), poses.shape[:2])
        return [f"{CAMERA_FILE}: poses differ from the plan (max rotation diff {drot:.3g}, "
                f"location diff {dloc:.3g} cm; worst at frame{f}.{names[c]})"]
    return []
