"""Render-job planning, the job store, verification and the local executor (with the test backend)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cli_support import SYNTHETIC
from typer.testing import CliRunner

from exporters.camera_json import CAMERA_FILE, read_camera_json, write_camera_json
from exporters.video import encode_mp4, probe_video
from multicam_app import app
from render_jobs.backend import Backend
from render_jobs.backends import UnknownBackendError, get_backend
from render_jobs.execute import cleanup_tmp, render_scene
from render_jobs.planner import PlanError, iter_manifest, load_settings, materialize, plan_dataset, read_plan
from render_jobs.runner import RunError, run_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore, lease_file_holds
from render_jobs.verify import verify_scene_dir
from scene_catalog.loader import load_catalog
from scene_catalog.models import Catalog
from trajectory.sampler import sample_scene

CATALOG: dict[str, Any] = {
    "environments": [
        {"id": "plaza", "asset": "builtin:plaza", "size": "huge", "tags": ["outdoor"],
         "anchors": [{"location_cm": [0, 0, 0], "free_radius_m": 10},
                     {"id": "corner", "location_cm": [500, 200, 10], "free_radius_m": 5}]},
        {"id": "room", "asset": "builtin:room", "size": "small", "tags": ["indoor"],
         "anchors": [{"location_cm": [-300, 40, 0], "free_radius_m": 4}]},
    ],
    "characters": [
        {"id": "ada", "asset": "builtin:mannequin", "height_m": 1.7},
        {"id": "bob", "asset": "builtin:mannequin", "height_m": 1.9},
    ],
    "animations": [
        {"id": "walk", "asset": "builtin:walk", "length_frames": 120, "fps": 30, "loopable": True},
        {"id": "wave", "asset": "builtin:wave", "length_frames": 200, "fps": 30},
    ],
}
SMALL = RenderSettings(width=32, height=32, frames=6, fps=15, samples=1)


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(CATALOG))
    return load_catalog(path)


def plan(catalog: Catalog, out: Path, n: int = 4, seed: int = 3, cameras: int = 3,
         settings: RenderSettings = SMALL) -> Path:
    plan_dataset(catalog, n, seed, out, settings, n_cameras=cameras)
    return out


def events(dataset: Path, event: str) -> dict[str, int]:
    with JobStore.for_dataset(dataset) as s:
        return s.event_counts(event)


def assert_event_sequences(dataset: Path) -> None:
    """Every attempt of every job reads claimed -> started -> done|retry|failed, or claimed -> requeued (given back
    from a worker's queue before it started): a job counts as rendering only once its worker began it."""
    with JobStore.for_dataset(dataset) as s:
        rows = s.conn.execute("SELECT job_id, event FROM events ORDER BY id").fetchall()
        started_at = {r.job_id: r.started_at for r in s.rows()}
    seq: dict[str, list[str]] = {}
    for job_id, event in rows:
        seq.setdefault(job_id, []).append(event)
    assert seq
    for job_id, evs in seq.items():
        text = " ".join(evs)
        for attempt in text.replace(" claimed", "|claimed").split("|"):
            assert attempt in ("claimed started done", "claimed started retry", "claimed started failed",
                               "claimed requeued"), (job_id, text)
        assert started_at[job_id] is not None  # the last attempt ran


# -- planning ---------------------------------------------------------------------------------------------


def test_plan_writes_manifest_store_and_layout(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=8)
    entries = list(iter_manifest(ds))
    assert [e.scene_index for e in entries] == list(range(1, 9))
    assert len({e.output_dir for e in entries}) == 8
    with JobStore.for_dataset(ds) as store:
        assert store.counts() == {"pending": 8, "running": 0, "done": 0, "failed": 0}
    for e in entries:
        folder = ds / e.output_dir
        assert folder.parent.is_dir() and not folder.exists()
        focal, ap = e.sampler.focal_mm, e.sampler.aperture
        assert folder.parent.name == f"f{focal:g}_aperture{ap:g}"
        env = next(x for x in CATALOG["environments"] if x["id"] == e.environment.id)
        assert list(e.placement.location_cm) == env["anchors"][e.environment.anchor]["location_cm"]
    # Scenes are numbered scene1..sceneK inside each camera-set folder.
    by_folder: dict[str, list[int]] = {}
    for e in entries:
        parent, name = e.output_dir.rsplit("/", 1)
        by_folder.setdefault(parent, []).append(int(name.removeprefix("scene")))
    assert all(v == list(range(1, len(v) + 1)) for v in by_folder.values())
    info = read_plan(ds)
    assert info["scenes"] == 8 and info["spread"]["environments"]["max"] - info["spread"]["environments"]["min"] <= 1


def test_replan_same_args_is_noop_and_different_args_fail(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds")
    manifest = ds / "plan" / "manifest.jsonl"
    before = (manifest.stat().st_mtime_ns, manifest.read_bytes())
    plan(catalog, ds)
    assert (manifest.stat().st_mtime_ns, manifest.read_bytes()) == before
    with pytest.raises(PlanError, match=r"scenes: planned 4, now 5"):
        plan(catalog, ds, n=5)
    with pytest.raises(PlanError, match=r"settings: frames 6 -> 7"):
        plan(catalog, ds, settings=SMALL.model_copy(update={"frames": 7}))
    with pytest.raises(PlanError, match=r"seed: planned 3, now 4"):
        plan(catalog, ds, seed=4)
    assert manifest.read_bytes() == before[1]


def test_scene_k_is_identical_whatever_the_scene_count(tmp_path: Path, catalog: Catalog) -> None:
    a = list(iter_manifest(plan(catalog, tmp_path / "a", n=5)))
    b = list(iter_manifest(plan(catalog, tmp_path / "b", n=11)))
    assert a == b[:5]
    settings, n_cam = load_settings(tmp_path / "a")
    ja, jb = materialize(a[4], settings, n_cam), materialize(b[4], settings, n_cam)
    assert ja == jb


def test_job_spec_is_a_superset_of_the_sampler_record(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=6, cameras=4)
    settings, n_cam = load_settings(ds)
    for entry in iter_manifest(ds):
        job = materialize(entry, settings, n_cam)
        ref = sample_scene(
            entry.seed, entry.scene_index, n_cameras=4, frames=settings.frames,
            allowed_radii_m=entry.sampler.allowed_radii_m,
            character_location_cm=entry.placement.location_cm,
            character_height_m=entry.character.height_m)
        record = json.loads(json.dumps(ref.record()))
        scene = json.loads(json.dumps(job.scene))
        for key, value in record.items():
            if isinstance(value, dict) and key == "character":
                assert {k: scene[key][k] for k in value} == value
            else:
                assert scene[key] == value, key
        assert scene["environment"]["id"] == entry.environment.id
        assert scene["animation"]["start_frame"] == entry.animation.start_frame
        np.testing.assert_array_equal(job.poses_array(), ref.poses_frame_major())
        assert [c.focal_mm for c in job.cameras] == [ref.focal_mm] * 4
        assert job.output_dir.startswith(f"train/f{ref.focal_mm:g}_aperture{ref.aperture:g}/")
        radii = entry.sampler.allowed_radii_m
        assert ref.radius_m in radii
        if entry.environment.id == "room":
            assert radii == [3.0]


# -- store ------------------------------------------------------------------------------------------------


def test_store_transitions_and_recovery_of_dead_owner(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as s:
        s.add_jobs([("j1", 1, "a"), ("j2", 2, "b"), ("j3", 3, "c")])
        s.add_jobs([("j1", 1, "a")])  # re-adding keeps the row
        assert s.claim(["j1", "j2"]) == ["j1", "j2"]
        assert s.claim(["j1"]) == []  # already running
        s.finish([("j1", 0.5)], [("j2", "boom", True)])
        assert s.get("j1").state == "done" and s.get("j2").state == "pending"
        assert s.get("j2").last_error == "boom" and s.get("j2").attempts == 1
        s.claim(["j2"])
        s.finish([], [("j2", "boom again", False)])
        assert s.get("j2").state == "failed" and s.get("j2").attempts == 2
        assert s.retry_failed() == ["j2"]
        assert s.get("j2").state == "pending" and s.get("j2").attempts == 0
        s.claim(["j3"])
        s.release(["j3"])
        assert s.get("j3").state == "pending" and s.get("j3").attempts == 0
    # A run killed mid-job: its rows stay 'running' under a pid that no longer exists.
    proc = subprocess.run([sys.executable, "-c", (
        "import sys; from render_jobs.store import JobStore; s = JobStore(sys.argv[1]); s.claim(['j3'])")
        , str(path)], check=True)
    assert proc.returncode == 0
    with JobStore(path) as s:
        assert s.get("j3").state == "running"
        assert s.recover() == ["j3"]
        assert s.get("j3").state == "pending"
        assert s.event_counts("done") == {"j1": 1}
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_leases_fence_earlier_attempts_and_old_stores_migrate(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    con = sqlite3.connect(path)  # a store from before leases and nodes (and content hashes)
    con.executescript(
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, scene_index INTEGER NOT NULL, output_dir TEXT NOT NULL, "
        "state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, owner TEXT, "
        "started_at REAL, finished_at REAL, duration_s REAL); CREATE TABLE events (id INTEGER PRIMARY KEY "
        "AUTOINCREMENT, job_id TEXT NOT NULL, event TEXT NOT NULL, at REAL NOT NULL, owner TEXT, detail TEXT); "
        "INSERT INTO jobs(job_id, scene_index, output_dir) VALUES ('j1', 1, 'a'), ('j2', 2, 'b');")
    con.close()
    with JobStore(path) as s:
        assert s.take(["j1", "j2"]) == {"j1": 1, "j2": 1}
        assert s.lease_holds("j1", 1) and lease_file_holds(tmp_path, "j1", 1)
        s.release(["j1"])  # taken back: no attempt holds it while it is pending
        assert not s.lease_holds("j1", 1) and not lease_file_holds(tmp_path, "j1", 1)
        assert s.take(["j1"]) == {"j1": 3}
        assert lease_file_holds(tmp_path, "j1", 3) and not lease_file_holds(tmp_path, "j1", 1)
        s.finish([("j1", 0.5, "node-a")], [("j2", "boom", True, "node-b")])
        assert s.events("j1")[-1] == ("j1", "done", "node-a", "0.500s")
        assert s.events("j2")[-1] == ("j2", "retry", "node-b", "boom")
        s.finish([("j1", 0.5, "node-a")], [("j2", "late", False, "node-b")])  # neither is this run's any more
        assert s.event_counts("done") == {"j1": 1} and s.get("j2").state == "pending"
        assert [e[1] for e in s.events("j2")] == ["claimed", "retry"]  # the late outcome recorded nothing


def test_retry_running_under_a_live_run_fences_its_tasks(tmp_path: Path, catalog: Catalog) -> None:
    """`multicam retry --running` while a run is alive (it looked dead from another host): the run's two claimed
    jobs (one rendering, one queued in its worker) lose their lease, so their attempts end fenced without writing
    anything; the run claims them again and each is done exactly once."""
    import threading
    import time

    ds, hold = plan(catalog, tmp_path / "ds", n=2), tmp_path / "hold"
    hold.mkdir()
    (hold / "s000001.hold").touch()
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("s", run_dataset(
        ds, "test-synthetic", workers=1, backend_options={"hold_dir": str(hold)}, progress=False)), daemon=True)
    t.start()
    end = time.monotonic() + 120
    while not list(hold.glob("s000001.held.*")) and time.monotonic() < end:
        time.sleep(0.05)
    with JobStore.for_dataset(ds) as store:
        assert sorted(store.requeue_running()) == ["s000001", "s000002"]
    for p in hold.glob("*.held.*"):
        p.unlink()
    t.join(timeout=120)
    s = box["s"]
    assert (s.fenced, s.rendered, s.counts["done"]) == (2, 2, 2)
    with JobStore.for_dataset(ds) as store:
        assert store.event_counts("done") == {"s000001": 1, "s000002": 1}
        assert store.event_counts("claimed") == {"s000001": 2, "s000002": 2}


def test_cleanup_removes_dead_half_scenes_of_other_hosts(tmp_path: Path) -> None:
    import socket

    names = ["s000001.node-b.example.com.123.abcd1234", "s000002.node-b.example.com.124.abcd1234",
             f"s000003.{socket.gethostname()}.{os.getpid()}.abcd1234"]
    for n in names:
        (tmp_path / ".tmp" / n).mkdir(parents=True)
    assert cleanup_tmp(tmp_path) == 0  # not knowing which jobs run, another host's folders are left alone
    assert cleanup_tmp(tmp_path, running={"s000002"}) == 1  # s000002 still runs there; this process is alive
    assert sorted(p.name for p in (tmp_path / ".tmp").iterdir()) == names[1:]


# -- verification ---------------------------------------------------------------------------------------------


def test_verify_accepts_good_output_and_names_each_defect(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=1, cameras=3)
    settings, n_cam = load_settings(ds)
    job = materialize(next(iter_manifest(ds)), settings, n_cam)
    good = tmp_path / "good"
    good.mkdir()
    render_scene(get_backend("test-synthetic"), job, good)
    assert verify_scene_dir(job, good) == []
    info = probe_video(good / "videos" / "cam02.mp4")
    assert (info.frames, info.width, info.height) == (6, 32, 32)

    def broken(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(good, d)
        return d

    d = broken("missing")
    (d / "videos" / "cam03.mp4").unlink()
    assert verify_scene_dir(job, d) == ["videos/cam03.mp4: missing"]

    d = broken("short")
    encode_mp4(d / "videos" / "cam01.mp4", [np.zeros((32, 32, 3), np.uint8)] * 5, fps=15)
    assert verify_scene_dir(job, d) == ["videos/cam01.mp4: 5 frames, expected 6"]

    d = broken("size")
    encode_mp4(d / "videos" / "cam01.mp4", [np.zeros((16, 32, 3), np.uint8)] * 6, fps=15)
    assert verify_scene_dir(job, d) == ["videos/cam01.mp4: 32x16, expected 32x32"]

    d = broken("corrupt")
    (d / "videos" / "cam02.mp4").write_bytes(b"\x00" * 100)
    [msg] = verify_scene_dir(job, d)
    assert msg.startswith("videos/cam02.mp4: cannot decode")

    d = broken("extra")
    shutil.copy(d / "videos" / "cam01.mp4", d / "videos" / "cam04.mp4")
    assert verify_scene_dir(job, d) == ["videos/: unexpected files ['cam04.mp4']"]

    d = broken("poses")
    poses, names = read_camera_json(d / CAMERA_FILE)
    poses[3, 1, 3, 0] += 5.0  # frame3, cam02 moved 5 cm
    write_camera_json(d / CAMERA_FILE, poses, names)
    [msg] = verify_scene_dir(job, d)
    assert "poses differ from the plan" in msg and "frame3.cam02" in msg

    d = broken("json")
    (d / CAMERA_FILE).write_text("{not json")
    [msg] = verify_scene_dir(job, d)
    assert "camera_extrinsics.json: not valid JSON" in msg

    d = broken("scene")
    (d / "scene.json").unlink()
    assert verify_scene_dir(job, d) == ["scene.json: missing"]


# -- backends ---------------------------------------------------------------------------------------------


def test_backend_registry() -> None:
    b = get_backend("test-synthetic")
    assert isinstance(b, Backend) and b.name == "test-synthetic"
    assert b.resources() == {"num_cpus": 1.0, "num_gpus": 0.0}
    with pytest.raises(UnknownBackendError, match="unknown backend 'nope'; available: blender, test-noop"):
        get_backend("nope")


# -- local executor ------------------------------------------------------------------------------------------


def test_local_run_retries_records_failures_and_resumes(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=5)
    opts = {"fail_once": ["s000002"], "fail_always": ["s000004"], "crash": ["s000005"],
            "state_dir": str(tmp_path / "state"), "log_path": str(tmp_path / "renders.log")}
    s = run_dataset(ds, "test-synthetic", workers=2, backend_options=opts, progress=False, max_attempts=2,
                    backoff_s=0.01)
    assert s.counts == {"pending": 0, "running": 0, "done": 4, "failed": 1}
    assert (s.rendered, s.failed) == (4, 1)
    with JobStore.for_dataset(ds) as store:
        rows = {r.job_id: r for r in store.rows()}
    assert rows["s000002"].attempts == 2 and rows["s000002"].state == "done"
    assert rows["s000005"].attempts == 2 and rows["s000005"].state == "done"  # worker died once
    assert rows["s000004"].state == "failed" and "synthetic failure (fail_always)" in (rows["s000004"].last_error or "")
    with JobStore.for_dataset(ds) as store:
        retry_errors = store.conn.execute("SELECT job_id, detail FROM events WHERE event='retry'").fetchall()
    assert ("s000005", "worker process died (exit code 17) while rendering") in retry_errors
    assert_event_sequences(ds)
    settings, n_cam = load_settings(ds)
    for e in iter_manifest(ds):
        folder = ds / e.output_dir
        if e.job_id == "s000004":
            assert not folder.exists()
        else:
            assert verify_scene_dir(materialize(e, settings, n_cam), folder) == []
            assert json.loads((folder / "scene.json").read_text())["job_id"] == e.job_id
            assert (ds / "plan" / "specs" / f"scene{e.scene_index}.json").is_file()
    assert not any((ds / ".tmp").iterdir())

    # Status and retry via the CLI, then a second run renders only the failed job.
    runner = CliRunner()
    res = runner.invoke(app, ["status", str(ds)])
    assert res.exit_code == 0 and "failed s000004" in res.output and "synthetic failure" in res.output
    res = runner.invoke(app, ["retry", str(ds)])
    assert res.exit_code == 0 and "re-queued 1 failed job(s)" in res.output
    s2 = run_dataset(ds, "test-synthetic", workers=1, progress=False,
                     backend_options={"log_path": str(tmp_path / "renders.log")})
    assert (s2.to_run, s2.rendered) == (1, 1) and s2.counts["done"] == 5
    assert events(ds, "done") == {f"s00000{i}": 1 for i in range(1, 6)}
    rendered = [line.split()[0] for line in (tmp_path / "renders.log").read_text().splitlines()]
    assert sorted(rendered) == [f"s00000{i}" for i in range(1, 6)]
    s3 = run_dataset(ds, "test-synthetic", progress=False)
    assert s3.to_run == 0 and s3.rendered == 0


def test_time_limit_kills_the_worker(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=2)
    s = run_dataset(ds, "test-synthetic", workers=1, backend_options={"sleep_s": 30}, job_timeout_s=1.0,
                    progress=False, max_attempts=1)
    assert s.counts["failed"] == 2
    with JobStore.for_dataset(ds) as store:
        assert all("time limit of 1 s exceeded" in (r.last_error or "") for r in store.rows())
    assert not any((ds / "train").rglob("scene*"))
    # A worker killed at its time limit may not have made the work folder yet (on a busy machine the limit can
    # fall before the job starts writing), so .tmp may not exist; what must hold is that nothing is left in it.
    tmp = ds / ".tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


def test_backend_that_cannot_start_stops_the_run_without_failing_jobs(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=3)
    with pytest.raises(RunError, match="backend 'test-synthetic' cannot start: TypeError"):
        run_dataset(ds, "test-synthetic", backend_options={"no_such_option": 1}, progress=False)
    with JobStore.for_dataset(ds) as store:
        assert store.counts() == {"pending": 3, "running": 0, "done": 0, "failed": 0}
        assert all(r.attempts == 0 for r in store.rows())


def test_render_cli_runs_and_reports(tmp_path: Path, catalog: Catalog) -> None:
    ds = plan(catalog, tmp_path / "ds", n=2)
    runner = CliRunner()
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC])
    assert res.exit_code == 0, res.output
    assert "rendered 2, found complete 0, failed 0" in res.output
    res = runner.invoke(app, ["render", str(ds), "--backend", "nope"])
    assert res.exit_code == 2 and "--backend: must be one of" in res.output
    res = runner.invoke(app, ["render", str(ds), "--backend", "test-synthetic", "--executor", "slurm"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["status", str(ds), "--json"])
    assert json.loads(res.output)["counts"]["done"] == 2
    res = runner.invoke(app, ["status", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "has no plan" in res.output


def test_completed_folder_found_on_restart_is_adopted_not_rerendered(tmp_path: Path, catalog: Catalog) -> None:
    """A run killed after the rename but before recording 'done' leaves a complete folder and a 'running'
    row; the next run verifies and adopts it."""
    ds = plan(catalog, tmp_path / "ds", n=2)
    settings, n_cam = load_settings(ds)
    entry = next(iter_manifest(ds))
    final = ds / entry.output_dir
    render_scene(get_backend("test-synthetic"), materialize(entry, settings, n_cam), final)
    stamp = {p: p.stat().st_mtime_ns for p in final.rglob("*")}
    s = run_dataset(ds, "test-synthetic", progress=False)
    assert (s.already, s.rendered) == (1, 1)
    assert {p: p.stat().st_mtime_ns for p in final.rglob("*")} == stamp
    assert os.listdir(ds / ".tmp") == []


def test_plan_cli_writes_specs_and_rejects_bad_settings(tmp_path: Path) -> None:
    cat = tmp_path / "c.yaml"
    cat.write_text(yaml.safe_dump(CATALOG))
    out = tmp_path / "ds"
    runner = CliRunner()
    args = ["plan", "--catalog", str(cat), "--scenes", "3", "--seed", "8", "--out", str(out), "--width", "32",
            "--height", "32", "--frames", "4", "--cameras", "2"]
    res = runner.invoke(app, [*args, "--write-specs"])
    assert res.exit_code == 0, res.output
    assert "planned 3 scenes" in res.output and "wrote 3 scene specs" in res.output
    settings, n_cam = load_settings(out)
    assert (settings.width, settings.frames, n_cam) == (32, 4, 2)
    for e in iter_manifest(out):
        spec = json.loads((out / "plan" / "specs" / f"scene{e.scene_index}.json").read_text())
        assert spec == json.loads(json.dumps(materialize(e, settings, n_cam).scene))
        assert sorted(spec["cameras"]) == ["cam01", "cam02"]
    res = runner.invoke(app, args)  # same plan again: a no-op
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*args[:-2], "--cameras", "3"])
    assert res.exit_code == 2 and "already holds a different plan (cameras: planned 2, now 3)" in res.output
    res = runner.invoke(app, ["plan", "--catalog", str(cat), "--scenes", "3", "--seed", "8", "--out",
                              str(tmp_path / "x"), "--width", "8"])
    assert res.exit_code == 2 and "--width: Input should be greater than or equal to 16" in res.output
    assert not (tmp_path / "x").exists()
