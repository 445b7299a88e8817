"""The interface between the job machinery and a renderer backend.

A backend receives a :class:`~render_jobs.schema.RenderJob` and a fresh, empty temporary folder and
must leave in it exactly the MultiCamVideo scene layout::

    videos/cam01.mp4 .. camNN.mp4      H.264, yuv420p, settings.fps, settings.frames frames
    cameras/camera_extrinsics.json      poses read back from the renderer (UE convention)

and return its own record (what it ran: engine version, device, timings, what it built from the job), which
:mod:`render_jobs.execute` merges into ``scene.json``. The job decides everything (poses, focus points, prop layout
seed, settings); a backend replays it, draws no random numbers and chooses no poses, focus points or layouts.
:mod:`render_jobs.execute` alone writes ``scene.json``, verifies the folder and renames it into place; a backend
never writes into the dataset directly. Backends raise :class:`RenderError` with a message that a
user can act on; any other exception is recorded as a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from render_jobs.schema import RenderJob


class RenderError(RuntimeError):
    """A job failed in a way the backend understood (bad asset, engine error, time limit)."""


@runtime_checkable
class Backend(Protocol):
    #: Registry name (``blender``, ``unreal``, ...).
    name: str

    def resources(self) -> dict[str, float]:
        """Per-job resources for the Ray executor, e.g. ``{"num_cpus": 2, "num_gpus": 0}``."""
        ...

    def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        """Render ``job`` into the empty folder ``out_dir``; return the renderer's record (see module docstring)."""
        ...

    def close(self) -> None:
        """Release long-lived resources (an engine process kept alive across jobs)."""
        ...
