"""Running one job inside a worker: materialize, render into a temp folder, verify, rename into place.

This is the only code that touches a scene folder. The order of operations is what makes a run
safe to kill at any instant:

1. if the final folder already exists it is verified and, if good, reported done without rendering
   (a previous run renamed it and was killed before recording it);
2. the backend renders into ``DATASET/.tmp/<job>.<host>.<pid>.<nonce>/``;
3. the folder is verified (:func:`render_jobs.verify.verify_scene_dir`);
4. the job's lease (the fencing token its coordinator got when it claimed the job) is checked against the one
   the store published (:func:`render_jobs.store.lease_file_holds`): a task whose coordinator died, and whose job
   another run has taken since, stops here with kind ``fenced`` and writes nothing;
5. it is renamed into ``train/f{focal}_aperture{a}/scene{i}`` in one ``rename`` (atomic, and it fails
   if another run got there first, so a completed folder is never replaced).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multicam.io import atomic_write_text
from render_jobs.backend import Backend, RenderError
from render_jobs.planner import TMP_DIR, load_settings, materialize, write_scene_spec
from render_jobs.schema import ExtensionEntry, ManifestEntry, RenderJob
from render_jobs.store import lease_file_holds, pid_alive
from render_jobs.verify import verify_scene_dir


@dataclass
class Outcome:
    job_id: str
    ok: bool
    #: ``rendered``, ``already`` (found complete), ``error`` (RenderError/verification), ``crash``
    #: (unexpected exception), ``fatal`` (the backend cannot start, or this node does not see the dataset: stop
    #: the run), ``fenced`` (the job's lease was taken over by another run: nothing written, nothing to count).
    kind: str
    duration_s: float
    frames: int = 0
    error: str | None = None
    #: Something the user should know that did not stop the job (an incomplete old folder moved aside).
    note: str | None = None
    #: Where it ran: the Ray node id (``MULTICAM_NODE``, set by the Ray executor) or this host's name.
    node: str = ""


#: Environment variable naming the node a worker runs on (set by the Ray executor in its workers).
NODE_ENV = "MULTICAM_NODE"


def tmp_dir_name(job_id: str, pid: int | None = None) -> str:
    return f"{job_id}.{socket.gethostname()}.{pid or os.getpid()}.{uuid.uuid4().hex[:8]}"


def cleanup_tmp(
    dataset_dir: str | os.PathLike[str], pid: int | None = None, *, running: Collection[str] | None = None
) -> int:
    """Remove temp folders left by dead processes on this host (or by ``pid``); return how many.

    ``running``: the jobs some run holds now (given by a coordinator at start): temp folders of other hosts (Ray
    nodes) for any other job are removed too; their task is gone or fenced, so the folder is a dead half scene."""
    root = Path(dataset_dir) / TMP_DIR
    if not root.is_dir():
        return 0
    host = socket.gethostname()
    n = 0
    for d in root.iterdir():
        job, _, rest = d.name.partition(".")
        where, _, nonce = rest.rpartition(".")
        h, _, p_text = where.rpartition(".")
        if not (job and h and nonce and p_text.isdigit()):
            continue
        p = int(p_text)
        if h != host:
            if pid is not None or running is None or job in running:
                continue
        elif pid is not None:
            if p != pid:
                continue
        elif pid_alive(p):
            continue
        shutil.rmtree(d, ignore_errors=True)
        n += 1
    return n


#: Keys of scene.json that are the plan's: a backend's record cannot replace them.
_PLAN_KEYS = ("job_id", "scene_index", "seed", "cameras", "character", "environment", "animation", "placement",
              "output_dir", "camera_set", "radius_m", "frames")


def write_scene_record(job: RenderJob, out_dir: Path, renderer_record: dict[str, Any], backend_name: str) -> Path:
    """Write ``out_dir/scene.json``: the job's scene record, its id and the backend's own record. The only writer
    of scene.json (backends return their record instead)."""
    clash = sorted(k for k in renderer_record if k in _PLAN_KEYS)
    if clash:
        raise RenderError(f"backend {backend_name!r} returned plan fields {clash} in its record; backends replay "
                          "the plan and cannot change it")
    record = {**job.scene, "job_id": job.job_id, "backend": backend_name, **renderer_record}
    path = Path(out_dir) / "scene.json"
    # Inside the job's private temp folder, made visible by one rename after verification: no fsync needed.
    atomic_write_text(path, json.dumps(record, indent=2) + "\n", durable=False)
    return path


def render_scene(backend: Backend, job: RenderJob, out_dir: Path) -> dict[str, Any]:
    """``backend`` renders ``job`` into ``out_dir`` and scene.json is written from its record; returns the record.
    (Verification and the rename into the dataset are :meth:`JobContext.execute`'s.)"""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = backend.render(job, out_dir)
    if not isinstance(record, dict):
        raise RenderError(f"backend {backend.name!r} returned {type(record).__name__}, not its record (a dict)")
    write_scene_record(job, out_dir, record, backend.name)
    return record


def _crash(job_id: str, t0: float, exc: BaseException) -> Outcome:
    tb = traceback.format_exc(limit=6)
    return Outcome(job_id, False, "crash", time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}\n{tb}")


class JobContext:
    """Per-worker state: the dataset's settings and one backend instance reused across jobs."""

    def __init__(
        self,
        dataset_dir: str | os.PathLike[str],
        backend_name: str,
        backend_options: dict[str, Any] | None = None,
        write_specs: bool = True,
    ) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.settings, self.n_cameras = load_settings(self.dataset_dir)
        self.backend_name = backend_name
        self.backend_options = dict(backend_options or {})
        self.write_specs = write_specs
        self._backend: Backend | None = None
        self._note: str | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from render_jobs.backends import get_backend

            self._backend = get_backend(self.backend_name, **self.backend_options)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def execute(self, entry: ManifestEntry | ExtensionEntry, lease: int | None = None) -> Outcome:
        """Run one job; ``lease``: the fencing token of this attempt (None: no fence, for direct calls)."""
        out = self._execute(entry, lease)
        out.node = os.environ.get(NODE_ENV) or socket.gethostname()
        return out

    def _holds(self, job_id: str, lease: int | None) -> bool:
        return lease is None or lease_file_holds(self.dataset_dir, job_id, lease)

    def _fenced(self, job_id: str, lease: int | None, t0: float) -> Outcome:
        return Outcome(job_id, False, "fenced", time.perf_counter() - t0,
                       error=f"lease {lease} of {job_id} was taken over by another run; nothing written")

    def _execute(self, entry: ManifestEntry | ExtensionEntry, lease: int | None) -> Outcome:
        t0 = time.perf_counter()
        job_id = entry.job_id
        try:
            backend = self.backend
        except Exception as exc:  # noqa: BLE001 - reported to the coordinator, which stops the run
            return Outcome(
                job_id,
                False,
                "fatal",
                time.perf_counter() - t0,
                error=f"backend {self.backend_name!r} cannot start: {type(exc).__name__}: {exc}",
            )
        try:
            if isinstance(entry, ExtensionEntry):  # new cameras for a rendered scene (multicam extend)
                from render_jobs.extend import execute_extension

                return execute_extension(self, entry, lease)
            job = materialize(entry, self.settings, self.n_cameras)
            final = self.dataset_dir / job.output_dir
            check_inside_dataset(self.dataset_dir, final)
            self._note = None
            if final.exists():
                problems = verify_scene_dir(job, final)
                if not problems:
                    return Outcome(job_id, True, "already", time.perf_counter() - t0)
                if not self._holds(job_id, lease):  # moving a bad folder aside is a write too
                    return self._fenced(job_id, lease, t0)
                self._move_aside(final, problems)
            if self.write_specs:
                write_scene_spec(self.dataset_dir, job)
            tmp = self.dataset_dir / TMP_DIR / tmp_dir_name(job_id)
            tmp.mkdir(parents=True)
            try:
                render_scene(backend, job, tmp)
                problems = verify_scene_dir(job, tmp)
                if problems:
                    raise RenderError("output failed verification: " + "; ".join(problems))
                if not self._holds(job_id, lease):
                    return self._fenced(job_id, lease, t0)
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(tmp, final)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not self._adopt(job, final):
                        raise
                    return Outcome(job_id, True, "already", time.perf_counter() - t0)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            frames = job.settings.frames * len(job.cameras)
            return Outcome(job_id, True, "rendered", time.perf_counter() - t0, frames=frames, note=self._note)
        except RenderError as exc:
            return Outcome(job_id, False, "error", time.perf_counter() - t0, error=str(exc))
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                return _crash(job_id, t0, exc)
            # not the job's fault and every other job would fail the same way: stop the run, keep what is done
            return Outcome(job_id, False, "fatal", time.perf_counter() - t0,
                           error=f"{exc.filename or self.dataset_dir}: no space left on device; the finished scenes "
                                 "are kept: free space and run the same command again to resume")
        except Exception as exc:  # noqa: BLE001 - any crash is recorded against the job
            return _crash(job_id, t0, exc)

    def _adopt(self, job: Any, final: Path) -> bool:
        """A final folder exists: keep it if it verifies; otherwise move it aside and return False."""
        problems = verify_scene_dir(job, final)
        if not problems:
            return True
        self._move_aside(final, problems)
        return False

    def _move_aside(self, final: Path, problems: list[str]) -> None:
        """An incomplete scene folder in the way: one holding only what a render writes is moved to
        ``DATASET/.damaged/`` (kept, with a note); one holding anything else (the user's files) is left untouched
        and the job fails saying so."""
        foreign = sorted(p.name for p in final.iterdir() if p.name not in SCENE_ENTRIES) if final.is_dir() else []
        if foreign or not final.is_dir():
            what = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "") \
                if foreign else "it is not a folder"
            raise RenderError(f"{final}: holds files this job did not write ({what}) and is not a complete scene "
                              f"({problems[0]}); move them out of it, then run the same command again")
        rel = final.relative_to(self.dataset_dir).as_posix()
        aside = self.dataset_dir / DAMAGED_DIR / f"{rel.replace('/', '__')}.{time.strftime('%Y%m%dT%H%M%S')}"
        aside.parent.mkdir(exist_ok=True)
        os.replace(final, aside)
        self._note = f"{rel} was incomplete ({problems[0]}): moved to {aside} and rendered again"


#: Where incomplete scene folders found in the way of a job are moved (kept for the user, outside train/).
DAMAGED_DIR = ".damaged"

#: What a render puts in a scene folder (anything else there is the user's).
SCENE_ENTRIES = frozenset({"videos", "cameras", "scene.json", "depth", "masks", "frames"})


def check_inside_dataset(dataset_dir: Path, folder: Path) -> None:
    """Raise :class:`RenderError` when ``folder`` resolves (through symlinks) outside the dataset folder."""
    root = Path(dataset_dir).resolve()
    real = folder.parent.resolve() / folder.name
    if not real.is_relative_to(root):
        raise RenderError(f"{folder}: resolves to {real}, outside the dataset {root} (a symlink?); nothing is "
                          "written outside the dataset: replace the link with a folder")
