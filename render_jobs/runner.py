"""``run_dataset``: run every job of a planned dataset that is not done, locally or on Ray.

One coordinator (this process) owns the job store: it claims jobs, hands them to workers and records
outcomes. Workers only render into temp folders and rename verified results into place (see
:mod:`render_jobs.execute`), so the coordinator, a worker or the machine may die at any moment and
``run_dataset`` run again simply resumes.

Executors
---------
``local``
    ``workers`` processes on this machine (spawned, so ``bpy`` and friends start clean). Each keeps
    one backend instance for all its jobs. A job past ``job_timeout_s`` gets its worker killed and
    replaced. Ctrl-C stops the workers, gives unfinished jobs back (pending) and returns.
``ray``
    One Ray task per job on ``ray.init(address)`` (or a local Ray when ``address`` is None), with
    ``num_cpus``/``num_gpus`` from ``backend.resources()`` plus any custom ``ray_resources``. Ray places
    tasks and re-runs those whose worker or node died (``max_retries``); the coordinator retries failed
    renders with exponential backoff on another node than the one that failed, cancels tasks past the time
    limit, keeps as many tasks in flight as the cluster has job slots (nodes that join get work), and records
    every outcome with the node it ran on. The dataset folder must be on a file system that every node mounts
    at the same path: the coordinator writes ``DATASET/.multicam-share`` with a fresh token and every worker
    checks it before its first job, so a node that does not see the folder stops the run with a clear error
    instead of rendering into its local disk.

Every task carries its job's lease (:mod:`render_jobs.store`); a task of a dead coordinator whose job another
run has taken since ends ``fenced`` without writing, and counts nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import json
import multiprocessing as mp
import os
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from exporters.metadata import MetadataSync
from multicam.io import atomic_write_json
from render_jobs.execute import NODE_ENV, JobContext, Outcome, cleanup_tmp
from render_jobs.planner import PLAN_KEY_META, PlanError, iter_manifest, load_settings, plan_key_of, read_plan
from render_jobs.repair import damaged_done, describe_damaged, requeue_damaged
from render_jobs.schema import ExtensionEntry, ManifestEntry, changed_fields
from render_jobs.store import JobStore, check_writable, this_owner

EXECUTORS = ("local", "ray")
#: What a worker runs: a planned scene, or new cameras for a rendered one (``multicam extend``).
JobEntry = ManifestEntry | ExtensionEntry


class RunError(RuntimeError):
    pass


@dataclass
class RunSummary:
    executor: str
    backend: str
    #: Jobs this run tried to finish (not done when it started).
    to_run: int = 0
    rendered: int = 0
    already: int = 0
    failed: int = 0
    retried: int = 0
    #: Outcomes of tasks whose job had been taken over by another run (nothing written, nothing counted).
    fenced: int = 0
    interrupted: bool = False
    #: What stopped an interrupted run: "Ctrl-C" (SIGINT) or "SIGTERM".
    interrupted_by: str = ""
    elapsed_s: float = 0.0
    frames: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def jobs_per_s(self) -> float:
        return (self.rendered + self.already) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["jobs_per_s"] = round(self.jobs_per_s, 2)
        return d


#: What an executor reports: ``("started", job_id)``, ``("outcome", Outcome)``, ``("lost", [job_id, ...])``
#: (claimed jobs that never started: their worker was lost).
_Event = tuple[str, Any]


class _Executor(Protocol):
    """Submit / poll / close: what the one executor loop (:func:`_drive`) needs; the process pool and Ray are
    its two implementations."""

    #: Whether a submitted job begins at once (Ray) or may wait in a worker's queue (the process pool).
    starts_on_submit: bool

    def free_slots(self) -> int: ...

    def busy(self) -> bool: ...

    def submit(self, entry: JobEntry, lease: int) -> None: ...

    def poll(self, timeout: float) -> list[_Event]: ...

    def close(self, interrupted: bool) -> None: ...


class _Books:
    """Shared bookkeeping of both executors: claims, outcomes, retries with backoff, progress."""

    def __init__(
        self,
        store: JobStore,
        entries: dict[str, JobEntry],
        summary: RunSummary,
        max_attempts: int,
        backoff_s: float,
        progress: bool,
        frames_per_job: int,
        kind: str = "render",
    ) -> None:
        from tqdm import tqdm

        self.store = store
        self.entries = entries
        self.summary = summary
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        runnable = store.runnable(kind, None if kind == "render" else entries)
        self.attempts = dict(runnable)
        self.queue: deque[str] = deque(j for j, _ in runnable)
        self.delayed: list[tuple[float, str]] = []  # (ready_at, job_id)
        self.claimed: set[str] = set()
        #: job_id -> the lease of its current claim (handed to its task: the fence at the final rename).
        self.leases: dict[str, int] = {}
        summary.to_run = len(runnable)
        self.bar = tqdm(
            total=len(runnable),
            unit="scene",
            desc=f"{kind} ({summary.backend})",
            disable=not progress,
            dynamic_ncols=True,
        )
        self.t0 = time.perf_counter()
        self.frames_per_job = frames_per_job
        self._pending_done: list[tuple[str, float, str | None]] = []
        self._pending_fail: list[tuple[str, str, bool, str | None]] = []
        self._pending_started: list[str] = []
        #: Rewrites ``metadata.csv`` as scenes complete (set by :func:`run_dataset`).
        self.metadata: MetadataSync | None = None

    def has_work(self) -> bool:
        return bool(self.queue or self.delayed)

    def next_ready_in(self) -> float | None:
        if self.queue:
            return 0.0
        if self.delayed:
            return max(0.0, self.delayed[0][0] - time.monotonic())
        return None

    def take(self, n: int, started: bool = False) -> list[str]:
        """Claim up to ``n`` jobs that are ready now (``started``: they begin rendering at once)."""
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            self.queue.append(heapq.heappop(self.delayed)[1])
        want: list[str] = []
        while self.queue and len(want) < n:
            want.append(self.queue.popleft())
        if not want:
            return []
        leases = self.store.take(want, started=started)
        for j in leases:
            self.attempts[j] = self.attempts.get(j, 0) + 1
        self.claimed.update(leases)
        self.leases.update(leases)
        return list(leases)

    def record(self, out: Outcome) -> None:
        if out.kind == "fatal":  # the backend cannot start: not the job's fault, give it back untried
            self.flush()
            self.give_back([out.job_id])
            return
        if out.kind == "fenced":  # its lease was taken (`retry --running`, another run): claim it again if free
            self.flush()
            self.claimed.discard(out.job_id)
            self.summary.fenced += 1
            for j in self.store.release([out.job_id], "its task was fenced"):
                self.attempts[j] = max(0, self.attempts.get(j, 1) - 1)
            self.queue.appendleft(out.job_id)  # take() claims it only if it is pending: no other run holds it
            return
        self.claimed.discard(out.job_id)
        node = out.node or None
        if out.note:
            self.bar.write(f"warning: {out.note}", file=sys.stderr)
        if out.ok:
            self._pending_done.append((out.job_id, out.duration_s, node))
            if out.kind == "already":
                self.summary.already += 1
            else:
                self.summary.rendered += 1
                self.summary.frames += out.frames
            self.bar.update(1)
        else:
            err = out.error or out.kind
            retry = self.attempts.get(out.job_id, 1) < self.max_attempts
            self._pending_fail.append((out.job_id, err, retry, node))
            if retry:
                self.summary.retried += 1
                delay = self.backoff_s * 2 ** (self.attempts.get(out.job_id, 1) - 1)
                heapq.heappush(self.delayed, (time.monotonic() + delay, out.job_id))
            else:
                self.summary.failed += 1
                self.summary.errors[out.job_id] = err.splitlines()[0] if err else err
                self.bar.update(1)

    def started(self, job_id: str) -> None:
        """A claimed job left its worker's queue and began rendering (recorded at the next flush)."""
        self._pending_started.append(job_id)

    def flush(self) -> None:
        outcomes = bool(self._pending_done or self._pending_fail)
        done = bool(self._pending_done)
        if outcomes or self._pending_started:  # one transaction for starts and outcomes
            self.store.finish(self._pending_done, self._pending_fail, self._pending_started)
            self._pending_done, self._pending_fail, self._pending_started = [], [], []
        if done and self.metadata is not None:
            self.metadata.scene_done()
        if outcomes:
            elapsed = time.perf_counter() - self.t0
            fps = self.summary.frames / elapsed if elapsed > 0 else 0.0
            self.bar.set_postfix(
                done=self.summary.rendered + self.summary.already,
                failed=self.summary.failed,
                frames_s=f"{fps:.1f}",
                refresh=False,
            )

    def give_back(self, job_ids: list[str]) -> None:
        """Claimed jobs that never started (their worker was lost): pending again, first in line."""
        if job_ids:
            self.store.release(job_ids, "its worker was lost before it started")
            for j in job_ids:
                self.claimed.discard(j)
                self.attempts[j] = max(0, self.attempts.get(j, 1) - 1)
            self.queue.extendleft(reversed(job_ids))

    def release_claimed(self, why: str) -> None:
        self.flush()
        if self.claimed:
            self.store.release(sorted(self.claimed), why)
            self.claimed.clear()

    def abandon(self, why: str) -> None:
        """The run failed (e.g. a full disk under the store): give every claimed job back without first recording
        the outcomes that could not be recorded (the next run adopts the scenes that were finished)."""
        self.claimed.update(p[0] for p in self._pending_done)
        self.claimed.update(p[0] for p in self._pending_fail)
        self._pending_done, self._pending_fail, self._pending_started = [], [], []
        if self.claimed:
            self.store.release(sorted(self.claimed), why)
            self.claimed.clear()

    def close(self) -> None:
        self.bar.close()


def check_store_matches_plan(
    store: JobStore, dataset: Path, entries: dict[str, ManifestEntry] | None = None
) -> None:
    """Raise :class:`PlanError` when the job store and the manifest do not list the same jobs (a deleted or
    replaced ``jobs.sqlite``, a plan killed between the two) or when a manifest entry is not the one planned
    (its content hash differs from the one the store recorded at plan time: a hand-edited manifest), naming the
    scene, the field and the repair. Runs before any job renders."""
    recorded_key = store.meta(PLAN_KEY_META)
    if recorded_key is not None:
        old_key, now_key = json.loads(recorded_key), plan_key_of(read_plan(dataset))
        fields = changed_fields(old_key, now_key)
        if fields:
            detail = ", ".join(f"{f} (planned {_dig(old_key, f)!r}, now {_dig(now_key, f)!r})" for f in fields[:3])
            raise PlanError(f"{dataset / 'plan' / 'plan.json'} differs from the plan recorded in {store.path}: "
                            f"{detail}; restore plan.json, or plan into a new folder")
    if entries is None:
        entries = {e.job_id: e for e in iter_manifest(dataset)}
    planned = set(entries)
    recorded = store.planned_entries()
    stored = set(recorded)
    missing, extra = sorted(planned - stored), sorted(stored - planned)
    if missing:
        raise PlanError(f"{store.path}: the job store lacks {len(missing)} of {len(planned)} planned jobs "
                        f"(first {missing[0]}); run `multicam repair {dataset} --rebuild-store` (or the same "
                        "`multicam plan` command again) to re-add them")
    if extra:
        raise PlanError(f"{store.path}: the job store holds {len(extra)} job(s) the plan does not (first "
                        f"{extra[0]}); it belongs to another plan: move it aside and run the same `multicam plan` "
                        "command again")
    for job_id in sorted(planned):
        sha, planned_json = recorded[job_id]
        entry = entries[job_id]
        if sha is None or entry.content_sha256() == sha:
            continue  # a store from before content hashes has nothing to compare with
        fields = changed_fields(json.loads(planned_json), entry.model_dump(mode="json")) if planned_json else []
        old = json.loads(planned_json) if planned_json else {}
        detail = ", ".join(f"{f} (planned {_dig(old, f)!r}, now {_dig(entry.model_dump(mode='json'), f)!r})"
                           for f in fields[:3]) or "content hash"
        raise PlanError(f"{dataset / 'plan' / 'manifest.jsonl'}: scene {entry.scene_index} ({job_id}) differs from "
                        f"the plan: {detail}; run the same `multicam plan` command again to restore the manifest, "
                        "or plan into a new folder")


def _dig(d: Any, dotted: str) -> Any:
    for k in dotted.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d


def run_dataset(
    dataset_dir: str | os.PathLike[str],
    backend_name: str,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    backend_options: dict[str, Any] | None = None,
    job_timeout_s: float | None = None,
    progress: bool = True,
    *,
    max_attempts: int = 3,
    backoff_s: float = 1.0,
    ray_resources: dict[str, float] | None = None,
    extensions: list[ExtensionEntry] | None = None,
) -> RunSummary:
    """Run every job of ``dataset_dir`` that is not ``done``; return a :class:`RunSummary`.

    Jobs are tried up to ``max_attempts`` times (backoff ``backoff_s * 2**(attempt-1)`` seconds between
    tries); a job whose tries all fail is ``failed`` (see ``multicam retry``). ``ray_resources``: custom Ray
    resources every job asks for on top of the backend's CPUs/GPUs (``{"blender_node": 1}``; Ray executor only).
    ``extensions``: run these extension jobs (already in the store, see :mod:`render_jobs.extend`) that are not
    done instead of the planned scenes.
    """
    if executor not in EXECUTORS:
        raise RunError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise RunError(f"workers must be >= 1, got {workers}")
    if ray_resources and executor != "ray":
        raise RunError("ray_resources apply to the ray executor only")
    from render_jobs.backends import BACKENDS

    if backend_name not in BACKENDS:
        raise RunError(f"unknown backend {backend_name!r}; available: {', '.join(sorted(BACKENDS))}")
    dataset = Path(dataset_dir).resolve()
    read_plan(dataset)
    check_writable(dataset)
    settings, n_cameras = load_settings(dataset)
    summary = RunSummary(executor=executor, backend=backend_name)
    t0 = time.perf_counter()
    with JobStore.for_dataset(dataset) as store:
        store.recover()
        cleanup_tmp(dataset, running={r.job_id for r in store.rows("running")})
        planned = {e.job_id: e for e in iter_manifest(dataset)}
        check_store_matches_plan(store, dataset, planned)
        entries: dict[str, JobEntry] = dict(planned)
        kind = "render"
        if extensions is not None:
            entries, kind = {e.job_id: e for e in extensions}, "extend"
        else:
            damaged = damaged_done(store, dataset, planned, n_cameras)
            if damaged:  # the repair `multicam repair` would make: render them again
                requeue_damaged(store, damaged)
                print(f"warning: {describe_damaged(dataset, damaged)}; re-queued to render again", file=sys.stderr)
        books = _Books(
            store, entries, summary, max_attempts, backoff_s, progress, settings.frames * n_cameras, kind
        )
        books.metadata = MetadataSync(dataset)  # metadata.csv for ReCamMaster's trainer, kept in step
        sigterm = _SigtermAsInterrupt()
        try:
            if books.has_work():
                opts = backend_options or {}
                ex: _Executor = (
                    _ProcessPool(dataset, backend_name, opts, workers, job_timeout_s) if executor == "local"
                    else _RayTasks(dataset, backend_name, opts, workers, address, job_timeout_s,
                                   ray_resources=ray_resources)
                )
                _drive(books, ex)
        except KeyboardInterrupt:
            summary.interrupted = True
            summary.interrupted_by = "SIGTERM" if sigterm.received else "Ctrl-C"
            books.release_claimed(f"interrupted ({summary.interrupted_by})")
        except Exception:
            # e.g. a full disk under the job store: give the jobs back if it still can (else the next run recovers
            # them: their owner is dead), then the real error reaches the one top-level handler
            sigterm.restore()
            for step in (lambda: books.abandon("run failed"), books.close, books.metadata.close):
                with contextlib.suppress(Exception):
                    step()
            raise
        sigterm.restore()
        books.release_claimed("run ended")
        books.close()
        books.metadata.close()  # every complete scene, whatever this run did
        summary.elapsed_s = time.perf_counter() - t0
        summary.counts = store.counts(kind)
    return summary


class _SigtermAsInterrupt:
    """SIGTERM (a scheduler, ``kill``, a container stop) stops a run exactly as Ctrl-C does: the coordinator's
    handler raises KeyboardInterrupt, so claimed jobs are given back and no row is left 'running'. Installed only
    in the main thread and only over the default disposition (an inherited SIG_IGN is respected)."""

    def __init__(self) -> None:
        import threading

        self.received = False
        self._old: Any = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._old = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.received:
            self.received = True
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
            self._old = None


# -- local executor -----------------------------------------------------------------------------------


def _set_parent_death_signal() -> None:
    """Linux: die with the coordinator (so a SIGKILLed run leaves no orphan renderers)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(
    conn: Connection, dataset_dir: str, backend_name: str, options: dict[str, Any], parent_pid: int
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the coordinator died before prctl took effect
        return
    ctx = JobContext(dataset_dir, backend_name, options)
    try:
        while True:
            try:
                entry = conn.recv()
            except (EOFError, OSError):
                break
            if entry is None:
                break
            conn.send(ctx.execute(*entry))
    finally:
        ctx.close()


class _Worker:
    """One worker process and the jobs sent to it (the first is running, the others queued in its pipe)."""

    def __init__(self, mpctx: Any, dataset: Path, backend_name: str, options: dict[str, Any]) -> None:
        self.conn, child = mpctx.Pipe()
        self.proc = mpctx.Process(
            target=_worker_main, args=(child, str(dataset), backend_name, options, os.getpid()), daemon=True
        )
        self.proc.start()
        child.close()
        self.jobs: deque[str] = deque()
        #: When the first job of ``jobs`` started (when the job before it finished).
        self.started = 0.0

    def send(self, entry: JobEntry, lease: int) -> None:
        if not self.jobs:
            self.started = time.monotonic()
        self.jobs.append(entry.job_id)
        self.conn.send((entry, lease))

    def received(self) -> None:
        self.jobs.popleft()
        self.started = time.monotonic()

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.proc.join(timeout=None if kill else 10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class _ProcessPool:
    """The local executor: ``n_workers`` spawned processes, each fed ``prefetch`` jobs ahead through its pipe so
    it starts the next one without waiting for the coordinator; the time limit of a queued job starts when the
    job before it finishes. A worker that dies or overruns is replaced; its queued jobs are given back."""

    starts_on_submit = False

    def __init__(self, dataset: Path, backend_name: str, options: dict[str, Any], n_workers: int,
                 job_timeout_s: float | None, prefetch: int = 2) -> None:
        self.dataset, self.backend_name, self.options = dataset, backend_name, options
        self.job_timeout_s, self.prefetch = job_timeout_s, prefetch
        self.mpctx = mp.get_context("spawn")
        self.pool = [self._spawn() for _ in range(n_workers)]
        self.events: list[_Event] = []

    def _spawn(self) -> _Worker:
        return _Worker(self.mpctx, self.dataset, self.backend_name, self.options)

    def free_slots(self) -> int:
        return sum(max(0, self.prefetch - len(w.jobs)) for w in self.pool)

    def busy(self) -> bool:
        return any(w.jobs for w in self.pool) or bool(self.events)

    def submit(self, entry: JobEntry, lease: int) -> None:
        w = min(self.pool, key=lambda x: len(x.jobs))  # fill the emptiest workers first
        w.send(entry, lease)
        if len(w.jobs) == 1:  # an idle worker starts it now; others wait in the pipe
            self.events.append(("started", entry.job_id))

    def _lost(self, i: int, head: Outcome) -> None:
        """Worker ``i`` is gone (died or killed): its running job's outcome, its queued jobs given back."""
        w = self.pool[i]
        queued = list(w.jobs)[1:]
        w.jobs.clear()
        w.stop(kill=True)
        cleanup_tmp(self.dataset, w.proc.pid)
        self.events += [("outcome", head), ("lost", queued)]
        self.pool[i] = self._spawn()

    def poll(self, timeout: float) -> list[_Event]:
        busy = [w for w in self.pool if w.jobs]
        if busy and not self.events:
            now = time.monotonic()
            if self.job_timeout_s is not None:
                timeout = min(timeout, max(0.0, min(w.started + self.job_timeout_s - now for w in busy)))
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=timeout)
            for i, w in enumerate(self.pool):
                if not w.jobs:
                    continue
                if w.conn in ready:
                    try:
                        while w.jobs and w.conn.poll():
                            out: Outcome = w.conn.recv()
                            w.received()
                            self.events.append(("outcome", out))
                            if w.jobs:  # the next queued job starts now
                                self.events.append(("started", w.jobs[0]))
                    except (EOFError, OSError):
                        self._lost(i, _dead(w))
                elif w.proc.sentinel in ready:
                    self._lost(i, _dead(w))
                elif self.job_timeout_s is not None and time.monotonic() - w.started > self.job_timeout_s:
                    msg = f"time limit of {self.job_timeout_s:g} s exceeded; worker killed"
                    self._lost(i, Outcome(w.jobs[0], False, "error", time.monotonic() - w.started, error=msg))
        events, self.events = self.events, []
        return events

    def close(self, interrupted: bool) -> None:
        for w in self.pool:
            w.stop(kill=bool(w.jobs))
            cleanup_tmp(self.dataset, w.proc.pid)


def _dead(w: _Worker) -> Outcome:
    w.proc.join(timeout=5)
    code = w.proc.exitcode
    return Outcome(
        w.jobs[0],
        False,
        "crash",
        time.monotonic() - w.started,
        error=f"worker process died (exit code {code}) while rendering",
    )


# -- ray executor ---------------------------------------------------------------------------------------

#: The marker the Ray coordinator writes into the dataset folder; every worker reads it before its first job.
SHARE_MARKER = ".multicam-share"

_RAY_CONTEXTS: dict[tuple[str, str, str], JobContext] = {}
_SHARE_SEEN: set[tuple[str, str]] = set()


def write_share_marker(dataset: Path) -> str:
    """Write ``DATASET/.multicam-share`` with a fresh random token (one per run); return the token."""
    token = uuid.uuid4().hex
    atomic_write_json(dataset / SHARE_MARKER, {"token": token, "dataset": str(dataset), "coordinator": this_owner()})
    return token


def share_problem(dataset_dir: str, token: str, node: str, tries: int = 6, wait_s: float = 0.5) -> str | None:
    """None when this machine sees the coordinator's dataset folder (its marker holds ``token``), else the
    message. A marker that is missing or older is looked at again a few times (an NFS client may serve a cached
    directory for a moment); a missing dataset folder fails at once."""
    marker = Path(dataset_dir) / SHARE_MARKER
    seen = "missing"
    for i in range(tries):
        if not Path(dataset_dir).is_dir():
            seen = "missing (the folder itself does not exist here)"
            break
        try:
            got = json.loads(marker.read_text()).get("token")
        except (OSError, ValueError, AttributeError):
            got = None
        if got == token:
            return None
        seen = "missing" if got is None else "from another run (a different folder at the same path)"
        if i + 1 < tries:
            with contextlib.suppress(OSError):
                os.listdir(dataset_dir)  # revalidate the directory
            time.sleep(wait_s)
    import socket

    return (f"node {node} (host {socket.gethostname()}) does not see the dataset folder {dataset_dir}: its marker "
            f"{marker} is {seen}; every Ray node must mount the shared dataset folder at the same path "
            "(see docs/scaling.md)")


def _ray_execute(
    dataset_dir: str, backend_name: str, options_json: str, token: str, entry: JobEntry, lease: int
) -> Outcome:
    """Body of the Ray task: check (once per worker and run) that this node sees the dataset folder, then run the
    job; the JobContext (and its backend, e.g. an editor session) is cached per Ray worker process."""
    import ray

    node = os.environ.get(NODE_ENV)
    if node is None:
        node = os.environ[NODE_ENV] = ray.get_runtime_context().get_node_id()
    if (dataset_dir, token) not in _SHARE_SEEN:
        problem = share_problem(dataset_dir, token, node)
        if problem is not None:
            return Outcome(entry.job_id, False, "fatal", 0.0, error=problem, node=node)
        _SHARE_SEEN.add((dataset_dir, token))
    key = (dataset_dir, backend_name, options_json)
    ctx = _RAY_CONTEXTS.get(key)
    if ctx is None:
        ctx = _RAY_CONTEXTS[key] = JobContext(dataset_dir, backend_name, json.loads(options_json))
    return ctx.execute(entry, lease)


def job_slots(nodes: list[dict[str, Any]], need: dict[str, float]) -> dict[str, int]:
    """``node_id -> how many jobs needing ``need`` (Ray resource names) fit on it``, for alive nodes
    (``ray.nodes()`` rows); nodes that fit none are left out."""
    out = {}
    for n in nodes:
        if not n.get("Alive"):
            continue
        have = n.get("Resources") or {}
        fits = min((int(have.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0), default=1)
        if fits > 0:
            out[str(n["NodeID"])] = fits
    return out


class _RayTasks:
    """The Ray executor: one task per job with the backend's resources (plus ``ray_resources``); Ray places them
    and re-runs tasks whose worker or node died (``max_retries``); a job that failed on a node is retried on
    another one (soft node affinity: if that node dies it runs anywhere); as many tasks are in flight as the
    alive nodes have job slots (at least ``workers``), re-read every second; tasks past the time limit (from
    submission) are cancelled."""

    starts_on_submit = True

    def __init__(self, dataset: Path, backend_name: str, options: dict[str, Any], workers: int,
                 address: str | None, job_timeout_s: float | None, *,
                 ray_resources: dict[str, float] | None = None, ray_max_retries: int = 2) -> None:
        import ray

        from render_jobs.backends import get_backend

        self.ray = ray
        probe = get_backend(backend_name, **options)
        try:
            res = dict(probe.resources())
        finally:
            probe.close()
        num_cpus, num_gpus = float(res.get("num_cpus", 1)), float(res.get("num_gpus", 0))
        custom = dict(ray_resources or {})
        self.started_ray = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kw["num_cpus"] = max(workers * num_cpus, 1)
                if custom:
                    kw["resources"] = {k: workers * v for k, v in custom.items()}
            ray.init(address=address, **kw)
            self.started_ray = True
        self.token = write_share_marker(dataset)
        # max_calls=0: keep the worker (and its backend: an editor session, a loaded Blender) for the next job
        # (Ray's default for GPU tasks is a fresh worker per task).
        self.fn = ray.remote(max_calls=0)(_ray_execute)
        self.opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": ray_max_retries,
                                     "retry_exceptions": False}
        if custom:
            self.opts["resources"] = custom
        self.need = {"CPU": num_cpus, "GPU": num_gpus, **custom}
        self.args = (str(dataset), backend_name, json.dumps(options, sort_keys=True), self.token)
        self.workers, self.job_timeout_s = workers, job_timeout_s
        self.in_flight: dict[Any, tuple[str, float]] = {}
        #: job_id -> the node its last attempt failed on (the retry goes elsewhere).
        self.failed_on: dict[str, str] = {}
        self._slots: dict[str, int] = {}
        self._slots_at = -1.0
        self._turn = 0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._slots_at >= 1.0:
            self._slots = job_slots(self.ray.nodes(), self.need)
            self._slots_at = now

    def free_slots(self) -> int:
        self._refresh()
        return max(0, max(self.workers, sum(self._slots.values())) - len(self.in_flight))

    def busy(self) -> bool:
        return bool(self.in_flight)

    def _another_node(self, avoid: str) -> str | None:
        others = sorted(n for n in self._slots if n != avoid)
        if not others:
            return None
        self._turn += 1
        return others[self._turn % len(others)]

    def submit(self, entry: JobEntry, lease: int) -> None:
        opts = self.opts
        avoid = self.failed_on.pop(entry.job_id, None)
        other = self._another_node(avoid) if avoid else None
        if other is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            opts = {**opts, "scheduling_strategy": NodeAffinitySchedulingStrategy(other, soft=True)}
        ref = self.fn.options(**opts).remote(*self.args, entry, lease)
        self.in_flight[ref] = (entry.job_id, time.monotonic())

    def poll(self, timeout: float) -> list[_Event]:
        ray, events = self.ray, []
        ready, rest = ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
        if ready and rest:  # collect everything else that is already finished too
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in ready:
            j, t = self.in_flight.pop(ref)
            try:
                out: Outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - Ray task/worker failure after its retries
                out = Outcome(j, False, "crash", time.monotonic() - t, error=f"ray task failed: {exc}")
            if not out.ok and out.kind in ("error", "crash") and out.node:
                self.failed_on[j] = out.node
            events.append(("outcome", out))
        if self.job_timeout_s is not None:
            now = time.monotonic()
            for ref, (j, t) in list(self.in_flight.items()):
                if now - t > self.job_timeout_s:
                    ray.cancel(ref, force=True)
                    self.in_flight.pop(ref)
                    msg = f"time limit of {self.job_timeout_s:g} s exceeded; task cancelled"
                    events.append(("outcome", Outcome(j, False, "error", now - t, error=msg)))
        return events

    def close(self, interrupted: bool) -> None:
        if interrupted:
            for ref in list(self.in_flight):
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
        if self.started_ray:
            self.ray.shutdown()


def _drive(books: _Books, executor: _Executor) -> None:
    """The one executor loop: claim what fits, submit, poll, record, flush; retries wait out their backoff.
    A ``fatal`` outcome (the backend cannot start) stops new submissions and ends the run with its error."""
    fatal: str | None = None
    interrupted = True
    try:
        while True:
            if fatal is None:
                free = executor.free_slots()
                for j in books.take(free, started=executor.starts_on_submit) if free else []:
                    executor.submit(books.entries[j], books.leases[j])
            if not executor.busy():
                if fatal is not None or not books.has_work():
                    break
                time.sleep(min(books.next_ready_in() or 0.0, 0.5))
                continue
            timeout = 0.5
            if not books.queue and books.delayed:
                timeout = min(timeout, books.next_ready_in() or 0.0)
            for kind, value in executor.poll(timeout):
                if kind == "started":
                    if fatal is None:
                        books.started(value)
                elif kind == "lost":
                    books.give_back(value)
                else:
                    if value.kind == "fatal":
                        fatal = value.error
                    books.record(value)
            books.flush()
        interrupted = False
    finally:
        executor.close(interrupted)
    if fatal is not None:
        raise RunError(fatal)
