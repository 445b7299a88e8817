"""The ``blender`` backend: renders RenderJobs in-process with Blender as a Python module (``bpy``).

``bpy`` can be imported once per process, so a :class:`BlenderBackend` lives as long as its worker
process and renders job after job; each job gets a fresh Blender scene (factory settings), built
once and rendered from every camera. See :mod:`render_jobs.blender.render` and ``docs/blender.md``.

Options (``multicam render --backend blender -o KEY=VALUE`` or ``get_backend("blender", **options)``):

``device``
    ``auto`` (default: the job's ``settings.device``, itself ``auto`` = OptiX/CUDA/HIP/Metal when
    present, else CPU), or force ``CPU``, ``CUDA``, ``OPTIX``, ``HIP``, ``METAL``.
``threads``
    CPU render threads (0 = all cores, the default).
``num_cpus``, ``num_gpus``
    What a job reserves in the Ray executor (default: all cores of the machine, no GPU; set
    ``num_gpus=1`` on GPU nodes so that Ray runs one job per GPU).
``save_blend``
    Also save ``scene.blend`` into the scene folder (for debugging a scene in Blender's UI).
``progress``
    Show a per-job tqdm bar of camera-frames (default off; the runner has its own bar).
``views_per_call``
    Cameras rendered by one Blender render call (multi-view; 0 = the default: all ten up to 256 px, fewer
    at larger sizes to bound memory, one at 1280 px). Changes nothing in the output but the noise.

Blender writes its own log lines to the process's stdout (file descriptor 1, from C). While a job is built and
rendered that descriptor goes to a temporary file (:func:`blender_stdout`); afterwards its lines are copied to
stderr, except the known noise of :data:`BLENDER_NOISE` (e.g. ``CUEW initialization failed`` on a machine without
the CUDA or HIP libraries), so that ``multicam``'s stdout carries only its own report and real messages still show.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from render_jobs.backend import RenderError
from render_jobs.schema import RenderJob

#: Blender's lines that say nothing about a render: the GPU libraries it probes for are absent (a CPU machine).
BLENDER_NOISE = re.compile(r"\b(CUEW|HIPEW|HIPRT|OPTIX|OptiX|oneAPI|ONEAPI)\b.*\b(initialization failed|failed to "
                           r"(load|initiali[sz]e)|Error opening|not found)", re.IGNORECASE)


def worth_showing(text: str) -> list[str]:
    """The lines of Blender's captured output that are not :data:`BLENDER_NOISE` (nor blank)."""
    return [ln for ln in text.splitlines() if ln.strip() and not BLENDER_NOISE.search(ln)]


@contextlib.contextmanager
def stdout_fd_to(fd: int) -> Iterator[None]:
    """Point file descriptor 1 (C-level writes included) at ``fd`` for the block, then back. C stdio buffers are
    flushed at both ends, so Blender's printf output lands on the side of the switch it was written on."""
    sys.stdout.flush()
    _flush_c_stdio()
    saved = os.dup(1)
    os.dup2(fd, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)


def _flush_c_stdio() -> None:
    """``fflush(NULL)`` in the C library (Blender writes its log with printf); a no-op where there is none."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def blender_stdout(sink: TextIO | None = None) -> Iterator[None]:
    """Send file descriptor 1 (Blender's C-level log lines, and Python's prints) to a temporary file for the block;
    then write the lines :func:`worth_showing` keeps to ``sink`` (default: stderr), even when the block raised."""
    with tempfile.TemporaryFile() as cap:
        try:
            with stdout_fd_to(cap.fileno()):
                yield
        finally:
            cap.seek(0)
            lines = worth_showing(cap.read().decode("utf-8", errors="replace"))
            if lines:
                out = sys.stderr if sink is None else sink
                out.write("\n".join(lines) + "\n")
                out.flush()


def _blender_script_path(entry: str) -> bool:
    parts = Path(entry).parts
    return "scripts" in parts and ("bpy" in parts or "blender" in parts)


def import_bpy() -> Any:
    """``import bpy``, also in a process spawned by a parent that had imported it.

    Importing ``bpy`` adds Blender's script folders to ``sys.path``; a ``spawn``-ed child inherits that
    ``sys.path`` and would import the pure-Python ``bpy`` package of ``scripts/modules`` (which needs
    Blender's built-in ``_bpy``). Those folders are dropped and the import retried; Blender adds them
    back itself.
    """
    try:
        import bpy
    except ModuleNotFoundError as exc:
        if exc.name != "_bpy":
            raise
        for name in [m for m in sys.modules if m == "bpy" or m.startswith("bpy.")]:
            del sys.modules[name]
        sys.path[:] = [p for p in sys.path if not _blender_script_path(p)]
        import bpy
    return bpy


class BlenderBackend:
    name = "blender"

    def __init__(self, device: str = "auto", threads: int = 0, num_cpus: float | None = None,
                 num_gpus: float = 0.0, save_blend: bool = False, progress: bool = False,
                 views_per_call: int = 0) -> None:
        self.device = str(device)
        self.threads = int(threads)
        self.num_cpus = float(num_cpus) if num_cpus is not None else float(os.cpu_count() or 1)
        self.num_gpus = float(num_gpus)
        self.save_blend = bool(save_blend)
        self.progress = bool(progress)
        self.views_per_call = int(views_per_call)
        self.last_timings: dict[str, Any] = {}

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}

    def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        with blender_stdout():
            return self._render(job, out_dir)

    def _render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        try:
            import_bpy()
        except ImportError as exc:
            raise RenderError("the blender backend needs Blender as a Python module: pip install 'multicam[render]'"
                              f" ({exc})") from exc
        from render_jobs.blender.render import render_job
        from render_jobs.blender.user_assets import AssetFileError

        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=job.settings.frames * len(job.cameras), desc=job.job_id, unit="cam-frame")
        try:
            timings, record = render_job(job, Path(out_dir), device=self.device,
                                 progress=bar.update if bar is not None else None, save_blend=self.save_blend,
                                 threads=self.threads, views_per_call=self.views_per_call)
        except (AssetFileError, KeyError, ValueError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise RenderError(f"{job.job_id}: {msg}") from exc
        finally:
            if bar is not None:
                bar.close()
        self.last_timings = timings.record()
        return record

    def close(self) -> None:
        pass
