"""``multicam export``: a MultiCamVideo scene in the camera conventions other tools read.

A scene is loaded once into :class:`SceneCameras` (UE poses, focal lengths, image size, what passes exist), then
each format is a pure function of it that returns the files to write (:data:`Files`: relative path -> bytes or
a source to copy/decode). Every frame and unit conversion is a call into :mod:`multicam.conventions`:

=============  ==============================  =====================  ==========================================
format         camera axes                     matrix                 intrinsics
=============  ==============================  =====================  ==========================================
opencv         x right, y down, z forward      c2w and w2c 4x4        K 3x3, integer pixel centres (W/2 - 0.5)
nerfstudio     OpenGL: x right, y up, z back   c2w (transform_matrix) fl_x fl_y cx cy w h, continuous (W/2)
colmap         OpenCV                          w2c quaternion + t     PINHOLE fx fy cx cy, continuous (W/2)
realestate10k  OpenCV                          w2c 3x4 row-major      fx/W fy/H cx/W cy/H (0.5 = centre)
=============  ==============================  =====================  ==========================================

The world of every format is the right-handed, Z-up world in metres of :mod:`multicam.conventions`
(``(x, y, z) = (x, -y, z)_UE / 100``), so every rotation has det +1 (ReCamMaster's own loader keeps UE's
left-handed world and gets det -1; see docs/export.md). Rotations are projected on the nearest rotation first (the
released files print 6 digits), a reflection is refused.

Layouts: ``opencv`` and ``realestate10k`` are per camera (``images/camNN/00000.png``), ``nerfstudio`` and ``colmap``
per time step (``t00000/images/camNN.png``: all cameras at one instant, a static multi-view capture).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, read_camera_json
from multicam.conventions import (
    intrinsics_matrix,
    invert_rigid,
    k_to_integer_pixel_centres,
    normalized_intrinsics,
    opencv_to_opengl_c2w,
    rotation_to_quaternion_wxyz,
    ue_to_clean_opencv_c2w,
    ue_to_rh_points,
)
from multicam.io import replace_dir

FloatArray = NDArray[np.float64]
Format = Literal["opencv", "nerfstudio", "colmap", "realestate10k"]
FORMATS: tuple[str, ...] = ("opencv", "nerfstudio", "colmap", "realestate10k")
#: Size of the released dataset's videos, used when a scene has no video to read it from.
DEFAULT_SIZE_PX = 1280
#: Focal length used when neither scene.json, the folder name (``f24_aperture5``) nor ``--focal-mm`` gives one.
DEFAULT_FOCAL_MM = 24.0
DEFAULT_FPS = 15.0
#: Blender's depth PNGs: uint16 millimetres (scene.json ``renderer.depth.scale`` says so per scene).
DEFAULT_DEPTH_SCALE_PER_M = 1000.0
#: Largest |R R^T - I| accepted (then projected on the nearest rotation).
ORTHONORMAL_TOL = 1e-3
_FOLDER_FOCAL = re.compile(r"^f(\d+(?:\.\d+)?)_aperture")
_NUM = "%.10g"
SCENE_FILE = "scene.json"


class ExportError(ValueError):
    """A scene that cannot be exported; the message names the file and the problem."""


@dataclass(frozen=True)
class SceneCameras:
    """Everything an exporter needs from one scene folder; arrays are frame-major like the camera file."""

    scene_dir: Path
    #: Output sub-folder (the scene's path below the dataset root).
    rel: Path
    names: list[str]
    #: (F, C, 4, 4) UE row-vector poses, cm.
    poses_ue: FloatArray
    focal_mm: float
    width_px: int
    height_px: int
    fps: float
    #: Where focal/size came from ("scene.json", "folder name", "--focal-mm", "video", "default ...").
    sources: dict[str, str]
    #: The character's aim point (UE cm) from scene.json, when there is one.
    aim_point_cm: FloatArray | None = None
    videos: dict[str, Path] = field(default_factory=dict)
    depth_dirs: dict[str, Path] = field(default_factory=dict)
    masks: dict[str, Path] = field(default_factory=dict)
    depth_scale_per_m: float = DEFAULT_DEPTH_SCALE_PER_M

    @property
    def frames(self) -> int:
        return int(self.poses_ue.shape[0])

    def k_continuous(self) -> FloatArray:
        """3x3 K, continuous pixel convention (cx = W/2): COLMAP, nerfstudio, RealEstate10K."""
        return intrinsics_matrix(self.focal_mm, self.width_px, self.height_px)

    def c2w_opencv(self) -> FloatArray:
        """(F, C, 4, 4) OpenCV camera-to-world, RH Z-up world in metres, rotations det +1. A pose whose rotation is
        off orthonormal by more than ``ORTHONORMAL_TOL`` (the files print 6 digits: ~1e-6) is refused."""
        r = self.poses_ue[..., :3, :3]
        off = np.abs(r @ np.swapaxes(r, -1, -2) - np.eye(3)).max((-1, -2))
        if np.any(off > ORTHONORMAL_TOL):
            f, c = np.argwhere(off > ORTHONORMAL_TOL)[0]
            raise ExportError(f"{self.scene_dir / CAMERA_FILE}: frame{f}.{self.names[c]}: not a rotation "
                              f"(|R R^T - I| = {off[f, c]:.3g} > {ORTHONORMAL_TOL:g})")
        try:
            return ue_to_clean_opencv_c2w(self.poses_ue)
        except ValueError:
            det = np.linalg.det(self.poses_ue[..., :3, :3])
            f, c = np.argwhere(det <= 0)[0]
            raise ExportError(f"{self.scene_dir / CAMERA_FILE}: frame{f}.{self.names[c]}: rotation has det "
                              f"{det[f, c]:.3g} (a reflection, not a camera pose)") from None


def _video_header(path: Path) -> tuple[int, int, float]:
    """(width, height, fps) from the container header, without decoding."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate or s.base_rate or DEFAULT_FPS
        return int(s.codec_context.width), int(s.codec_context.height), float(rate)


def read_scene_record(scene_dir: Path) -> dict[str, Any]:
    """``scene.json`` as a dict; {} when the scene has none (the released dataset)."""
    path = scene_dir / SCENE_FILE
    if not path.is_file():
        return {}
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return rec


def _focal(scene_dir: Path, record: dict[str, Any], focal_mm: float | None) -> tuple[float, str]:
    if focal_mm is not None:
        return float(focal_mm), "--focal-mm"
    cam_set = record.get("camera_set")
    if isinstance(cam_set, dict) and isinstance(cam_set.get("focal_mm"), (int, float)):
        return float(cam_set["focal_mm"]), "scene.json"
    for part in reversed(scene_dir.resolve().parts):
        m = _FOLDER_FOCAL.match(part)
        if m:
            return float(m.group(1)), f"folder name {part}"
    return DEFAULT_FOCAL_MM, f"default {DEFAULT_FOCAL_MM:g} mm (unknown: pass --focal-mm)"


def load_scene(scene_dir: Path, root: Path, focal_mm: float | None = None) -> SceneCameras:
    """Read one scene folder (ours, the released dataset's, or ``val/10basic_trajectories`` with only the camera
    file): poses, focal length, image size (from the first video, else ``DEFAULT_SIZE_PX`` square)."""
    scene_dir = Path(scene_dir)
    try:
        poses, names = read_camera_json(scene_dir / CAMERA_FILE)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    record = read_scene_record(scene_dir)
    focal, focal_src = _focal(scene_dir, record, focal_mm)
    videos = {n: scene_dir / "videos" / f"{n}.mp4" for n in names if (scene_dir / "videos" / f"{n}.mp4").is_file()}
    renderer = record.get("renderer") if isinstance(record.get("renderer"), dict) else {}
    assert isinstance(renderer, dict)
    if videos:
        first = next(iter(videos.values()))
        try:
            w, h, fps = _video_header(first)
        except Exception as exc:  # noqa: BLE001 - any container error names the file
            raise ExportError(f"{first}: cannot read the video header ({type(exc).__name__}: {exc})") from None
        size_src = f"video {first.name}"
    elif isinstance(renderer.get("resolution"), list) and len(renderer["resolution"]) == 2:
        w, h = (int(v) for v in renderer["resolution"])
        fps, size_src = float(renderer.get("fps", DEFAULT_FPS)), "scene.json"
    else:
        w = h = DEFAULT_SIZE_PX
        fps, size_src = DEFAULT_FPS, f"default {DEFAULT_SIZE_PX}x{DEFAULT_SIZE_PX} (no videos)"
    aim = None
    char = record.get("character")
    if isinstance(char, dict) and isinstance(char.get("aim_point_cm"), list):
        aim = np.asarray(char["aim_point_cm"], dtype=np.float64)
    depth_info = renderer.get("depth") if isinstance(renderer.get("depth"), dict) else {}
    assert isinstance(depth_info, dict)
    scene_abs, root_abs = scene_dir.resolve(), Path(root).resolve()
    rel = scene_abs.relative_to(root_abs) if scene_abs != root_abs else Path(scene_abs.name)
    return SceneCameras(
        scene_dir=scene_dir, rel=rel, names=names, poses_ue=poses, focal_mm=focal, width_px=w, height_px=h,
        fps=fps, sources={"focal": focal_src, "size": size_src}, aim_point_cm=aim, videos=videos,
        depth_dirs={n: scene_dir / "depth" / n for n in names if (scene_dir / "depth" / n).is_dir()},
        masks={n: scene_dir / "masks" / f"{n}.mp4" for n in names if (scene_dir / "masks" / f"{n}.mp4").is_file()},
        depth_scale_per_m=float(depth_info.get("scale", DEFAULT_DEPTH_SCALE_PER_M)),
    )


# ----------------------------------------------------------------------------------------------
# Per-frame image paths of each layout
# ----------------------------------------------------------------------------------------------

Kind = Literal["images", "depth", "masks"]


def frame_path(fmt: str, kind: Kind, cam: str, frame: int) -> str:
    """Relative path (inside the scene's export folder) of one camera's image / depth / mask at ``frame``."""
    if fmt in ("nerfstudio", "colmap"):
        return f"t{frame:05d}/{kind}/{cam}.png"
    return f"{kind}/{cam}/{frame:05d}.png"


def json_text(doc: dict[str, Any]) -> str:
    """JSON with one top-level key per line and one entry per line of its ``frames`` list / ``cameras`` dict.

    Readable and diffable, and every value goes through json's C encoder (``indent`` switches to the pure-Python
    one: 20x slower on 81 x 10 matrices)."""
    lines = []
    for key, value in doc.items():
        if key == "frames" and isinstance(value, list):
            body = ",\n".join(f"    {json.dumps(v)}" for v in value)
            lines.append(f'  "frames": [\n{body}\n  ]')
        elif key == "cameras" and isinstance(value, dict):
            body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            lines.append(f'  "cameras": {{\n{body}\n  }}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _fmt_row(values: Any) -> str:
    return " ".join(_NUM % v for v in np.asarray(values, dtype=np.float64).ravel().tolist())


def _passes(scene: SceneCameras, fmt: str, c: int, f: int) -> dict[str, str]:
    cam = scene.names[c]
    out = {}
    if cam in scene.depth_dirs:
        out["depth"] = frame_path(fmt, "depth", cam, f)
    if cam in scene.masks:
        out["mask"] = frame_path(fmt, "masks", cam, f)
    return out


# ----------------------------------------------------------------------------------------------
# The four formats: SceneCameras -> {relative path: text}
# ----------------------------------------------------------------------------------------------


def opencv_files(scene: SceneCameras) -> tuple[dict[str, str], dict[str, FloatArray]]:
    """``cameras.json`` (text) and the arrays of ``cameras.npz``: K (C, 3, 3) for integer pixel centres, c2w and
    w2c (F, C, 4, 4), RH Z-up world in metres."""
    c2w = scene.c2w_opencv()
    w2c = invert_rigid(c2w)
    k = k_to_integer_pixel_centres(scene.k_continuous())
    ks = np.broadcast_to(k, (len(scene.names), 3, 3))
    doc = {
        "format": "multicam-opencv/1",
        "world": "right-handed, Z up, metres: (x, y, z) = (x_ue, -y_ue, z_ue) / 100",
        "camera_axes": "OpenCV: x right, y down, z forward",
        "pixel_centres": "integer: pixel (0, 0) is centred at (0, 0), cx = W/2 - 0.5 (cv2.projectPoints)",
        "matrices": "c2w maps camera to world (column vectors, x_world = c2w @ x_cam), w2c = inverse(c2w)",
        "width": scene.width_px, "height": scene.height_px, "fps": scene.fps, "frames": scene.frames,
        "focal_mm": scene.focal_mm, "sources": scene.sources,
        "aim_point_m": None if (aim := aim_point_m(scene)) is None else aim.tolist(),
        "cameras": {
            n: {"K": ks[c].tolist(), "c2w": c2w[:, c].tolist(), "w2c": w2c[:, c].tolist(),
                "images": frame_path("opencv", "images", n, 0).replace("00000", "{frame:05d}"),
                **{k_: v.replace("00000", "{frame:05d}") for k_, v in _passes(scene, "opencv", c, 0).items()}}
            for c, n in enumerate(scene.names)
        },
    }
    arrays = {"K": np.ascontiguousarray(ks), "c2w": c2w, "w2c": w2c}
    return {"cameras.json": json_text(doc)}, arrays


def nerfstudio_files(scene: SceneCameras) -> dict[str, str]:
    """One ``t{f:05d}/transforms.json`` per time step: every camera at that instant, OpenGL c2w."""
    c2w_gl = opencv_to_opengl_c2w(scene.c2w_opencv())
    k = scene.k_continuous()
    head = {"camera_model": "OPENCV", "fl_x": k[0, 0], "fl_y": k[1, 1], "cx": k[0, 2], "cy": k[1, 2],
            "w": scene.width_px, "h": scene.height_px, "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
    out = {}
    for f in range(scene.frames):
        frames = []
        for c, n in enumerate(scene.names):
            entry: dict[str, Any] = {"file_path": frame_path("nerfstudio", "images", n, f),
                                     "transform_matrix": c2w_gl[f, c].tolist(), "camera": n}
            extra = _passes(scene, "nerfstudio", c, f)
            if "depth" in extra:
                entry["depth_file_path"] = extra["depth"].removeprefix(f"t{f:05d}/")
            if "mask" in extra:  # the character's mask: not nerfstudio's mask_path (pixels to train on)
                entry["character_mask_path"] = extra["mask"].removeprefix(f"t{f:05d}/")
            entry["file_path"] = entry["file_path"].removeprefix(f"t{f:05d}/")
            frames.append(entry)
        doc: dict[str, Any] = {**head, "frames": frames, "time_step": f, "timestamp_s": f / scene.fps}
        if scene.depth_dirs:
            doc["depth_unit_scale_factor"] = 1.0 / scene.depth_scale_per_m
        out[f"t{f:05d}/transforms.json"] = json_text(doc)
    return out


_COLMAP_CAMERAS_HEAD = ("# Camera list with one line of data per camera:\n"
                        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n# Number of cameras: {n}\n")
_COLMAP_IMAGES_HEAD = ("# Image list with two lines of data per image:\n"
                       "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                       "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
                       "# Number of images: {n}, mean observations per image: 0\n")
_COLMAP_POINTS_HEAD = ("# 3D point list with one line of data per point:\n"
                       "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                       "# Number of points: 0, mean track length: 0\n")


def colmap_files(scene: SceneCameras) -> dict[str, str]:
    """A COLMAP text model per time step (``t{f:05d}/sparse/0/``): one PINHOLE camera (the scene's videos share their
    intrinsics), one image per video with its world-to-camera quaternion (QW QX QY QZ) and translation, no points."""
    w2c = invert_rigid(scene.c2w_opencv())
    q = rotation_to_quaternion_wxyz(w2c[..., :3, :3])  # (F, C, 4)
    t = w2c[..., :3, 3]
    k = scene.k_continuous()
    n = len(scene.names)
    # One camera: the videos of a scene share their intrinsics (as COLMAP's "single camera" mode assumes).
    cams = (_COLMAP_CAMERAS_HEAD.format(n=1)
            + f"1 PINHOLE {scene.width_px} {scene.height_px} {_fmt_row([k[0, 0], k[1, 1], k[0, 2], k[1, 2]])}\n")
    out = {}
    for f in range(scene.frames):
        lines = [_COLMAP_IMAGES_HEAD.format(n=n)]
        for c, name in enumerate(scene.names):
            lines.append(f"{c + 1} {_fmt_row(q[f, c])} {_fmt_row(t[f, c])} 1 {name}.png\n\n")
        base = f"t{f:05d}/sparse/0/"
        out[base + "cameras.txt"] = cams
        out[base + "images.txt"] = "".join(lines)
        out[base + "points3D.txt"] = _COLMAP_POINTS_HEAD
    return out


def realestate10k_files(scene: SceneCameras, video_ref: Callable[[str], str]) -> dict[str, str]:
    """CameraCtrl's RealEstate10K text per camera (``camNN.txt``): the video on the first line, then per frame
    ``timestamp_us fx/W fy/H cx/W cy/H 0 0`` and the 3x4 OpenCV world-to-camera matrix row-major."""
    w2c = invert_rigid(scene.c2w_opencv())
    intr = normalized_intrinsics(scene.k_continuous(), scene.width_px, scene.height_px)
    ts_us = np.round(np.arange(scene.frames) * 1e6 / scene.fps).astype(np.int64)
    out = {}
    for c, name in enumerate(scene.names):
        rows = [f"{int(ts_us[f])} {_fmt_row(intr)} 0 0 {_fmt_row(w2c[f, c, :3, :4])}\n" for f in range(scene.frames)]
        out[f"{name}.txt"] = video_ref(name) + "\n" + "".join(rows)
    return out


# ----------------------------------------------------------------------------------------------
# Writing a scene (atomically: a temp folder renamed into place)
# ----------------------------------------------------------------------------------------------


def _iter_video(path: Path) -> Iterator[NDArray[np.uint8]]:
    from exporters.video import iter_video_frames

    yield from iter_video_frames(path)


def _write_png(path: Path, img: NDArray[np.uint8 | np.uint16]) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise ExportError(f"{path}: cannot write PNG")


def _write_frames(scene: SceneCameras, fmt: str, tmp: Path, frames_out: bool) -> int:
    """Video frames (with ``frames_out``), depth PNGs and mask PNGs, at the layout's paths. Returns files written."""
    n = 0
    for name in scene.names:
        if frames_out and name in scene.videos:
            for f, rgb in enumerate(_iter_video(scene.videos[name])):
                if f < scene.frames:
                    _write_png(tmp / frame_path(fmt, "images", name, f), np.ascontiguousarray(rgb[..., ::-1]))
                    n += 1
        if name in scene.masks:
            for f, rgb in enumerate(_iter_video(scene.masks[name])):
                if f < scene.frames:
                    _write_png(tmp / frame_path(fmt, "masks", name, f), np.where(rgb[..., 0] > 127, 255, 0)
                               .astype(np.uint8))
                    n += 1
        if name in scene.depth_dirs:
            for f in range(scene.frames):
                src = scene.depth_dirs[name] / f"{f:05d}.png"
                if src.is_file():
                    dst = tmp / frame_path(fmt, "depth", name, f)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
                    n += 1
    return n


@dataclass(frozen=True)
class SceneExport:
    scene: SceneCameras
    folder: Path
    files: int


def export_scene(scene: SceneCameras, fmt: str, out_root: Path, dataset_root: Path,
                 frames_out: bool = False) -> SceneExport:
    """Write ``scene`` in ``fmt`` to ``out_root / scene.rel`` (replacing an earlier export of it atomically)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    final = Path(out_root) / scene.rel
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.export-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        texts: dict[str, str]
        if fmt == "opencv":
            texts, arrays = opencv_files(scene)
            np.savez(tmp / "cameras.npz", names=np.asarray(scene.names), width=scene.width_px,
                     height=scene.height_px, fps=scene.fps, focal_mm=scene.focal_mm, **arrays)
        elif fmt == "nerfstudio":
            texts = nerfstudio_files(scene)
        elif fmt == "colmap":
            texts = colmap_files(scene)
        else:
            root = Path(dataset_root).resolve()

            def video_ref(name: str) -> str:
                p = (scene.scene_dir / "videos" / f"{name}.mp4").resolve()
                return p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix()

            texts = realestate10k_files(scene, video_ref)
        for rel, text in texts.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        n = len(texts) + (fmt == "opencv") + _write_frames(scene, fmt, tmp, frames_out)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SceneExport(scene, final, n)


def aim_point_m(scene: SceneCameras) -> FloatArray | None:
    """The character's aim point in the exports' world (RH, metres), if scene.json gives it."""
    return None if scene.aim_point_cm is None else ue_to_rh_points(scene.aim_point_cm)


__all__ = ["FORMATS", "SceneCameras", "load_scene", "export_scene", "frame_path", "ExportError",
           "opencv_files", "nerfstudio_files", "colmap_files", "realestate10k_files", "aim_point_m"]
