"""Damaged and raced datasets, through the real command line in subprocesses: plans raced or killed at a
deterministic point (``multicam.testhooks``), read-only datasets, a full disk, lost scene files. Every case is
one ``error:`` line (or a documented repair) and the plan, the job store and the outputs agree afterwards."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import SYNTHETIC, synthetic_generate_args

from render_jobs.cli_generate import DEMO_CATALOG

PLAN = ["plan", "--catalog", str(DEMO_CATALOG), "--seed", "0", "--width", "32", "--height", "32", "--frames", "4",
        "--cameras", "2"]


def multicam(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "multicam_app", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "multicam_app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def one_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    return res.stderr


def store_ids(ds: Path) -> list[str]:
    con = sqlite3.connect(ds / "jobs.sqlite")
    try:
        return [r[0] for r in con.execute("SELECT job_id FROM jobs ORDER BY job_id")]
    finally:
        con.close()


def manifest_ids(ds: Path) -> list[str]:
    lines = (ds / "plan" / "manifest.jsonl").read_text().splitlines()
    return sorted(json.loads(ln)["job_id"] for ln in lines if ln.strip())


def agree(ds: Path, scenes: int) -> None:
    """plan.json, the manifest and the job store describe the same `scenes` jobs."""
    assert json.loads((ds / "plan" / "plan.json").read_text())["scenes"] == scenes
    assert manifest_ids(ds) == store_ids(ds) == [f"s{i:06d}" for i in range(1, scenes + 1)]
    res = multicam("status", str(ds))
    assert res.returncode == 0 and f"{scenes} jobs" in res.stdout, res.stderr


def test_plan_killed_after_the_store_before_plan_json(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    res = multicam(*PLAN, "--scenes", "2", "--out", str(ds), env={"MULTICAM_HOOK_PLAN_AFTER_STORE": "kill"})
    assert res.returncode == -9, res.stderr
    assert (ds / "jobs.sqlite").exists() and not (ds / "plan" / "plan.json").exists()
    for cmd in (["status", str(ds)], ["render", str(ds), *SYNTHETIC], ["retry", str(ds)]):
        err = one_error(multicam(*cmd), 2)
        assert "plan.json: missing: the plan was not finished" in err and "run the same `multicam plan`" in err
    # Another plan replaces the unpublished one (nothing can have rendered from it); the same plan would finish it
    res = multicam(*PLAN, "--scenes", "3", "--out", str(ds))
    assert res.returncode == 0, res.stderr
    agree(ds, 3)


def test_two_plans_racing_into_one_folder(tmp_path: Path) -> None:
    """The first plan stops (deterministically) holding the lock, after writing its store and before publishing
    plan.json; a second plan of other arguments waits for it, then is refused; the dataset is the first plan."""
    ds, gate = tmp_path / "ds", tmp_path / "gate"
    first = start(*PLAN, "--scenes", "2", "--out", str(ds), env={"MULTICAM_HOOK_PLAN_AFTER_STORE": f"pause:{gate}"})
    reached = Path(f"{gate}.reached")
    while not reached.exists():
        assert first.poll() is None, first.communicate()
        time.sleep(0.02)
    second = start(*PLAN, "--scenes", "3", "--out", str(ds), env={})
    assert second.stderr is not None
    line = second.stderr.readline()  # printed only when it found the lock held
    assert line.startswith(f"waiting for another `multicam plan` on {ds}"), line
    gate.touch()
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    out2, err2 = second.communicate(timeout=300)
    assert second.returncode == 2 and err2.startswith("error: ") and "already holds a different plan" in err2, err2
    assert err2.count("\n") == 1
    agree(ds, 2)


def _as_plain_user() -> tuple[str, ...]:
    """A command prefix under which file permissions apply: root without the capabilities that override them."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    caps = "-dac_override,-dac_read_search,-fowner"
    return (setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}")


def _rendered(tmp_path: Path, scenes: int = 2) -> Path:
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", str(scenes), "--out", str(ds)).returncode == 0
    res = multicam("render", str(ds), *SYNTHETIC)
    assert res.returncode == 0, res.stderr
    return ds


def _chmod_tree(root: Path, writable: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_read_only_dataset(tmp_path: Path) -> None:
    """status and validate work on a dataset the user cannot write; commands that write say so in one line."""
    ds = _rendered(tmp_path)
    before = sorted(p.name for p in ds.iterdir())
    _chmod_tree(ds, writable=False)
    try:
        user = _as_plain_user()
        res = multicam("status", str(ds), prefix=user)
        assert res.returncode == 0 and "done 2" in res.stdout, res.stderr
        res = multicam("validate", str(ds), prefix=user)
        assert res.returncode == 0 and "2 scenes" in res.stdout, res.stderr
        for cmd in (["render", str(ds), *SYNTHETIC], ["retry", str(ds)]):
            assert "the dataset is read-only" in one_error(multicam(*cmd, prefix=user), 2)
        for cmd in ([*PLAN, "--scenes", "2", "--out", str(ds)],
                    synthetic_generate_args(ds, scenes=2)):
            assert f"--out {ds}: {ds} is not writable" in one_error(multicam(*cmd, prefix=user), 2)
        assert sorted(p.name for p in ds.iterdir()) == before  # nothing was written (no WAL index either)
    finally:
        _chmod_tree(ds, writable=True)


def _counts(ds: Path) -> dict[str, int]:
    con = sqlite3.connect(ds / "jobs.sqlite")
    try:
        return dict(con.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    finally:
        con.close()


def test_full_disk_in_a_render_stops_the_run_cleanly(tmp_path: Path) -> None:
    """A render that finds the disk full (ENOSPC, raised as a real one is) stops the run with one line, exit 1;
    no job is left running or marked failed, and the same command resumes once there is space."""
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", "2", "--out", str(ds)).returncode == 0
    err = one_error(multicam("render", str(ds), *SYNTHETIC, "-o", "no_space=s000002"), 1)
    assert "no space left on device; the finished scenes are kept" in err, err
    assert _counts(ds) == {"done": 1, "pending": 1}
    res = multicam("render", str(ds), *SYNTHETIC)
    assert res.returncode == 0 and "rendered 1" in res.stdout, res.stderr
    assert _counts(ds) == {"done": 2}


_DISK_FULL_STORE = """
import sqlite3, sys
from render_jobs.store import JobStore
real = JobStore.finish
def finish(self, done, failed, started=()):
    if done:
        raise sqlite3.OperationalError("database or disk is full")
    return real(self, done, failed, started)
JobStore.finish = finish
sys.argv = ["multicam", *sys.argv[1:]]
from multicam_app import main
main()
"""


def test_full_disk_under_the_job_store_is_one_line(tmp_path: Path) -> None:
    """The coordinator's own write fails (SQLite: database or disk is full): one line from the top-level handler,
    exit 1, no traceback; the next run recovers the jobs and adopts what was rendered."""
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", "2", "--out", str(ds)).returncode == 0
    res = subprocess.run([sys.executable, "-c", _DISK_FULL_STORE, "render", str(ds), *SYNTHETIC],
                         capture_output=True, text=True, timeout=300)
    err = one_error(res, 1)
    assert "database or disk is full; the finished work is kept; free space and run the same command" in err
    assert _counts(ds).get("running", 0) == 0  # given back
    res = multicam("render", str(ds), *SYNTHETIC)
    assert res.returncode == 0 and "rendered 1, found complete 1" in res.stdout, (res.stdout, res.stderr)


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", "1", "--out", str(ds)).returncode == 0
    res = subprocess.run([sys.executable, "-c", _DISK_FULL_STORE, "render", str(ds), *SYNTHETIC],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "MULTICAM_DEBUG": "1"})
    assert res.returncode == 1 and "Traceback" in res.stderr and "disk is full" in res.stderr, res.stderr


def _output_dirs(ds: Path) -> list[str]:
    lines = (ds / "plan" / "manifest.jsonl").read_text().splitlines()
    return [json.loads(ln)["output_dir"] for ln in lines if ln.strip()]


def _hashes(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_deleted_scene_folder_or_video_is_found_and_rendered_again(tmp_path: Path) -> None:
    ds = _rendered(tmp_path)
    first, second = _output_dirs(ds)
    (ds / first / "videos" / "cam02.mp4").unlink()
    shutil.rmtree(ds / second)
    res = multicam("status", str(ds))
    assert res.returncode == 1 and "done 2" in res.stdout, (res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1, res.stderr
    assert f"2 done scene(s) lost files: {first} (s000001): videos/cam02.mp4 missing and 1 more" in res.stderr
    assert f"`multicam repair {ds}` re-queues them" in res.stderr
    res = multicam("repair", str(ds))
    assert res.returncode == 0, res.stderr
    assert f"re-queued {first} (s000001): videos/cam02.mp4 missing" in res.stdout
    assert f"re-queued {second} (s000002): the folder missing" in res.stdout
    assert multicam("status", str(ds)).stdout.count("pending 2") == 1
    res = multicam("render", str(ds), *SYNTHETIC)
    assert res.returncode == 0 and "rendered 2" in res.stdout, (res.stdout, res.stderr)
    assert f"{first} was incomplete (videos/cam02.mp4: missing): moved to {ds / '.damaged'}" in res.stderr
    # render finds the damage itself too, and renders the scene again
    (ds / second / "cameras" / "camera_extrinsics.json").unlink()
    res = multicam("render", str(ds), *SYNTHETIC)
    assert res.returncode == 0 and "rendered 1" in res.stdout, (res.stdout, res.stderr)
    assert f"1 done scene(s) lost files: {second} (s000002): cameras/camera_extrinsics.json missing; re-queued" \
        in res.stderr
    assert multicam("status", str(ds)).returncode == 0
    assert multicam("validate", str(ds)).returncode == 0


def test_repair_rebuilds_a_lost_store_from_the_plan(tmp_path: Path) -> None:
    ds = _rendered(tmp_path)
    before = _hashes(ds / "train")
    for kind in ("deleted", "garbage"):
        if kind == "deleted":
            for p in ds.glob("jobs.sqlite*"):
                p.unlink()
        else:
            (ds / "jobs.sqlite").write_bytes(b"garbage" * 1000)
        res = multicam("repair", str(ds))
        assert res.returncode == 0 and "rebuilt" in res.stdout and "(2 jobs" in res.stdout, res.stderr
        assert (kind == "garbage") == bool(list(ds.glob("jobs.sqlite.damaged-*")))
        res = multicam("render", str(ds), *SYNTHETIC)
        assert res.returncode == 0 and "rendered 0, found complete 2" in res.stdout, res.stderr
        assert _hashes(ds / "train") == before
    assert "nothing to repair" in multicam("repair", str(ds)).stdout


def test_repair_refuses_a_manifest_that_is_not_the_published_one(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", "2", "--out", str(ds)).returncode == 0
    manifest = ds / "plan" / "manifest.jsonl"
    entries = [json.loads(ln) for ln in manifest.read_text().splitlines()]
    entries[1]["placement"]["yaw_deg"] = 1.5
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    err = one_error(multicam("status", str(ds)), 2)
    assert "scene 2 (s000002) differs from the plan: placement.yaw_deg" in err, err
    (ds / "jobs.sqlite").unlink()
    err = one_error(multicam("repair", str(ds)), 2)
    assert "manifest.jsonl: not the manifest" in err and "run the same `multicam plan` command again" in err


def test_two_jobs_for_one_output_folder_are_refused(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", "2", "--out", str(ds)).returncode == 0
    manifest = ds / "plan" / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join([*lines, lines[0]]))
    for cmd in (["status", str(ds)], ["render", str(ds), *SYNTHETIC]):
        err = one_error(multicam(*cmd), 2)
        assert "manifest.jsonl:3: job id s000001 is also on line 1: two jobs would write one folder" in err, err


def test_user_files_in_a_scene_folder_are_left_alone(tmp_path: Path) -> None:
    ds = _rendered(tmp_path, scenes=1)
    (folder,) = _output_dirs(ds)
    (ds / folder / "videos" / "cam01.mp4").unlink()
    (ds / folder / "my_notes.txt").write_text("mine")
    res = multicam("render", str(ds), *SYNTHETIC, "--max-attempts", "1")
    assert res.returncode == 1, res.stderr
    assert "holds files this job did not write (my_notes.txt)" in res.stderr and "move them out of it" in res.stderr
    assert (ds / folder / "my_notes.txt").read_text() == "mine"
    assert not list((ds / folder).parent.glob(".*"))  # nothing moved aside into a hidden folder
    (ds / folder / "my_notes.txt").rename(tmp_path / "my_notes.txt")
    assert multicam("retry", str(ds)).returncode == 0
    res = multicam("render", str(ds), *SYNTHETIC)
    assert res.returncode == 0 and "rendered 1" in res.stdout, res.stderr


def test_an_output_folder_leaving_the_dataset_is_refused(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert multicam(*PLAN, "--scenes", "1", "--out", str(ds)).returncode == 0
    (folder,) = _output_dirs(ds)
    outside = tmp_path / "outside"
    outside.mkdir()
    camera_set = ds / folder.rpartition("/")[0]
    camera_set.rmdir()
    camera_set.symlink_to(outside)
    res = multicam("render", str(ds), *SYNTHETIC, "--max-attempts", "1")
    assert res.returncode == 1 and "outside the dataset" in res.stderr and "a symlink?" in res.stderr, res.stderr
    assert list(outside.iterdir()) == []
