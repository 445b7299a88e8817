"""A minimal reader for the uncompressed OpenEXR files the Blender backend writes itself.

Blender saves its render passes (depth, object index) as a multi-layer EXR; Python has no EXR
reader without extra packages, so this reads exactly that case: scanline images, single- or
multi-part (also multi-view: one part per view), compression NONE, HALF/FLOAT/UINT channels.
Anything else raises ``ValueError``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

_MAGIC = 20000630
_DTYPES: dict[int, np.dtype[Any]] = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _header(buf: bytes, pos: int) -> tuple[dict[str, tuple[str, bytes]], int]:
    attrs: dict[str, tuple[str, bytes]] = {}
    while True:
        name, pos = _cstr(buf, pos)
        if not name:
            return attrs, pos
        kind, pos = _cstr(buf, pos)
        (size,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        attrs[name] = (kind, buf[pos:pos + size])
        pos += size


def _channels(raw: bytes) -> list[tuple[str, int]]:
    out, pos = [], 0
    while raw[pos] != 0:
        name, pos = _cstr(raw, pos)
        (ptype,) = struct.unpack_from("<i", raw, pos)
        pos += 16
        out.append((name, ptype))
    return out


def read_exr(path: str | Path) -> dict[str, NDArray[np.float32]]:
    """All channels of an uncompressed EXR -> ``{name: (H, W) float32}`` (top row first)."""
    out: dict[str, NDArray[np.float32]] = {}
    for _, arrays in _read_parts(path):
        out.update(arrays)
    return out


def read_exr_views(path: str | Path) -> dict[str, dict[str, NDArray[np.float32]]]:
    """A multi-view EXR (Blender's ``MULTIVIEW`` format: one part per view, named by the part's ``view``
    attribute) -> ``{view: {name: (H, W) float32}}``; a part without a view attribute goes under ``""``."""
    out: dict[str, dict[str, NDArray[np.float32]]] = {}
    for h, arrays in _read_parts(path):
        view = h["view"][1].decode("latin-1").rstrip("\0") if "view" in h else ""
        out.setdefault(view, {}).update(arrays)
    return out


def _read_parts(path: str | Path) -> list[tuple[dict[str, tuple[str, bytes]], dict[str, NDArray[np.float32]]]]:
    buf = Path(path).read_bytes()
    magic, version = struct.unpack_from("<ii", buf, 0)
    if magic != _MAGIC:
        raise ValueError(f"{path}: not an OpenEXR file")
    if version & 0x200:
        raise ValueError(f"{path}: tiled EXR is not supported")
    multipart = bool(version & 0x1000)
    pos = 8
    headers = []
    while True:
        h, pos = _header(buf, pos)
        headers.append(h)
        if not multipart or buf[pos] == 0:
            if multipart:
                pos += 1
            break
    parts = []
    for h in headers:
        if h["compression"][1][0] != 0:
            raise ValueError(f"{path}: compressed EXR is not supported (compression {h['compression'][1][0]})")
        xmin, ymin, xmax, ymax = struct.unpack("<iiii", h["dataWindow"][1])
        chans = sorted(_channels(h["channels"][1]))
        w, hgt = xmax - xmin + 1, ymax - ymin + 1
        n_chunks = struct.unpack("<i", h["chunkCount"][1])[0] if "chunkCount" in h else hgt
        parts.append((chans, w, hgt, ymin, n_chunks))
    pos += 8 * sum(p[4] for p in parts)  # offset tables
    arrays = [{name: np.zeros((hgt, w), np.float32) for name, _ in chans} for chans, w, hgt, _, _ in parts]
    total = sum(p[4] for p in parts)
    for _ in range(total):
        part = 0
        if multipart:
            (part,) = struct.unpack_from("<i", buf, pos)
            pos += 4
        y, size = struct.unpack_from("<ii", buf, pos)
        pos += 8
        chans, w, hgt, ymin, _ = parts[part]
        row = y - ymin
        p = pos
        for name, ptype in chans:
            dt = _DTYPES[ptype]
            arrays[part][name][row] = np.frombuffer(buf, dt, w, p).astype(np.float32)
            p += w * dt.itemsize
        pos += size
    return list(zip(headers, arrays, strict=True))
