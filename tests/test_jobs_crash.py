"""Crash safety: SIGKILL `multicam render` mid-run several times, restart, and check the dataset."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from render_jobs.planner import iter_manifest, load_settings, materialize, plan_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore
from render_jobs.verify import verify_scene_dir
from scene_catalog.loader import load_catalog

CATALOG = {
    "environments": [
        {"id": "plaza", "asset": "builtin:plaza",
         "anchors": [{"location_cm": [0, 0, 0]}, {"location_cm": [400, 0, 0]}]},
        {"id": "room", "asset": "builtin:room", "size": "small", "anchors": [{"location_cm": [0, 0, 0]}]},
    ],
    "characters": [{"id": "ada", "asset": "builtin:m"}, {"id": "bob", "asset": "builtin:m", "height_m": 1.9}],
    "animations": [{"id": "walk", "asset": "builtin:walk", "length_frames": 60, "loopable": True}],
}
N_JOBS = 14


def done_count(ds: Path) -> int:
    con = sqlite3.connect(ds / "jobs.sqlite", timeout=30)
    try:
        return int(con.execute("SELECT COUNT(*) FROM jobs WHERE state='done'").fetchone()[0])
    finally:
        con.close()


def snapshot(ds: Path) -> dict[Path, tuple[str, int]]:
    """Hash and mtime of every file of every job recorded done."""
    out = {}
    with JobStore.for_dataset(ds) as s:
        folders = [ds / r.output_dir for r in s.rows("done")]
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[p] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def start_render(ds: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "multicam_app", "render", str(ds), "--backend", "test-synthetic", "--workers", "2",
           "--no-progress", "-o", "sleep_s=0.25", "-o", f"log_path={log}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CATALOG))
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(tmp_path / "c.yaml"), N_JOBS, 11, ds,
                 RenderSettings(width=32, height=32, frames=6, samples=1), n_cameras=3)
    log = tmp_path / "renders.log"
    settings, n_cam = load_settings(ds)
    jobs = {e.output_dir: materialize(e, settings, n_cam) for e in iter_manifest(ds)}
    kills = 0
    seen: dict[Path, tuple[str, int]] = {}
    target = 0
    while kills < 3:
        proc = start_render(ds, log)
        target = done_count(ds) + 2
        deadline = time.monotonic() + 120
        while done_count(ds) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"render ended before it could be killed:\n{proc.stdout.read().decode()}"  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        time.sleep(0.3)  # the workers die with their coordinator (parent-death signal)
        # No scene folder is ever half-written: whatever exists under train/ verifies.
        for folder in (ds / "train").glob("*/scene*"):
            assert verify_scene_dir(jobs[folder.relative_to(ds).as_posix()], folder) == [], folder
        snap = snapshot(ds)
        for p, v in seen.items():
            assert snap[p] == v, f"{p} was rewritten after it was done"
        seen.update(snap)
    with JobStore.for_dataset(ds) as s:
        assert s.counts()["done"] < N_JOBS
    proc = start_render(ds, log)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()

    with JobStore.for_dataset(ds) as s:
        assert s.counts() == {"pending": 0, "running": 0, "done": N_JOBS, "failed": 0}
        assert s.event_counts("done") == {f"s{i:06d}": 1 for i in range(1, N_JOBS + 1)}
        assert len(s.event_counts("requeued")) >= 1  # jobs killed mid-render were recovered
    final = snapshot(ds)
    assert len(final) == N_JOBS * 5  # 3 videos + camera JSON + scene.json
    for p, v in seen.items():
        assert final[p] == v, f"{p} was rewritten after it was done"
    for rel, job in jobs.items():
        assert verify_scene_dir(job, ds / rel) == []
    assert list((ds / ".tmp").iterdir()) == []
    assert not list((ds / "train").glob("*/.*"))  # nothing moved aside as invalid


def _plan(tmp_path: Path, n: int) -> Path:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CATALOG))
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(tmp_path / "c.yaml"), n, 5, ds,
                 RenderSettings(width=32, height=32, frames=6, samples=1), n_cameras=2)
    return ds


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_stops_cleanly_and_gives_jobs_back(tmp_path: Path, sig: int, code: int, name: str) -> None:
    """Ctrl-C and SIGTERM (a scheduler or `kill`) stop a run the same way: jobs given back, none left running."""
    ds = _plan(tmp_path, 4)
    cmd = [sys.executable, "-m", "multicam_app", "render", str(ds), "--backend", "test-synthetic", "--workers", "2",
           "--no-progress", "-o", "sleep_s=30"]
    # A shell starts background jobs with SIGINT ignored and children inherit that (CI may run us so): give the
    # run the default disposition a terminal's Ctrl-C would meet.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the workers have started rendering
        if (ds / ".tmp").is_dir() and len(list((ds / ".tmp").iterdir())) == 2:
            break
        time.sleep(0.1)
    # `multicam status` meanwhile: all 4 jobs claimed (2 per worker), 2 rendering, 2 queued behind them
    status_cmd = [sys.executable, "-m", "multicam_app", "status", str(ds)]
    while time.monotonic() < deadline:
        st = json.loads(subprocess.run([*status_cmd, "--json"], capture_output=True, check=True, text=True).stdout)
        if st["running_split"]["rendering"] == 2:
            break
        time.sleep(0.1)
    assert st["counts"]["running"] == 4 and st["running_split"] == {"rendering": 2, "queued": 2}, st
    assert sum(r["started_at"] is not None for r in st["running"]) == 2
    text = subprocess.run(status_cmd, capture_output=True, check=True, text=True).stdout
    assert "running 4 (rendering 2, queued in workers 2)" in text, text
    assert text.count("  rendering s0000") == 2 and text.count("  queued    s0000") == 2, text
    # `retry --running` refuses while the render that owns the running rows is alive (one line, exit 2)
    retry_cmd = [sys.executable, "-m", "multicam_app", "retry", str(ds), "--running"]
    refused = subprocess.run(retry_cmd, capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"owner {socket.gethostname()}:{proc.pid}" in refused.stderr and "a render is still going" in refused.stderr
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out.decode()
    assert b"interrupted; run the same command again to resume" in out
    with JobStore.for_dataset(ds) as s:
        assert s.counts() == {"pending": 4, "running": 0, "done": 0, "failed": 0}
        assert all(r.attempts == 0 for r in s.rows())  # an interrupted try is not counted
        assert set(s.event_counts("requeued")) == {f"s{i:06d}" for i in range(1, 5)}
        details = {d for (d,) in s.conn.execute("SELECT detail FROM events WHERE event = 'requeued'")}
        assert details == {f"interrupted ({name})"}, details
    assert list((ds / ".tmp").iterdir()) == []


def test_two_concurrent_runs_share_the_work(tmp_path: Path) -> None:
    ds = _plan(tmp_path, 10)
    log = tmp_path / "renders.log"
    cmd = [sys.executable, "-m", "multicam_app", "render", str(ds), "--backend", "test-synthetic", "--workers", "1",
           "--no-progress", "-o", "sleep_s=0.2", "-o", f"log_path={log}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with JobStore.for_dataset(ds) as s:
        assert s.counts()["done"] == 10
        assert s.event_counts("done") == {f"s{i:06d}": 1 for i in range(1, 11)}
    renders = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(renders) == [f"s{i:06d}" for i in range(1, 11)]  # no job rendered twice
    # both coordinators rewrote metadata.csv (under its lock): the last file lists every scene once
    rows = (ds / "metadata.csv").read_text().splitlines()
    assert rows[0] == "file_name,text,camera_motion" and len(rows) == 1 + 10 * 2 and len(set(rows)) == len(rows)
