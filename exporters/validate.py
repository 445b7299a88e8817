"""Validate a MultiCamVideo-format dataset on disk (ours or the released one).

A scene folder is any folder (not hidden) holding ``cameras/camera_extrinsics.json``, ``scene.json`` or
``videos/``. Each problem found is a :class:`Problem` with a stable ``code`` (the table :data:`CODES`, documented
in ``docs/validate.md``); problems are collected, never raised, so that one run reports everything: a binary,
non-UTF-8 or truncated camera file is one problem of its scene and the run goes on.

Checks, per scene: the camera file parses; every rotation is orthonormal with determinant +1 in UE's frame
(``|R R^T - I| < 1e-4``, rows forward/right/up); the homogeneous column is (0, 0, 0, 1); no camera moves more than
``max_step_m`` or turns more than ``max_turn_deg`` between two frames (a teleport); ``scene.json`` parses and agrees
with the camera file (cameras, frame count, start poses, camera-set folder); one ``videos/camNN.mp4`` per camera,
H.264 yuv420p, decoding to exactly the camera file's frame count, one size and frame rate per scene, neither black
nor frozen. Per dataset: every scene folder the plan (``plan/manifest.jsonl``) expects exists, and
``metadata.csv`` has one row per video present and none for a video that is not.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, CameraFileError, load_json_file, read_camera_json
from multicam.conventions import CM_PER_M, camera_set_folder, ue_matrix_to_location_rotator

SCENE_FILE = "scene.json"
METADATA_FILE = "metadata.csv"
MANIFEST_FILE = Path("plan") / "manifest.jsonl"
PLAN_FILE = Path("plan") / "plan.json"

#: ``|R R^T - I|`` (largest entry) allowed for a rotation.
ORTHONORMAL_TOL = 1e-4
#: Default teleport bounds: 2x / 2.5x the largest per-frame step (0.49 m, an arc) and turn (12.1 deg, a translation
#: passing the subject while keeping it in view) of 30,000 sampled cameras x 81 frames (seed 0, scenes 1..3000).
MAX_STEP_M = 1.0
MAX_TURN_DEG = 30.0
#: A video whose every frame has no luma sample above this (of 255; video black is 16) is black.
BLACK_MAX_LUMA = 32.0
#: Consecutive frames whose luma differs nowhere by more than this are the same picture (H.264 decodes a
#: repeated picture to within 1 level).
FROZEN_MAX_DIFF = 1.0
#: The teleport bounds are per frame of an 81-frame trajectory; a shorter one covers the same motion in fewer
#: frames, so its bounds scale by ``(REFERENCE_FRAMES - 1) / (F - 1)``.
REFERENCE_FRAMES = 81
#: Start location / rotator of scene.json vs frame 0 of the camera file.
START_TOL_CM = 0.05
START_TOL_DEG = 0.01

CODES: dict[str, str] = {
    "camera-file-missing": "a scene folder without cameras/camera_extrinsics.json",
    "camera-file-unreadable": "the camera file cannot be read (a folder, no permission)",
    "camera-file-encoding": "the camera file is binary or not UTF-8 text",
    "camera-file-json": "the camera file is not valid JSON (e.g. truncated)",
    "camera-file-layout": "JSON, but not frame0..frameN of camNN matrix strings",
    "camera-frames": "the camera file has another frame count than --frames",
    "rotation-not-orthonormal": "a rotation with |R R^T - I| >= 1e-4",
    "rotation-reflection": "an orthonormal rotation with determinant -1 (a mirror)",
    "matrix-not-rigid": "a matrix whose homogeneous column is not (0, 0, 0, 1)",
    "teleport-step": "a camera moves more than --max-step-m between two frames",
    "teleport-turn": "a camera turns more than --max-turn-deg between two frames",
    "scene-json-missing": "a planned scene without scene.json",
    "scene-json-invalid": "scene.json is binary, not UTF-8, not JSON (e.g. truncated) or not an object",
    "scene-json-mismatch": "scene.json disagrees with the camera file (cameras, frames, start pose, camera set)",
    "video-missing": "a camera of the camera file without its videos/camNN.mp4",
    "video-extra": "a videos/camNN.mp4 without a camera in the camera file",
    "video-undecodable": "a video that does not decode",
    "video-frames": "a video decoding to another frame count than the camera file's",
    "video-size": "a video of another size than --size",
    "video-inconsistent": "videos of one scene with different sizes or frame rates",
    "video-codec": "a video that is not H.264",
    "video-pix-fmt": "a video that is not yuv420p",
    "video-black": "a video whose every frame is black",
    "video-frozen": "a video whose picture stops changing (half of its frames or more the same)",
    "scene-missing": "a scene folder the plan expects but that is not there",
    "plan-unreadable": "plan/manifest.jsonl cannot be read or has a damaged line",
    "metadata-missing": "a planned dataset without metadata.csv",
    "metadata-invalid": "metadata.csv cannot be read or lacks the file_name column",
    "metadata-row-missing": "a video without its metadata.csv row",
    "metadata-row-extra": "a metadata.csv row whose video is not there",
    "metadata-row-duplicate": "a video with more than one metadata.csv row",
}


@dataclass(frozen=True)
class Problem:
    code: str
    path: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown problem code {self.code!r}")

    def line(self) -> str:
        return f"{self.code} {self.path}: {self.message}"

    def __str__(self) -> str:
        return self.line()


@dataclass(frozen=True)
class Limits:
    """What a scene is checked against; ``decode=False`` checks that the videos are there, nothing more."""

    decode: bool = True
    expect_frames: int | None = None
    expect_size: tuple[int, int] | None = None
    max_step_m: float = MAX_STEP_M
    max_turn_deg: float = MAX_TURN_DEG


@dataclass
class SceneReport:
    path: Path
    cameras: int = 0
    frames: int = 0
    size: tuple[int, int] | None = None
    fps: float | None = None
    videos: list[str] = field(default_factory=list)  # camNN of the videos present
    problems: list[Problem] = field(default_factory=list)

    def add(self, code: str, path: Path | str, message: str) -> None:
        self.problems.append(Problem(code, str(path), message))


@dataclass
class DatasetReport:
    root: Path
    limits: Limits = field(default_factory=Limits)
    scenes: list[SceneReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # dataset-level ones

    def all_problems(self) -> list[Problem]:
        return [p for s in self.scenes for p in s.problems] + self.problems

    def to_json(self) -> dict[str, Any]:
        probs = self.all_problems()
        return {
            "dataset": str(self.root),
            "ok": not probs,
            "limits": {"decode": self.limits.decode, "frames": self.limits.expect_frames,
                       "size": list(self.limits.expect_size) if self.limits.expect_size else None,
                       "max_step_m": self.limits.max_step_m, "max_turn_deg": self.limits.max_turn_deg},
            "scenes": len(self.scenes),
            "cameras": sum(s.cameras for s in self.scenes),
            "counts": dict(sorted(Counter(p.code for p in probs).items())),
            "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in probs],
            "scene_reports": [{"path": str(s.path), "cameras": s.cameras, "frames": s.frames,
                               "size": list(s.size) if s.size else None, "fps": s.fps,
                               "problems": len(s.problems)} for s in self.scenes],
        }


# -- finding scenes ---------------------------------------------------------------------------------------


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def iter_scene_dirs(root: Path) -> Iterator[Path]:
    """Every folder under ``root`` (or ``root`` itself) that is a scene, sorted; hidden folders (``.tmp/``,
    ``.scene1.invalid-*``) never are."""
    root = Path(root)
    if (root / CAMERA_FILE).is_file() or (root / SCENE_FILE).is_file() or (root / "videos").is_dir():
        yield root
        return
    found = {p.parent.parent for p in root.rglob(str(CAMERA_FILE))}
    found |= {p.parent for p in root.rglob(SCENE_FILE)}
    found |= {p.parent for p in root.rglob("videos") if p.is_dir()}
    yield from sorted(p for p in found if p != root and not _hidden(p, root) and not _hidden(p.parent, root)
                      and p.name != "plan")


# -- poses ---------------------------------------------------------------------------------------------------


def _first_bad(bad: NDArray[np.bool_], value: NDArray[np.float64], names: list[str],
               describe: Callable[[int, float], str], code: str, path: Path) -> list[Problem]:
    """One problem per camera with any ``bad[f, c]``: its worst frame, and how many frames are bad."""
    out = []
    for c in np.flatnonzero(bad.any(axis=0)):
        frames = np.flatnonzero(bad[:, c])
        worst = int(frames[np.argmax(value[frames, c])])
        more = f" ({len(frames)} frames)" if len(frames) > 1 else ""
        out.append(Problem(code, str(path), f"{names[c]}: {describe(worst, float(value[worst, c]))}{more}"))
    return out


def check_poses(poses: NDArray[np.float64], names: list[str], path: Path, limits: Limits) -> list[Problem]:
    """Rigid, right-handed (in UE's frame) and continuous camera poses ``(F, C, 4, 4)``; vectorised."""
    r = poses[..., :3, :3]
    ortho = np.abs(r @ np.swapaxes(r, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    det = np.linalg.det(r)
    out = _first_bad(ortho >= ORTHONORMAL_TOL, ortho, names,
                     lambda f, v: f"frame{f}: |R R^T - I| = {v:.3g} >= {ORTHONORMAL_TOL:g}",
                     "rotation-not-orthonormal", path)
    out += _first_bad((ortho < ORTHONORMAL_TOL) & (det < 0), -det, names,
                      lambda f, v: f"frame{f}: det R = {-v:.6g}, expected +1 (rows forward, right, up in UE's "
                      "left-handed world: a mirrored camera)", "rotation-reflection", path)
    col = np.abs(poses[..., :, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=-1)
    out += _first_bad(col > 1e-9, col, names,
                      lambda f, v: f"frame{f}: homogeneous column is not (0, 0, 0, 1) (off by {v:.3g})",
                      "matrix-not-rigid", path)
    if poses.shape[0] < 2:
        return out
    scale = max(1.0, (REFERENCE_FRAMES - 1) / (poses.shape[0] - 1))
    max_step, max_turn = limits.max_step_m * scale, limits.max_turn_deg * scale
    step_m = np.linalg.norm(np.diff(poses[..., 3, :3], axis=0), axis=-1) / CM_PER_M
    rel = r[1:] @ np.swapaxes(r[:-1], -1, -2)
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    turn = np.degrees(np.arccos(cos))
    per = "" if scale == 1.0 else f" x {scale:.3g} for {poses.shape[0]} frames"
    out += _first_bad(step_m > max_step, step_m, names,
                      lambda f, v: f"frame{f} -> frame{f + 1}: moves {v:.3g} m > --max-step-m "
                      f"{limits.max_step_m:g}{per}", "teleport-step", path)
    out += _first_bad(turn > max_turn, turn, names,
                      lambda f, v: f"frame{f} -> frame{f + 1}: turns {v:.3g} deg > --max-turn-deg "
                      f"{limits.max_turn_deg:g}{per}", "teleport-turn", path)
    return out


# -- scene.json ----------------------------------------------------------------------------------------------


class SceneFileError(CameraFileError):
    """scene.json that cannot be read (same kinds as :class:`CameraFileError`)."""


def _vec(value: Any) -> NDArray[np.float64] | None:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape == (3,) and np.all(np.isfinite(v)) else None


def check_scene_record(record: dict[str, Any], poses: NDArray[np.float64], names: list[str], scene: Path
                       ) -> list[str]:
    """How ``scene.json``'s record disagrees with the camera file (messages; empty = agrees)."""
    out: list[str] = []
    frames = record.get("frames")
    if isinstance(frames, int) and frames != poses.shape[0]:
        out.append(f"frames {frames}, the camera file has {poses.shape[0]}")
    cams = record.get("cameras")
    if cams is not None and not isinstance(cams, dict):
        out.append(f"cameras must be an object, got {type(cams).__name__}")
        cams = None
    if cams:
        if set(cams) != set(names):
            only_json, only_file = sorted(set(cams) - set(names)), sorted(set(names) - set(cams))
            out.append(f"cameras differ from the camera file: only in scene.json {only_json}, "
                       f"only in the camera file {only_file}")
        loc, rot = ue_matrix_to_location_rotator(poses[0])
        for c, name in enumerate(names):
            start = cams.get(name, {}).get("start") if isinstance(cams.get(name), dict) else None
            if not isinstance(start, dict):
                continue
            want_loc, want_rot = _vec(start.get("location_cm")), _vec(start.get("rotator_deg"))
            if want_loc is not None and np.abs(want_loc - loc[c]).max() > START_TOL_CM:
                out.append(f"{name}: start.location_cm {np.round(want_loc, 2).tolist()} but frame0 of the camera "
                           f"file is at {np.round(loc[c], 2).tolist()}")
            if want_rot is not None:
                d = np.abs((want_rot - rot[c] + 180.0) % 360.0 - 180.0).max()
                if d > START_TOL_DEG:
                    out.append(f"{name}: start.rotator_deg {np.round(want_rot, 3).tolist()} but frame0 of the camera "
                               f"file turns {np.round(rot[c], 3).tolist()}")
    motion = record.get("camera_motion")
    if isinstance(motion, dict) and set(motion) - set(names):
        out.append(f"camera_motion names cameras the camera file lacks: {sorted(set(motion) - set(names))}")
    cam_set = record.get("camera_set")
    if isinstance(cam_set, dict) and scene.parent.name.startswith("f") and "_aperture" in scene.parent.name:
        try:
            folder = camera_set_folder(float(cam_set["focal_mm"]), float(cam_set["aperture"]))
        except (KeyError, TypeError, ValueError):
            folder = None
        if folder is not None and folder != scene.parent.name:
            out.append(f"camera_set {folder} but the scene is in {scene.parent.name}/")
    return out


# -- videos --------------------------------------------------------------------------------------------------


def _frozen_run(step_max_diff: NDArray[np.float64]) -> tuple[int, int]:
    """The longest run of consecutive frames that are the same picture: (first frame, length in frames)."""
    same = np.concatenate([[False], step_max_diff <= FROZEN_MAX_DIFF, [False]])
    edges = np.flatnonzero(np.diff(same.astype(np.int8)))
    if edges.size == 0:
        return 0, 1
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k] - starts[k]) + 1


def check_video(path: Path, rep: SceneReport, limits: Limits) -> None:
    from exporters.video import scan_video

    try:
        scan = scan_video(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a problem to report
        why = " ".join(str(exc).split()) or "no detail"
        rep.add("video-undecodable", path, f"cannot be decoded ({type(exc).__name__}: {why})")
        return
    info = scan.info
    if info.frames == 0:
        rep.add("video-undecodable", path, "no frame decodes")
        return
    if info.frames != rep.frames:
        rep.add("video-frames", path, f"{info.frames} frames decoded, the camera file has {rep.frames}")
    if info.codec != "h264":
        rep.add("video-codec", path, f"codec {info.codec}, expected h264 (H.264)")
    if info.pix_fmt != "yuv420p":
        rep.add("video-pix-fmt", path, f"pixel format {info.pix_fmt or 'unknown'}, expected yuv420p")
    size = (info.width, info.height)
    if limits.expect_size is not None and size != limits.expect_size:
        rep.add("video-size", path, f"{size[0]}x{size[1]}, expected {limits.expect_size[0]}x{limits.expect_size[1]}")
    if rep.size is None:
        rep.size, rep.fps = size, info.fps
    elif size != rep.size or abs(info.fps - (rep.fps or 0)) > 1e-3:
        rep.add("video-inconsistent", path, f"{size[0]}x{size[1]} at {info.fps:g} fps differs from the scene's "
                f"{rep.size[0]}x{rep.size[1]} at {rep.fps:g} fps")
    if float(scan.max_luma.max()) <= BLACK_MAX_LUMA:
        rep.add("video-black", path, f"every frame is black (brightest luma {scan.max_luma.max():.0f} of 255)")
    elif info.frames >= 2:
        first, length = _frozen_run(scan.step_max_diff)
        if length >= max(2, math.ceil(info.frames / 2)):
            what = "every frame is the same picture" if length == info.frames else \
                f"frames {first}..{first + length - 1} are the same picture"
            rep.add("video-frozen", path, f"{what} ({length} of {info.frames} frames)")


# -- one scene -------------------------------------------------------------------------------------------------


def _read_scene_record(scene: Path, rep: SceneReport, planned: bool) -> dict[str, Any] | None:
    path = scene / SCENE_FILE
    try:
        record = load_json_file(path, SceneFileError)
    except SceneFileError as exc:
        if exc.kind == "missing":
            if planned:
                rep.add("scene-json-missing", path, "missing (every scene of a planned dataset has one)")
        else:
            rep.add("scene-json-invalid", path, str(exc).removeprefix(f"{path}: "))
        return None
    if not isinstance(record, dict):
        rep.add("scene-json-invalid", path, f"expected a JSON object, got {type(record).__name__}")
        return None
    return record


def validate_scene_dir(scene: Path, decode: bool = True, expect_frames: int | None = None,
                       expect_size: tuple[int, int] | None = None, *, limits: Limits | None = None,
                       planned: bool = False) -> SceneReport:
    """Check one scene folder (see the module doc); ``planned``: the dataset was planned by ``multicam``, so
    every scene has a ``scene.json``."""
    limits = limits or Limits(decode, expect_frames, expect_size)
    rep = SceneReport(scene)
    cam_path = scene / CAMERA_FILE
    record = _read_scene_record(scene, rep, planned)
    videos = scene / "videos"
    present = {p.stem for p in videos.glob("cam*.mp4")} if videos.is_dir() else set()
    rep.videos = sorted(present)
    try:
        poses, names = read_camera_json(cam_path)
    except CameraFileError as exc:
        rep.add(f"camera-file-{exc.kind}", cam_path, str(exc).removeprefix(f"{cam_path}: "))
        return rep
    rep.frames, rep.cameras = poses.shape[0], poses.shape[1]
    if limits.expect_frames is not None and rep.frames != limits.expect_frames:
        rep.add("camera-frames", cam_path, f"{rep.frames} frames, expected {limits.expect_frames}")
    rep.problems += check_poses(poses, names, cam_path, limits)
    if record is not None:
        for msg in check_scene_record(record, poses, names, scene):
            rep.add("scene-json-mismatch", scene / SCENE_FILE, msg)
    for extra in sorted(present - set(names)):
        rep.add("video-extra", videos / f"{extra}.mp4", f"video without a camera in {CAMERA_FILE}")
    for name in names:
        path = videos / f"{name}.mp4"
        if name not in present:
            rep.add("video-missing", path, f"missing (the camera file has {name})")
        elif limits.decode:
            check_video(path, rep, limits)
    return rep


# -- the dataset ------------------------------------------------------------------------------------------------


def planned_scene_dirs(root: Path) -> tuple[list[str], list[Problem]]:
    """``output_dir`` of every scene in ``root/plan/manifest.jsonl`` (relative to ``root``), and problems reading
    it. Read as plain JSON lines: this layer sits below ``render_jobs`` (which owns the manifest's schema)."""
    path = root / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem("plan-unreadable", str(path), f"cannot be read ({type(exc).__name__})")]
    dirs: list[str] = []
    problems: list[Problem] = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            dirs.append(str(entry["output_dir"]))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem("plan-unreadable", f"{path}:{i}", f"damaged manifest line ({type(exc).__name__})"))
    return dirs, problems


def check_metadata(root: Path, scenes: list[SceneReport], planned: bool) -> list[Problem]:
    """``root/metadata.csv`` rows vs the videos present below ``root/train/``."""
    path = root / METADATA_FILE
    train = root / "train"
    if not path.exists():
        return [Problem("metadata-missing", str(path), "missing; run `multicam captions` to write it")] if planned \
            else []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [Problem("metadata-invalid", str(path), f"cannot be read ({type(exc).__name__}: {exc})")]
    if rows and "file_name" not in rows[0]:
        return [Problem("metadata-invalid", str(path), "no file_name column")]
    videos = {f"{s.path.relative_to(train).as_posix()}/videos/{v}.mp4" for s in scenes
              if s.path.is_relative_to(train) for v in s.videos}
    counts = Counter(r.get("file_name") or "" for r in rows)
    out = [Problem("metadata-row-missing", str(path), f"no row for {v}") for v in sorted(videos - set(counts))]
    out += [Problem("metadata-row-extra", str(path), f"row for {v or '(empty file_name)'}, no such video below "
                    "train/") for v in sorted(set(counts) - videos)]
    out += [Problem("metadata-row-duplicate", str(path), f"{n} rows for {v}") for v, n in sorted(counts.items())
            if n > 1 and v in videos]
    return out


def validate_dataset(root: Path, limits: Limits, scenes: list[Path] | None = None,
                     on_scene: Callable[[SceneReport], None] | None = None) -> DatasetReport:
    """Check every scene below ``root`` (or ``scenes``), the plan's folders and ``metadata.csv`` (when ``root`` is a
    dataset root); ``on_scene`` is called after each scene (progress)."""
    root = Path(root)
    rep = DatasetReport(root, limits)
    planned = (root / PLAN_FILE).exists() or (root / MANIFEST_FILE).exists()
    for scene in scenes if scenes is not None else iter_scene_dirs(root):
        rep.scenes.append(validate_scene_dir(scene, limits=limits, planned=planned))
        if on_scene is not None:
            on_scene(rep.scenes[-1])
    if (root / MANIFEST_FILE).exists():
        dirs, problems = planned_scene_dirs(root)
        rep.problems += problems
        for d in dirs:
            if not (root / d).is_dir():
                rep.problems.append(Problem("scene-missing", str(root / d), "planned in plan/manifest.jsonl but "
                                            "not there; run `multicam render` to render it"))
    if (root / "train").is_dir():
        rep.problems += check_metadata(root, rep.scenes, planned)
    return rep
