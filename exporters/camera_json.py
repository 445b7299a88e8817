"""Reader and writer of MultiCamVideo's ``cameras/camera_extrinsics.json``.

Layout (as in the released dataset)::

    {
        "frame0": {
            "cam01": "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] ",
            ...
        },
        ...
    }

Each value is a UE row-vector 4x4 matrix (see :mod:`multicam.conventions`), one bracketed row per
matrix row, a space after each bracket, so the string ends in a space. The reader accepts what the
released files contain: ``-0``, exponents such as ``2.69953e-34`` and rows of 3 or 4 numbers (a row
of 3 gets its homogeneous entry: 0 for the axis rows, 1 for the location row).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multicam.conventions import ue_engine_zero_signs
from multicam.io import atomic_write_text

CAMERA_FILE = Path("cameras") / "camera_extrinsics.json"

_ROW = re.compile(r"\[([^\[\]]*)\]")
_FRAME_KEY = re.compile(r"^frame(\d+)$")
_CAM_KEY = re.compile(r"^cam(\d+)$")
# %.10g keeps a relative error below 5e-10, far inside the 1e-6 promise, and writes 1 and -0
# exactly as the dataset does.
_NUM = "%.10g"


class CameraFileError(ValueError):
    """A camera file that cannot be read; the message (one line) names the file, the key and the problem.

    ``kind`` says what is wrong, for reports that count problems: ``missing`` (no file), ``unreadable`` (a folder,
    no permission), ``encoding`` (binary or not UTF-8), ``json`` (not JSON, e.g. truncated) or ``layout`` (JSON, but
    not frame0..frameN of camNN matrix strings)."""

    def __init__(self, message: str, kind: str = "layout") -> None:
        super().__init__(" ".join(message.splitlines()))  # one line, whatever the parts held
        self.kind = kind


def cam_name(index: int) -> str:
    """0-based camera index -> ``cam01``-style name."""
    return f"cam{index + 1:02d}"


def frame_name(index: int) -> str:
    return f"frame{index}"


def format_ue_matrix(matrix: ArrayLike) -> str:
    """One 4x4 UE matrix -> the dataset's string (``"[a b c d] [..] [..] [x y z 1] "``)."""
    m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    return _matrix_template() % tuple(m.ravel().tolist())


def _matrix_template(rigid: bool = False) -> str:
    """``rigid``: the homogeneous column (0, 0, 0, 1) is written as literals (4 fewer numbers)."""
    if rigid:
        row = "[" + " ".join([_NUM] * 3) + " 0] "
        return row * 3 + "[" + " ".join([_NUM] * 3) + " 1] "
    row = "[" + " ".join([_NUM] * 4) + "] "
    return row * 4


def _is_rigid_layout(p: NDArray[np.float64]) -> bool:
    col = p[..., :3, 3]
    return bool(np.all(col == 0) and not np.any(np.signbit(col)) and np.all(p[..., 3, 3] == 1))


def parse_ue_matrix(text: str, where: str = "<string>") -> NDArray[np.float64]:
    """Parse one matrix string; ``where`` names the file and keys for error messages."""
    rows = _ROW.findall(text)
    if len(rows) != 4:
        raise CameraFileError(f"{where}: expected 4 bracketed rows, found {len(rows)} in {text[:120]!r}")
    out = np.zeros((4, 4))
    for i, row in enumerate(rows):
        try:
            vals = [float(v) for v in row.split()]
        except ValueError as exc:
            raise CameraFileError(f"{where}: row {i} is not numeric: [{row}]") from exc
        if len(vals) == 3:
            vals.append(1.0 if i == 3 else 0.0)
        if len(vals) != 4:
            raise CameraFileError(f"{where}: row {i} has {len(vals)} numbers, expected 3 or 4")
        out[i] = vals
    if not np.all(np.isfinite(out)):
        raise CameraFileError(f"{where}: non-finite value in {text!r}")
    return out


def render_camera_json(poses: ArrayLike, camera_names: Sequence[str] | None = None) -> str:
    """UE poses ``(F, C, 4, 4)`` (frame-major) -> the file's text, byte-stable for equal input."""
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 4 or p.shape[2:] != (4, 4):
        raise ValueError(f"poses must have shape (frames, cameras, 4, 4), got {p.shape}")
    n_frames, n_cams = p.shape[:2]
    names = list(camera_names) if camera_names is not None else [cam_name(c) for c in range(n_cams)]
    if len(names) != n_cams:
        raise ValueError(f"{len(names)} camera names for {n_cams} cameras")
    # One %-format over the whole file: the hot path of writing 136K cameras x 81 frames.
    rigid = _is_rigid_layout(p)
    if rigid:  # UE transforms: zeros signed as Unreal prints them ("[-0 1 0 0]" for the identity)
        with np.errstate(invalid="ignore", divide="ignore"):  # a degenerate matrix keeps its zeros as they are
            p = ue_engine_zero_signs(p)
    mat = _matrix_template(rigid)
    frame_tpls = []
    for f in range(n_frames):
        body = ",\n".join(f'        "{n}": "{mat}"' for n in names)
        frame_tpls.append(f'    "frame{f}": {{\n{body}\n    }}')
    template = "{\n" + ",\n".join(frame_tpls) + "\n}"
    values = p[..., :3].reshape(-1) if rigid else p.reshape(-1)
    return template % tuple(values.tolist())


def write_camera_json(
    path: str | os.PathLike[str],
    poses: ArrayLike,
    camera_names: Sequence[str] | None = None,
    durable: bool = True,
) -> Path:
    """Write poses ``(F, C, 4, 4)`` atomically to ``path`` (indent 4, like the dataset)."""
    return atomic_write_text(Path(path), render_camera_json(poses, camera_names), durable)


def _ends_open(text: str) -> bool:
    """True when ``text`` ends inside a string or with an object/array still open: a cut-off JSON document."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def load_json_file(path: Path, error: type[CameraFileError] = CameraFileError) -> object:
    """The JSON value of the file at ``path``, or a one-line ``error`` (a :class:`CameraFileError` or subclass)
    of the right ``kind``: a missing, unreadable, binary, non-UTF-8 or truncated file is one message."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found", "missing") from None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise error(f"{path}: cannot be read ({why})", "unreadable") from None
    if b"\x00" in raw:
        raise error(f"{path}: binary file (NUL byte at offset {raw.index(0)}), expected JSON text",
                    "encoding")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}), "
                    "expected JSON text", "encoding") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        tail = "; the file ends early (truncated?)" if _ends_open(text) else ""
        raise error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}){tail}",
                    "json") from None


def read_camera_json(path: str | os.PathLike[str]) -> tuple[NDArray[np.float64], list[str]]:
    """Read a camera file -> (poses ``(F, C, 4, 4)`` frame-major, camera names sorted cam01..).

    Frames must be ``frame0..frame{F-1}`` without gaps; every frame must have the same cameras.
    """
    path = Path(path)
    data = load_json_file(path)
    if not isinstance(data, dict) or not data:
        raise CameraFileError(f"{path}: expected a non-empty object of frame0..frameN")
    frames: dict[int, dict[str, str]] = {}
    for key, value in data.items():
        m = _FRAME_KEY.match(key)
        if not m:
            raise CameraFileError(f"{path}: unexpected key {key!r}, expected frame<N>")
        if not isinstance(value, dict) or not value:
            raise CameraFileError(f"{path}: {key} must map camera names to matrix strings")
        frames[int(m.group(1))] = value
    n_frames = len(frames)
    if sorted(frames) != list(range(n_frames)):
        missing = sorted(set(range(max(frames) + 1)) - set(frames))
        raise CameraFileError(f"{path}: frames must be frame0..frame{n_frames - 1}; missing {missing[:5]}")
    names0 = frames[0].keys()
    for key in names0:
        if not _CAM_KEY.match(key):
            raise CameraFileError(f"{path}: frame0: unexpected camera key {key!r}, expected camNN")
    names = sorted(names0, key=lambda n: int(n[3:]))
    out = np.empty((n_frames, len(names), 4, 4))
    for f in range(n_frames):
        fr = frames[f]
        if fr.keys() != names0:
            diff = sorted(set(fr) ^ set(names0))
            raise CameraFileError(f"{path}: frame{f} has different cameras than frame0: {diff}")
        for c, n in enumerate(names):
            s = fr[n]
            if not isinstance(s, str):
                raise CameraFileError(f"{path}: frame{f}.{n} must be a string, got {type(s).__name__}")
            out[f, c] = parse_ue_matrix(s, f"{path}: frame{f}.{n}")
    return out, names


def read_camera_track(path: str | os.PathLike[str], cam: str) -> NDArray[np.float64]:
    """Poses ``(F, 4, 4)`` of one camera (``cam`` like ``cam03``) from a camera file."""
    poses, names = read_camera_json(path)
    if cam not in names:
        raise CameraFileError(f"{path}: no camera {cam!r}; the file has {', '.join(names)}")
    return poses[:, names.index(cam)]


def _frames_text(frames: dict[str, dict[str, str]]) -> str:
    """The writer's layout (:func:`render_camera_json`) of already formatted matrix strings."""
    return "{\n" + ",\n".join(
        f"    {json.dumps(f)}: {{\n" + ",\n".join(f"        {json.dumps(n)}: {json.dumps(v)}" for n, v in cams.items())
        + "\n    }" for f, cams in frames.items()) + "\n}"


def merge_camera_json_text(old_text: str, new_text: str, where: str = "<camera file>") -> str:
    """A camera file holding the cameras of ``old_text`` and then those of ``new_text`` (same frames, new names),
    in the writer's layout; the old cameras' entries are kept character for character (``multicam extend``).

    Raises :class:`CameraFileError` when the old file is not in the writer's layout (its entries could not be
    kept byte for byte), when the frames differ, or when a camera is in both."""
    old, new = json.loads(old_text), json.loads(new_text)
    if not isinstance(old, dict) or not isinstance(new, dict) or not old:
        raise CameraFileError(f"{where}: expected objects of frame0..frameN")
    if _frames_text(old) != old_text.rstrip("\n") or old_text.endswith("\n\n"):
        raise CameraFileError(f"{where}: not in the layout multicam writes; its entries cannot be kept byte for byte")
    if list(old) != list(new):
        raise CameraFileError(f"{where}: the new cameras have frames {len(new)}, the file {len(old)}")
    both = sorted(set(next(iter(old.values()))) & set(next(iter(new.values()))))
    if both:
        raise CameraFileError(f"{where}: cameras {both} are in the file already")
    merged = {f: {**old[f], **new[f]} for f in old}
    return _frames_text(merged) + ("\n" if old_text.endswith("\n") else "")
