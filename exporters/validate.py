"""Validate a MultiCamVideo-format dataset on disk (ours or the released one).

A scene folder is any folder holding ``cameras/camera_extrinsics.json``; it must also hold
``videos/camNN.mp4`` for every camera in that file, each decoding to exactly as many frames as the
file has, all videos of a scene of one size and frame rate. Problems are collected, never raised, so
that one run reports everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from exporters.camera_json import CAMERA_FILE, CameraFileError, read_camera_json


@dataclass
class SceneReport:
    path: Path
    cameras: int = 0
    frames: int = 0
    size: tuple[int, int] | None = None
    fps: float | None = None
    problems: list[str] = field(default_factory=list)


def iter_scene_dirs(root: Path) -> Iterator[Path]:
    """Every folder under ``root`` (or ``root`` itself) that has a camera file, sorted; hidden folders (``.tmp/``,
    ``.damaged/``: work folders and incomplete scenes a run moved aside) are not scenes."""
    root = Path(root)
    if (root / CAMERA_FILE).is_file():
        yield root
        return
    for cam_file in sorted(root.rglob(str(CAMERA_FILE))):
        if not any(part.startswith(".") for part in cam_file.relative_to(root).parts):
            yield cam_file.parent.parent


def validate_scene_dir(scene: Path, decode: bool = True, expect_frames: int | None = None,
                       expect_size: tuple[int, int] | None = None) -> SceneReport:
    """Check one scene folder; ``decode=False`` checks presence only (fast)."""
    rep = SceneReport(scene)
    try:
        poses, names = read_camera_json(scene / CAMERA_FILE)
    except CameraFileError as exc:
        rep.problems.append(str(exc))
        return rep
    rep.frames, rep.cameras = poses.shape[0], poses.shape[1]
    if expect_frames is not None and rep.frames != expect_frames:
        rep.problems.append(f"{scene / CAMERA_FILE}: {rep.frames} frames, expected {expect_frames}")
    videos = scene / "videos"
    present = {p.stem for p in videos.glob("cam*.mp4")} if videos.is_dir() else set()
    for extra in sorted(present - set(names)):
        rep.problems.append(f"{videos / (extra + '.mp4')}: video without a camera in {CAMERA_FILE}")
    for name in names:
        path = videos / f"{name}.mp4"
        if name not in present:
            rep.problems.append(f"{path}: missing (the camera file has {name})")
            continue
        if not decode:
            continue
        from exporters.video import probe_video

        try:
            info = probe_video(path)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a problem to report
            rep.problems.append(f"{path}: cannot be decoded ({type(exc).__name__}: {exc})")
            continue
        if info.frames != rep.frames:
            rep.problems.append(f"{path}: {info.frames} frames decoded, the camera file has {rep.frames}")
        size = (info.width, info.height)
        if expect_size is not None and size != expect_size:
            rep.problems.append(f"{path}: {size[0]}x{size[1]}, expected {expect_size[0]}x{expect_size[1]}")
        if rep.size is None:
            rep.size, rep.fps = size, info.fps
        elif size != rep.size or abs(info.fps - (rep.fps or 0)) > 1e-3:
            rep.problems.append(f"{path}: {size[0]}x{size[1]} at {info.fps:g} fps differs from the scene's "
                                f"{rep.size[0]}x{rep.size[1]} at {rep.fps:g} fps")
    return rep
