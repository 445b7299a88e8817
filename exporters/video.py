"""The shared video encoder and probe: H.264 mp4, yuv420p, exact frame count (PyAV).

Every backend encodes through :class:`Mp4Writer`; every verification reads through
:func:`probe_video` / :func:`read_video_frames`, which decode the stream (not just its header).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("video encoding needs PyAV: pip install 'multicam[render]'") from exc
    return av


class Mp4Writer:
    """Write RGB uint8 frames ``(H, W, 3)`` to an H.264 mp4 at ``path`` (atomically on close)."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float = 15.0,
                 crf: int = 18, preset: str = "medium") -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs an even frame size, got {width}x{height}")
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.part")
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        self._stream.codec_context.time_base = 1 / rate
        self.width, self.height, self.count = width, height, 0
        self._av = av

    def write(self, rgb: NDArray[np.uint8]) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 frame {(self.height, self.width, 3)}, got {rgb.dtype} {rgb.shape}")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.count
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.count += 1

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encode_mp4(path: str | os.PathLike[str], frames: Iterable[NDArray[np.uint8]], fps: float = 15.0,
               crf: int = 18) -> Path:
    """Encode an iterable of RGB frames (all the same size) to ``path``."""
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    with Mp4Writer(path, w, h, fps=fps, crf=crf) as wr:
        wr.write(first)
        for f in it:
            wr.write(f)
    return Path(path)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frames: int  # decoded, not the container's claim
    codec: str
    pix_fmt: str


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Decode every frame of ``path`` and report what is really there."""
    av = _av()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        rate = s.average_rate or s.base_rate or 0
        return VideoInfo(Path(path), s.codec_context.width, s.codec_context.height, float(rate), n,
                         s.codec_context.name, s.codec_context.pix_fmt or "")


#: Luma planes read straight from the decoded frame (no colour conversion) for these pixel formats.
_PLANAR_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray", "nv12"})


@dataclass(frozen=True)
class VideoScan:
    """What :func:`scan_video` saw: the stream (:class:`VideoInfo`) and per-frame luma statistics over a
    ``stride``-subsampled grid of the luma plane (levels 0..255)."""

    info: VideoInfo
    max_luma: NDArray[np.float64]  # (F,) brightest sample of each frame
    mean_luma: NDArray[np.float64]  # (F,)
    step_max_diff: NDArray[np.float64]  # (F-1,) largest |luma change| from the previous frame


def _luma(frame: Any, stride: int) -> NDArray[np.uint8]:
    if frame.format.name in _PLANAR_8BIT:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    else:
        y = frame.to_ndarray(format="gray")
    return np.asarray(y[::stride, ::stride])


def scan_video(path: str | os.PathLike[str], stride: int = 4) -> VideoScan:
    """Decode every frame of ``path`` (like :func:`probe_video`) and measure each frame's luma: enough to
    tell a black or a frozen video without keeping the frames."""
    av = _av()
    maxes: list[float] = []
    means: list[float] = []
    steps: list[float] = []
    prev: NDArray[np.int16] | None = None
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for fr in c.decode(s):
            y = _luma(fr, stride).astype(np.int16)
            maxes.append(float(y.max()))
            means.append(float(y.mean()))
            if prev is not None:
                steps.append(float(np.abs(y - prev).max()))
            prev = y
        rate = s.average_rate or s.base_rate or 0
        info = VideoInfo(Path(path), s.codec_context.width, s.codec_context.height, float(rate), len(maxes),
                         s.codec_context.name, s.codec_context.pix_fmt or "")
    return VideoScan(info, np.array(maxes), np.array(means), np.array(steps))


def iter_video_frames(path: str | os.PathLike[str]) -> Iterator[NDArray[np.uint8]]:
    av = _av()
    with av.open(str(path)) as c:
        for fr in c.decode(c.streams.video[0]):
            yield fr.to_ndarray(format="rgb24")


def read_video_frames(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """All frames ``(N, H, W, 3)`` RGB uint8."""
    return np.stack(list(iter_video_frames(path)))
