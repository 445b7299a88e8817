"""Test backends (not renderers): they write real MultiCamVideo scene folders through the
:class:`~render_jobs.backend.Backend` interface so that the job machinery can be tested and
benchmarked without Blender or Unreal.

``test-synthetic``
    Encodes one real H.264 mp4 per camera through :class:`exporters.video.Mp4Writer` (a colour
    ramp that depends on the job and camera, so files differ), writes the camera JSON from the
    job's poses and ``scene.json``. Options make it misbehave on purpose:

    - ``fail_once``: job ids (or ``"*"``) that raise :class:`RenderError` on their first attempt;
      the attempt is remembered by a marker file in ``state_dir`` so it works across processes.
    - ``fail_always``: job ids that always raise :class:`RenderError`.
    - ``crash``: job ids whose first attempt kills the worker process (``os._exit``).
    - ``sleep_s``: seconds to sleep per job (before writing), to simulate render time.
    - ``no_space``: job ids whose render finds the disk full (``OSError`` ENOSPC, as a real full disk raises).
    - ``log_path``: append ``"<job_id> <pid>\\n"`` after each completed render (for tests).
    - ``num_cpus``, ``num_gpus``: the resources each job asks Ray for (like the real backends' options).
    - ``hold_dir``: a job whose ``<hold_dir>/<job_id>.hold`` exists stops in the middle of its render: the first
      worker to get there renames the file to ``<job_id>.held.<pid>.<node>`` (so a test learns where it is held)
      and waits until that file is deleted. Tests use it to act (kill a node, the coordinator) while a job is
      certainly in flight, without timing.
    - environment ``MULTICAM_TEST_KILL_AFTER_CAMERAS=N``: after encoding N cameras of a job, SIGKILL the
      coordinator (the worker's parent) and the worker: a run killed at a known point mid-job.

``test-noop``
    Does no rendering work: it links one pre-encoded tiny video per camera and writes the camera
    JSON. Used by ``bench/bench_orchestration.py`` to measure the machinery alone.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from exporters.camera_json import CAMERA_FILE, render_camera_json
from exporters.video import Mp4Writer
from render_jobs.backend import RenderError
from render_jobs.schema import RenderJob

KILL_ENV = "MULTICAM_TEST_KILL_AFTER_CAMERAS"


def _ids(value: Iterable[str] | str | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(v for v in value.split(",") if v)
    return frozenset(value)


def write_scene_files(job: RenderJob, out_dir: Path, backend: str) -> dict[str, Any]:
    """The camera JSON (from the job's poses); returns the backend's record (scene.json is execute's).

    Plain writes: ``out_dir`` is the job's private temp folder, made visible by one rename after
    verification, so per-file atomic writes and fsyncs would buy nothing."""
    out_dir = Path(out_dir)
    (out_dir / CAMERA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / CAMERA_FILE).write_text(render_camera_json(job.poses_array(), [c.name for c in job.cameras]))
    return {"renderer": {"name": backend}}


class SyntheticTestBackend:
    name = "test-synthetic"

    def __init__(
        self,
        fail_once: Iterable[str] | str | None = None,
        fail_always: Iterable[str] | str | None = None,
        crash: Iterable[str] | str | None = None,
        sleep_s: float = 0.0,
        state_dir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        hold_dir: str | os.PathLike[str] | None = None,
        no_space: Iterable[str] | str | None = None,
    ) -> None:
        self.hold_dir = Path(hold_dir) if hold_dir is not None else None
        self.fail_once = _ids(fail_once)
        self.no_space = _ids(no_space)
        self.fail_always = _ids(fail_always)
        self.crash = _ids(crash)
        self.sleep_s = float(sleep_s)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        if (self.fail_once or self.crash) and self.state_dir is None:
            raise ValueError(
                "fail_once and crash need state_dir (to remember first attempts across processes)"
            )

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}

    def _first_time(self, kind: str, job_id: str) -> bool:
        assert self.state_dir is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.state_dir / f"{job_id}.{kind}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _hold(self, job_id: str) -> None:
        if self.hold_dir is None:
            return
        node = os.environ.get("MULTICAM_NODE") or socket.gethostname()
        held = self.hold_dir / f"{job_id}.held.{os.getpid()}.{node}"
        try:
            os.rename(self.hold_dir / f"{job_id}.hold", held)
        except FileNotFoundError:
            return
        while held.exists():
            time.sleep(0.02)

    @staticmethod
    def _match(ids: frozenset[str], job_id: str) -> bool:
        return "*" in ids or job_id in ids

    def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        if self._match(self.fail_always, job.job_id):
            raise RenderError(f"{job.job_id}: synthetic failure (fail_always)")
        if self._match(self.fail_once, job.job_id) and self._first_time("fail_once", job.job_id):
            raise RenderError(f"{job.job_id}: synthetic failure on first attempt (fail_once)")
        if self._match(self.crash, job.job_id) and self._first_time("crash", job.job_id):
            os._exit(17)
        if self.sleep_s > 0:
            time.sleep(self.sleep_s)
        if self._match(self.no_space, job.job_id):
            path = Path(out_dir) / "videos" / f"{job.cameras[0].name}.mp4"
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self._hold(job.job_id)
        s = job.settings
        h, w = s.height, s.width
        ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
        kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
        for n, cam in enumerate(job.cameras):
            if kill_after and n == kill_after:
                os.kill(os.getppid(), signal.SIGKILL)  # the coordinator, then this worker: a run killed mid-job
                os.kill(os.getpid(), signal.SIGKILL)
            ci = int(cam.name[3:]) - 1  # the colour belongs to the camera, whichever others the job renders
            base = (job.scene_index * 37 + ci * 53) % 256
            with Mp4Writer(
                Path(out_dir) / "videos" / f"{cam.name}.mp4",
                w,
                h,
                fps=s.fps,
                crf=s.video_crf,
                preset="ultrafast",
            ) as wr:
                for f in range(s.frames):
                    img = np.empty((h, w, 3), np.float32)
                    img[..., 0] = ramp[..., 0]
                    img[..., 1] = (base + 4 * f) % 256
                    img[..., 2] = (255 - ramp[..., 0] + ci * 20) % 256
                    wr.write(img.astype(np.uint8))
        record = write_scene_files(job, out_dir, self.name)
        if self.log_path is not None:
            with open(self.log_path, "a") as fh:
                fh.write(f"{job.job_id} {os.getpid()}\n")
        return record

    def close(self) -> None:
        pass


class NoopTestBackend:
    """Renders nothing: hard-links a cached tiny video per camera, writes the camera JSON and scene.json."""

    name = "test-noop"

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._templates: dict[tuple[int, int, int, float], Path] = {}

    def resources(self) -> dict[str, float]:
        return {"num_cpus": 1.0, "num_gpus": 0.0}

    def _template(self, job: RenderJob, out_dir: Path) -> Path:
        s = job.settings
        key = (s.width, s.height, s.frames, s.fps)
        path = self._templates.get(key)
        if path is None or not path.exists():
            folder = self.cache_dir or (Path(out_dir).parent / ".noop-cache")
            path = folder / f"noop_{s.width}x{s.height}_{s.frames}f_{s.fps:g}fps_{os.getpid()}.mp4"
            if not path.exists():
                frame = np.zeros((s.height, s.width, 3), np.uint8)
                with Mp4Writer(path, s.width, s.height, fps=s.fps, preset="ultrafast") as wr:
                    for _ in range(s.frames):
                        wr.write(frame)
            self._templates[key] = path
        return path

    def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        tpl = self._template(job, out_dir)
        videos = Path(out_dir) / "videos"
        videos.mkdir(parents=True, exist_ok=True)
        for cam in job.cameras:
            os.link(tpl, videos / f"{cam.name}.mp4")
        return write_scene_files(job, out_dir, self.name)

    def close(self) -> None:
        pass
