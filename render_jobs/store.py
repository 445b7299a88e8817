"""The job store: the single truth about progress, an SQLite file in the dataset folder.

States: ``pending`` -> ``running`` -> ``done`` | ``failed`` (``failed`` jobs go back to ``pending``
with :meth:`JobStore.retry_failed`). Each row keeps its attempts, last error, owner (``host:pid``
of the coordinator that started it) and timings; the ``events`` table is an append-only history
(one ``done`` event per job proves it completed exactly once).

Fencing: every claim increments the job's ``lease`` (a fencing token) and hands it to the task; taking a job
away from its holder (recovery, re-queueing, Ctrl-C) increments it again. The store publishes each job's lease
in ``DATASET/.leases/<job_id>`` (written before the claim commits), which a worker on any node reads just
before its final rename (:func:`lease_file_holds`): a task whose lease is no longer the job's (its coordinator
died and a new run took the job) writes nothing. ``jobs.node`` / ``events.node`` record which node ran each
attempt (a Ray node id, or the host name for the local executor).

Durability: WAL journal with ``synchronous=NORMAL``: a committed change survives a killed process
(after a power loss the last commits may be lost, never corrupted; finished folders are then
re-adopted by the next run). A busy timeout makes concurrent processes wait instead of failing.
A killed coordinator leaves ``running`` rows behind; the next run on the same host finds their
owner dead and puts them back to ``pending`` (:meth:`JobStore.recover`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from multicam.errors import DatasetError

STORE_FILE = "jobs.sqlite"
STATES = ("pending", "running", "done", "failed")
LEASE_DIR = ".leases"
_EVENT_REQUEUED = "INSERT INTO events(job_id, event, at, owner, detail) VALUES (?, 'requeued', ?, ?, ?)"
#: Columns added after the first release: (table, column, type) added to older stores when opened.
_MIGRATIONS = (("jobs", "entry_sha256", "TEXT"), ("jobs", "entry_json", "TEXT"),
               ("jobs", "lease", "INTEGER NOT NULL DEFAULT 0"), ("jobs", "node", "TEXT"), ("events", "node", "TEXT"),
               ("jobs", "kind", "TEXT NOT NULL DEFAULT 'render'"))  # kind: stores made before extension jobs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,
    scene_index INTEGER NOT NULL,
    output_dir  TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','running','done','failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    owner       TEXT,
    started_at  REAL,
    finished_at REAL,
    duration_s  REAL,
    entry_sha256 TEXT,
    entry_json  TEXT,
    lease       INTEGER NOT NULL DEFAULT 0,
    node        TEXT,
    kind        TEXT NOT NULL DEFAULT 'render'
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, scene_index);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    event   TEXT NOT NULL,
    at      REAL NOT NULL,
    owner   TEXT,
    detail  TEXT,
    node    TEXT
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is running (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self").exists()  # no /proc (not Linux): trust kill()
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@dataclass(frozen=True)
class JobRow:
    job_id: str
    scene_index: int
    output_dir: str
    state: str
    attempts: int
    last_error: str | None
    owner: str | None
    duration_s: float | None
    started_at: float | None = None  # NULL while a claimed job waits in a worker's queue


def _cannot_write(path: Path, exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "readonly" in text or ("unable to open" in text and not os.access(path.parent, os.W_OK))


class StoreError(DatasetError):
    """The job store file cannot be opened as one (garbage, truncated, another file's contents)."""


READ_ONLY_HINT = "`multicam status` and `multicam validate` work on it, this command needs a writable dataset"


def check_writable(dataset_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`StoreError` (one line) when the dataset folder or its job store cannot be written."""
    folder = Path(dataset_dir)
    store = folder / STORE_FILE
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"{folder}: the dataset is read-only (this user cannot write it); {READ_ONLY_HINT}")
    if store.exists() and not os.access(store, os.W_OK):
        raise StoreError(f"{store}: the job store is read-only (this user cannot write it); {READ_ONLY_HINT}")


_ROW_COLUMNS = "job_id, scene_index, output_dir, state, attempts, last_error, owner, duration_s, started_at"


class JobStore:
    """The job store of one dataset. ``readonly=True`` opens it without writing anything (for ``status`` on a dataset
    the user cannot write): SQLite's ``mode=ro``, or ``immutable=1`` when even its WAL index cannot be made."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 60.0, readonly: bool = False) -> None:
        self.path = Path(path)
        self.owner = this_owner()
        self.lease_dir = self.path.parent / LEASE_DIR
        if readonly:
            self.conn = self._open_readonly(timeout_s)
            return
        self.conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.executescript(_SCHEMA)
            for table, col, kind in _MIGRATIONS:  # stores made before these columns existed
                if col not in {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            if isinstance(exc, sqlite3.OperationalError) and _cannot_write(self.path, exc):
                raise StoreError(f"{self.path}: cannot write the job store ({exc}): the dataset is read-only; "
                                 + READ_ONLY_HINT) from exc
            raise StoreError(
                f"{self.path}: damaged job store ({exc}); move it aside and run the same `multicam plan` "
                f"command again (or `multicam repair {self.path.parent}`) to rebuild it from the plan (finished "
                "scenes are found and kept)"
            ) from exc

    def _open_readonly(self, timeout_s: float) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"{self.path}: missing; run the same `multicam plan` command again (or `multicam repair "
                             f"{self.path.parent}`) to rebuild it from the plan (finished scenes are found and kept)")
        uri = self.path.resolve().as_uri()
        last: sqlite3.DatabaseError | None = None
        for query in ("mode=ro", "immutable=1"):
            conn = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=timeout_s, isolation_level=None)
            try:
                cols = {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
            except sqlite3.DatabaseError as exc:
                conn.close()
                last = exc
                if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in str(exc)
                                                                  or "readonly" in str(exc)):
                    continue  # no WAL index and no right to make one: read the file as it is
                break
            if not {"job_id", *(col for table, col, _ in _MIGRATIONS if table == "jobs")} <= cols:
                conn.close()
                raise StoreError(f"{self.path}: a job store of an older version (or none); `multicam repair "
                                 f"{self.path.parent}` on a writable copy upgrades it")
            return conn
        raise StoreError(f"{self.path}: damaged job store ({last}); move it aside and run the same `multicam plan` "
                         f"command again (or `multicam repair {self.path.parent}`) to rebuild it from the plan "
                         "(finished scenes are found and kept)")

    @classmethod
    def for_dataset(cls, dataset_dir: str | os.PathLike[str], readonly: bool = False) -> JobStore:
        return cls(Path(dataset_dir) / STORE_FILE, readonly=readonly)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- setup -----------------------------------------------------------------------------------

    def add_jobs(self, rows: Iterable[tuple[str, int, str] | tuple[str, int, str, str, str]],
                 kind: str = "render") -> int:
        """Insert ``(job_id, scene_index, output_dir[, entry_sha256, entry_json])`` rows as pending; existing ids
        keep their state (a row without a content hash gets the one given). ``kind``: ``render`` (a planned scene)
        or ``extend`` (new cameras for a rendered scene, ``multicam extend``)."""
        full = [(*r, None, None) if len(r) == 3 else r for r in rows]
        with self.transaction() as c:
            cur = c.executemany(
                "INSERT OR IGNORE INTO jobs(job_id, scene_index, output_dir, entry_sha256, entry_json, kind) "
                "VALUES (?, ?, ?, ?, ?, ?)", [(*r, kind) for r in full]
            )
            c.executemany(
                "UPDATE jobs SET entry_sha256=?, entry_json=? WHERE job_id=? AND entry_sha256 IS NULL",
                [(r[3], r[4], r[0]) for r in full if r[3] is not None],
            )
            return cur.rowcount

    def clear(self) -> None:
        """Forget every job, event and meta record (the store of a plan that was never published)."""
        with self.transaction() as c:
            c.execute("DELETE FROM jobs")
            c.execute("DELETE FROM events")
            c.execute("DELETE FROM meta")

    def set_meta_default(self, key: str, value: str) -> None:
        """Record ``key`` once (the first plan wins; re-planning the same plan leaves it)."""
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def planned_entries(self, kind: str = "render") -> dict[str, tuple[str | None, str | None]]:
        """``job_id -> (entry_sha256, entry_json)`` as recorded at plan time (``kind='extend'``: when added)."""
        return {r[0]: (r[1], r[2]) for r in self.conn.execute(
            "SELECT job_id, entry_sha256, entry_json FROM jobs WHERE kind=?", (kind,))}

    # -- the coordinator's transitions -----------------------------------------------------------

    def recover(self) -> list[str]:
        """Put ``running`` jobs whose coordinator is gone back to ``pending``; return their ids.

        A job's owner is ``host:pid``. On this host a dead pid means a killed run; jobs owned by other
        hosts are left alone (use :meth:`requeue_running` when you know those runs are gone)."""
        host = socket.gethostname()
        out = []
        with self.transaction() as c:
            for job_id, owner in c.execute("SELECT job_id, owner FROM jobs WHERE state='running'").fetchall():
                h, _, pid = (owner or ":").rpartition(":")
                if h == host and pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                    out.append(job_id)
            self._set_pending(c, out, "recovered: its run was killed")
        return out

    def live_running(self) -> list[tuple[str, str]]:
        """``(job_id, owner)`` of ``running`` jobs whose owner is a live process on this host (a render still
        going: its jobs must not be re-queued under it)."""
        host = socket.gethostname()
        out = []
        for job_id, owner in self.conn.execute("SELECT job_id, owner FROM jobs WHERE state='running' "
                                               "ORDER BY scene_index"):
            h, _, pid = (owner or ":").rpartition(":")
            if h == host and pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                out.append((job_id, owner))
        return out

    def requeue_running(self) -> list[str]:
        with self.transaction() as c:
            ids = [r[0] for r in c.execute("SELECT job_id FROM jobs WHERE state='running'")]
            self._set_pending(c, ids, "requeued by user")
        return ids

    def _set_pending(self, c: sqlite3.Connection, ids: list[str], why: str) -> None:
        now = time.time()
        c.executemany("UPDATE jobs SET state='pending', owner=NULL, lease=lease+1 WHERE job_id=?", [(i,) for i in ids])
        self._publish_leases(c, ids)
        c.executemany(
            "INSERT INTO events(job_id, event, at, owner, detail) VALUES (?, 'requeued', ?, ?, ?)",
            [(i, now, self.owner, why) for i in ids],
        )

    def runnable(self, kind: str = "render", only: Iterable[str] | None = None) -> list[tuple[str, int]]:
        """``(job_id, attempts)`` of pending jobs of ``kind`` in scene order (``only``: of these ids)."""
        keep = None if only is None else set(only)
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT job_id, attempts FROM jobs WHERE state='pending' AND kind=? ORDER BY scene_index, job_id",
                (kind,),
            )
            if keep is None or r[0] in keep
        ]

    def claim(self, job_ids: list[str], started: bool = False) -> list[str]:
        """Mark pending jobs running (owned by this process); return those that were claimed (see :meth:`take`)."""
        return list(self.take(job_ids, started))

    def take(self, job_ids: list[str], started: bool = False) -> dict[str, int]:
        """Mark pending jobs running (owned by this process); return ``job_id -> lease`` of those claimed: the
        fencing token their task must still hold when it renames its result into place.

        A claimed job may wait in a worker's queue first: ``started_at`` stays NULL until :meth:`finish` records
        it in ``started`` (or ``started=True`` here, for executors that start what they claim at once)."""
        now = time.time()
        got: dict[str, int] = {}
        with self.transaction() as c:
            for j in job_ids:
                row = c.execute(
                    "UPDATE jobs SET state='running', attempts=attempts+1, owner=?, started_at=?, "
                    "finished_at=NULL, lease=lease+1 WHERE job_id=? AND state='pending' RETURNING lease",
                    (self.owner, now if started else None, j),
                ).fetchone()
                if row is not None:
                    got[j] = int(row[0])
            c.executemany(
                "INSERT INTO events(job_id, event, at, owner, detail) VALUES (?, 'claimed', ?, ?, ?)",
                [(j, now, self.owner, f"lease {n}") for j, n in got.items()],
            )
            if started:
                c.executemany(
                    "INSERT INTO events(job_id, event, at, owner) VALUES (?, 'started', ?, ?)",
                    [(j, now, self.owner) for j in got],
                )
            self._write_lease_files(got)
        return got

    def _publish_leases(self, c: sqlite3.Connection, ids: Iterable[str]) -> None:
        """Write the current lease of ``ids`` to their lease files (inside the transaction that changed them)."""
        ids = list(ids)
        if ids:
            marks = ",".join("?" * len(ids))
            self._write_lease_files(dict(c.execute(f"SELECT job_id, lease FROM jobs WHERE job_id IN ({marks})", ids)))

    def _write_lease_files(self, leases: dict[str, int]) -> None:
        if not leases:
            return
        self.lease_dir.mkdir(exist_ok=True)
        for j, n in leases.items():
            # Rewritten in place (same inode: an NFS client that cached the name still reads the new value); a
            # reader that catches it mid-write sees no number and counts the lease as lost (safe: nothing written).
            with open(self.lease_dir / j, "w") as fh:
                fh.write(f"{n}\n")

    def lease_holds(self, job_id: str, lease: int) -> bool:
        """Whether ``lease`` is still the lease of ``job_id``'s current attempt (the job is running under it)."""
        row = self.conn.execute("SELECT state, lease FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return row is not None and row[0] == "running" and int(row[1]) == lease

    def finish(
        self,
        done: Iterable[tuple[str, float] | tuple[str, float, str | None]],
        failed: Iterable[tuple[str, str, bool] | tuple[str, str, bool, str | None]],
        started: Iterable[str] = (),
    ) -> None:
        """Record outcomes in one transaction: ``done`` = (job_id, duration_s[, node]);
        ``failed`` = (job_id, error, retry[, node]) - retry puts it back to pending, else it is failed;
        ``started``: claimed jobs that began rendering (recorded first: one may start and finish in one batch).
        Only jobs this process still owns change (a job taken over by another run is left to it)."""
        now = time.time()
        with self.transaction() as c:
            for j in started:
                cur = c.execute(
                    "UPDATE jobs SET started_at=? WHERE job_id=? AND state='running' AND owner=?", (now, j, self.owner)
                )
                if cur.rowcount:
                    c.execute("INSERT INTO events(job_id, event, at, owner) VALUES (?, 'started', ?, ?)",
                              (j, now, self.owner))
            for j, dur, *rest in done:
                node = rest[0] if rest else None
                cur = c.execute(
                    "UPDATE jobs SET state='done', owner=NULL, finished_at=?, duration_s=?, last_error=NULL, node=? "
                    "WHERE job_id=? AND state='running' AND owner=?",
                    (now, dur, node, j, self.owner),
                )
                if cur.rowcount:
                    c.execute(
                        "INSERT INTO events(job_id, event, at, owner, detail, node) VALUES (?, 'done', ?, ?, ?, ?)",
                        (j, now, self.owner, f"{dur:.3f}s", node),
                    )
            for j, err, retry, *rest in failed:
                node = rest[0] if rest else None
                cur = c.execute(
                    "UPDATE jobs SET state=?, owner=NULL, finished_at=?, last_error=?, node=? "
                    "WHERE job_id=? AND state='running' AND owner=?",
                    ("pending" if retry else "failed", now, err, node, j, self.owner),
                )
                if cur.rowcount:
                    c.execute(
                        "INSERT INTO events(job_id, event, at, owner, detail, node) VALUES (?, ?, ?, ?, ?, ?)",
                        (j, "retry" if retry else "failed", now, self.owner, err, node),
                    )

    def release(self, job_ids: list[str], why: str = "interrupted") -> list[str]:
        """Give claimed jobs back (Ctrl-C): pending again, the attempt not counted, the lease taken back (a task
        still running for them writes nothing); return those this process still owned."""
        now = time.time()
        out = []
        with self.transaction() as c:
            for j in job_ids:
                cur = c.execute(
                    "UPDATE jobs SET state='pending', owner=NULL, attempts=MAX(attempts-1, 0), lease=lease+1 "
                    "WHERE job_id=? AND state='running' AND owner=?",
                    (j, self.owner),
                )
                if cur.rowcount:
                    out.append(j)
                    c.execute(_EVENT_REQUEUED, (j, now, self.owner, why))
            self._publish_leases(c, out)
        return out

    def requeue_done(self, job_ids: list[str], why: str) -> None:
        """Put ``done`` jobs back to pending (their scene folder was damaged after they finished)."""
        now = time.time()
        with self.transaction() as c:
            for j in job_ids:
                if c.execute("UPDATE jobs SET state='pending', attempts=0 WHERE job_id=? AND state='done'",
                             (j,)).rowcount:
                    c.execute(_EVENT_REQUEUED, (j, now, self.owner, why))

    def retry_failed(self, reset_attempts: bool = True, only: Iterable[str] | None = None) -> list[str]:
        """Failed jobs (of ``only``, when given) back to pending; returns their ids."""
        keep = None if only is None else set(only)
        with self.transaction() as c:
            ids = [
                r[0] for r in c.execute("SELECT job_id FROM jobs WHERE state='failed' ORDER BY scene_index")
                if keep is None or r[0] in keep
            ]
            sql = (
                "UPDATE jobs SET state='pending'"
                + (", attempts=0" if reset_attempts else "")
                + " WHERE job_id=?"
            )
            c.executemany(sql, [(i,) for i in ids])
            c.executemany(
                "INSERT INTO events(job_id, event, at, owner, detail) VALUES (?, 'requeued', ?, ?, ?)",
                [(i, time.time(), self.owner, "multicam retry") for i in ids],
            )
        return ids

    # -- queries ---------------------------------------------------------------------------------

    def counts(self, kind: str = "render") -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.conn.execute("SELECT state, COUNT(*) FROM jobs WHERE kind=? GROUP BY state", (kind,)):
            out[state] = n
        return out

    def running_split(self) -> dict[str, int]:
        """``running`` jobs split into ``rendering`` (started) and ``queued`` (claimed, waiting in a worker)."""
        n_started, n_all = self.conn.execute(
            "SELECT COUNT(started_at), COUNT(*) FROM jobs WHERE state='running'"
        ).fetchone()
        return {"rendering": n_started, "queued": n_all - n_started}

    def rows(self, state: str | None = None, kind: str = "render") -> list[JobRow]:
        sql = (
            f"SELECT {_ROW_COLUMNS} FROM jobs WHERE kind=?"
            + (" AND state=?" if state else "")
            + " ORDER BY scene_index, job_id"
        )
        return [JobRow(*r) for r in self.conn.execute(sql, (kind, state) if state else (kind,))]

    def entry_json(self, job_id: str) -> str | None:
        """The entry recorded with a job (a manifest entry, or an extension job's entry)."""
        r = self.conn.execute("SELECT entry_json FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return None if r is None else r[0]

    def get(self, job_id: str) -> JobRow:
        r = self.conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM jobs WHERE job_id=?",
            (job_id,),
        ).fetchone()
        if r is None:
            raise KeyError(job_id)
        return JobRow(*r)

    def events(self, job_id: str | None = None) -> list[tuple[str, str, str | None, str | None]]:
        """``(job_id, event, node, detail)`` in the order recorded (of one job, or all)."""
        sql = "SELECT job_id, event, node, detail FROM events" + (" WHERE job_id=?" if job_id else "") + " ORDER BY id"
        return list(self.conn.execute(sql, (job_id,) if job_id else ()))

    def event_counts(self, event: str) -> dict[str, int]:
        return dict(
            self.conn.execute("SELECT job_id, COUNT(*) FROM events WHERE event=? GROUP BY job_id", (event,))
        )


def lease_file_holds(dataset_dir: str | os.PathLike[str], job_id: str, lease: int) -> bool:
    """Whether ``lease`` is still ``job_id``'s lease as the store published it in ``DATASET/.leases/`` (what a
    worker on any node checks just before renaming its result into place; it never opens the SQLite file, which
    must not be shared across hosts)."""
    try:
        text = (Path(dataset_dir) / LEASE_DIR / job_id).read_text()
    except OSError:
        return False
    return text.strip() == str(lease)
