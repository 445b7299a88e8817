"""The Ray executor on a multi-node cluster on one machine (Ray's own harness, ``ray.cluster_utils.Cluster``:
one raylet per node, each with its own CPUs and custom resources). Deselect with -m 'not ray'.

Nothing here waits on time: a job is held in flight by the test backend's ``hold_dir`` hook (the worker renames
``<job>.hold`` to ``<job>.held.<pid>.<node>`` and waits until that file is deleted), so the test knows which job
runs on which node when it removes a node, adds one or kills the coordinator.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_jobs.planner import iter_manifest, load_settings, materialize, plan_dataset
from render_jobs.runner import SHARE_MARKER, RunSummary, _ray_execute, run_dataset, share_problem
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore
from render_jobs.verify import verify_scene_dir
from scene_catalog.loader import load_catalog

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.ray

#: Every job asks for one of these: the head node (the driver's) has none, so jobs run on the worker nodes only.
RENDER = {"render": 1.0}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Head (no CPUs: the coordinator's node) + two heterogeneous render nodes: 1 and 2 job slots."""
    c = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for cpus in (1, 2):
        c.add_node(num_cpus=cpus, resources={"render": float(cpus)})
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield c
    ray.shutdown()
    c.shutdown()


def plan(tmp_path: Path, n: int) -> Path:
    catalog = {"environments": [{"id": "yard", "asset": "builtin:plaza", "anchors": [{"location_cm": [0, 0, 0]}]}],
               "characters": [{"id": "eve", "asset": "builtin:m"}],
               "animations": [{"id": "idle", "asset": "builtin:walk", "length_frames": 40, "loopable": True}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(catalog))
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(tmp_path / "c.yaml"), n, 7, ds, RenderSettings(width=32, height=32, frames=3, samples=1),
                 n_cameras=2)
    return ds


def job_ids(n: int) -> list[str]:
    return [f"s{i:06d}" for i in range(1, n + 1)]


def wait_for(cond: Callable[[], Any], what: str, limit_s: float = 120.0) -> Any:
    """Poll ``cond`` until it returns something true (the limit only keeps a broken run from hanging CI)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def held(hold_dir: Path) -> dict[str, tuple[int, str]]:
    """job_id -> (pid, node) of every job held in flight now."""
    out = {}
    for p in hold_dir.glob("*.held.*"):
        job, _, pid, node = p.name.split(".", 3)
        out[job] = (int(pid), node)
    return out


def wait_held(hold_dir: Path, count: int) -> dict[str, tuple[int, str]]:
    """Wait until ``count`` jobs are held in flight; return where (see :func:`held`)."""
    return wait_for(lambda: (lambda h: h if len(h) == count else None)(held(hold_dir)), f"{count} jobs in flight")


def release(hold_dir: Path) -> None:
    for p in hold_dir.glob("*.hold"):
        p.unlink()
    for p in hold_dir.glob("*.held.*"):
        p.unlink(missing_ok=True)


def render_nodes() -> dict[str, int]:
    """node_id -> job slots (the ``render`` resource) of the alive render nodes."""
    return {n["NodeID"]: int(n["Resources"]["render"]) for n in ray.nodes()
            if n["Alive"] and "render" in n["Resources"]}


def run_in_thread(**kw: Any) -> tuple[Any, dict[str, RunSummary]]:
    import threading

    box: dict[str, RunSummary] = {}
    t = threading.Thread(target=lambda: box.setdefault("s", run_dataset(**kw)), daemon=True)
    t.start()
    return t, box


def ray_args(ds: Path, cluster: Any, **opts: Any) -> dict[str, Any]:
    return {"dataset_dir": ds, "backend_name": "test-synthetic", "executor": "ray", "address": cluster.address,
            "ray_resources": RENDER, "backend_options": opts, "progress": False, "backoff_s": 0.0}


def hashes(ds: Path) -> dict[str, str]:
    """sha256 of every file under train/ (relative path -> hex)."""
    return {str(p.relative_to(ds)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((ds / "train").rglob("*")) if p.is_file()}


def check_complete(ds: Path, n: int) -> dict[str, list[tuple[str, str, str | None, str | None]]]:
    """Every job done exactly once (one ``done`` event), every scene folder verified, nothing else in train/;
    returns each job's events."""
    settings, n_cam = load_settings(ds)
    entries = list(iter_manifest(ds))
    with JobStore.for_dataset(ds) as store:
        assert store.counts() == {"pending": 0, "running": 0, "done": n, "failed": 0}
        assert store.event_counts("done") == dict.fromkeys(job_ids(n), 1)
        events = {j: store.events(j) for j in job_ids(n)}
    for e in entries:
        assert verify_scene_dir(materialize(e, settings, n_cam), ds / e.output_dir) == []
    scene_dirs = {p.relative_to(ds).as_posix() for p in (ds / "train").glob("*/*")}
    assert scene_dirs == {e.output_dir for e in entries}  # no half scene, no folder moved aside
    return events


def done_node(events: list[tuple[str, str, str | None, str | None]]) -> str | None:
    return next(node for _, ev, node, _ in events if ev == "done")


def test_jobs_spread_over_the_nodes_and_workers_are_reused(tmp_path: Path, cluster: Any) -> None:
    nodes = render_nodes()
    slots = sum(nodes.values())
    ds, hold, log = plan(tmp_path, 2 * slots), tmp_path / "hold", tmp_path / "log.txt"
    hold.mkdir()
    for j in job_ids(slots):  # the first `slots` jobs fill every slot of every node before any finishes
        (hold / f"{j}.hold").touch()
    t, box = run_in_thread(**ray_args(ds, cluster, hold_dir=str(hold), log_path=str(log)), workers=1)
    where = wait_held(hold, slots)
    release(hold)
    t.join()
    assert box["s"].rendered == 2 * slots
    events = check_complete(ds, 2 * slots)
    # `workers=1` but every slot of the cluster got a job: one per slot, held where Ray placed it
    assert sorted(node for _, node in where.values()) == sorted(n for n, k in nodes.items() for _ in range(k))
    assert {done_node(events[j]) for j in where} == set(nodes)  # the store records the node of each job
    assert all(done_node(events[j]) == where[j][1] for j in where)
    # one backend per Ray worker process, reused: fewer processes than jobs rendered
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(log.read_text().splitlines()) == 2 * slots and len(pids) < 2 * slots


def test_a_failed_job_is_retried_on_another_node(tmp_path: Path, cluster: Any) -> None:
    n = 4
    ds = plan(tmp_path, n)
    s = run_dataset(**ray_args(ds, cluster, fail_once="*", state_dir=str(tmp_path / "state")), workers=1,
                    max_attempts=2)
    assert s.retried == n and s.rendered == n
    events = check_complete(ds, n)
    for j in job_ids(n):
        failed_on = [node for _, ev, node, _ in events[j] if ev == "retry"]
        assert len(failed_on) == 1 and failed_on[0] in render_nodes()
        assert done_node(events[j]) not in (None, failed_on[0]), events[j]


def test_a_node_removed_mid_run_loses_nothing(tmp_path: Path, cluster: Any) -> None:
    doomed = cluster.add_node(num_cpus=1, resources=RENDER)
    cluster.wait_for_nodes()
    slots = sum(render_nodes().values())
    n = slots + 3
    ds, hold = plan(tmp_path, n), tmp_path / "hold"
    hold.mkdir()
    for j in job_ids(n)[2:]:  # two jobs finish first; then every slot holds a job
        (hold / f"{j}.hold").touch()
    t, box = run_in_thread(**ray_args(ds, cluster, hold_dir=str(hold)), workers=1)
    where = wait_held(hold, slots)
    with JobStore.for_dataset(ds) as store:
        finished = [ds / r.output_dir for r in store.rows("done")]
    assert len(finished) == 2
    prefixes = tuple(f"{f.relative_to(ds).as_posix()}/" for f in finished)
    before = {k: v for k, v in hashes(ds).items() if k.startswith(prefixes)}
    lost = [j for j, (_, node) in where.items() if node == doomed.node_id]
    assert len(lost) == 1
    cluster.remove_node(doomed)  # its task dies mid-render; Ray runs it again elsewhere
    release(hold)
    t.join()
    events = check_complete(ds, n)
    assert box["s"].failed == 0 and box["s"].retried == 0  # no manual retry, no failed attempt recorded
    assert done_node(events[lost[0]]) != doomed.node_id
    after = hashes(ds)
    assert {k: after[k] for k in before} == before  # nothing finished was rewritten
    # the dead node's half-rendered temp folder is not in the dataset; the next start removes it
    run_dataset(**ray_args(ds, cluster))
    assert not any((ds / ".tmp").iterdir())
    assert hashes(ds) == after


def test_a_node_that_joins_mid_run_gets_work(tmp_path: Path, cluster: Any) -> None:
    slots = sum(render_nodes().values())
    n = slots + 2
    ds, hold = plan(tmp_path, n), tmp_path / "hold"
    hold.mkdir()
    for j in job_ids(n):
        (hold / f"{j}.hold").touch()
    t, box = run_in_thread(**ray_args(ds, cluster, hold_dir=str(hold)), workers=1)
    wait_held(hold, slots)
    new = cluster.add_node(num_cpus=1, resources=RENDER)
    try:
        # every old slot is held, so the job the coordinator adds for the new slot can only run there
        job = wait_for(lambda: next((j for j, (_, node) in held(hold).items() if node == new.node_id), None),
                       "a job on the new node")
        release(hold)
        t.join()
        events = check_complete(ds, n)
        assert done_node(events[job]) == new.node_id
    finally:
        release(hold)
        cluster.remove_node(new)


def test_sigkilled_coordinator_resumes_and_its_stale_task_is_fenced(tmp_path: Path, cluster: Any) -> None:
    n = 5
    ds, hold, stale_hold = plan(tmp_path, n), tmp_path / "hold", tmp_path / "stale_hold"
    hold.mkdir()
    stale_hold.mkdir()
    log = tmp_path / "log.txt"
    for j in job_ids(3):
        (hold / f"{j}.hold").touch()
    cmd = [sys.executable, "-m", "multicam_app", "render", str(ds), "--backend", "test-synthetic", "--executor",
           "ray", "--address", cluster.address, "--ray-resources", json.dumps(RENDER), "--no-progress",
           "-o", f"hold_dir={hold}", "-o", f"log_path={log}"]
    coord = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first = wait_held(hold, 3)
    finally:
        coord.send_signal(signal.SIGKILL)
        coord.wait()
    with JobStore.for_dataset(ds) as store:
        running = {r.job_id for r in store.rows("running")}
        lease = {j: int(store.conn.execute("SELECT lease FROM jobs WHERE job_id=?", (j,)).fetchone()[0])
                 for j in running}
        assert set(first) <= running and all(store.lease_holds(j, lease[j]) for j in running)
        n_done = store.counts()["done"]
    # Ray ends the tasks of a driver that died (their worker processes go)
    wait_for(lambda: not any(_alive(pid) for pid, _ in first.values()), "the dead coordinator's workers to end")

    # A task of the dead coordinator that Ray could not stop (a partitioned node): it renders s000001 under the
    # old lease, held until the new run has finished the job.
    victim = "s000001"
    (stale_hold / f"{victim}.hold").touch()
    entry = next(e for e in iter_manifest(ds) if e.job_id == victim)
    code = ("import json, sys; from render_jobs.execute import JobContext; from render_jobs.schema import "
            "ManifestEntry; e = ManifestEntry.model_validate_json(sys.argv[2]); "
            "o = JobContext(sys.argv[1], 'test-synthetic', {'hold_dir': sys.argv[3], 'log_path': sys.argv[4]})"
            ".execute(e, int(sys.argv[5])); print(json.dumps([o.kind, o.error]))")
    stale = subprocess.Popen([sys.executable, "-c", code, str(ds), entry.model_dump_json(), str(stale_hold),
                              str(tmp_path / "stale_log.txt"), str(lease[victim])], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: held(stale_hold), "the stale task in flight")
        release(hold)  # nothing of the first run holds a job any more
        s = run_dataset(**ray_args(ds, cluster, hold_dir=str(hold), log_path=str(log)))
        assert s.rendered + s.already == n - n_done and s.failed == 0
        events = check_complete(ds, n)
        assert any(ev == "requeued" and "killed" in (d or "") for _, ev, _, d in events[victim])
        done_hashes = hashes(ds)
        release(stale_hold)  # the stale task finishes its render now
        out, _ = stale.communicate(timeout=120)
    finally:
        stale.kill()
    kind, error = json.loads(out)
    assert kind == "fenced" and f"lease {lease[victim]}" in error
    assert (tmp_path / "stale_log.txt").read_text().split()[0] == victim  # it did render, up to the fence
    assert hashes(ds) == done_hashes  # nothing overwritten
    assert not any((ds / ".tmp").iterdir())  # and its temp folder is gone
    with JobStore.for_dataset(ds) as store:
        assert store.event_counts("done") == dict.fromkeys(job_ids(n), 1)  # nothing counted twice


def _alive(pid: int) -> bool:
    from render_jobs.store import pid_alive

    return pid_alive(pid)


def test_gpu_jobs_take_one_gpu_each_and_keep_their_worker(tmp_path: Path, cluster: Any) -> None:
    """Unreal's placement (one GPU per job, a custom resource for GPU nodes): the jobs run only on the GPU node,
    one at a time on its one GPU, all in one Ray worker process (so an editor session would be kept; Ray's
    default for GPU tasks is a fresh process per task)."""
    gpu_node = cluster.add_node(num_cpus=2, num_gpus=1, resources={"gpu_render": 1.0})
    try:
        ds, log = plan(tmp_path, 3), tmp_path / "log.txt"
        args = {**ray_args(ds, cluster, num_gpus=1, log_path=str(log)), "ray_resources": {"gpu_render": 1.0}}
        s = run_dataset(**args)
        assert s.rendered == 3
        events = check_complete(ds, 3)
        assert {done_node(e) for e in events.values()} == {gpu_node.node_id}
        assert len({line.split()[1] for line in log.read_text().splitlines()}) == 1
    finally:
        cluster.remove_node(gpu_node)


def test_a_node_that_does_not_see_the_dataset_fails_fast(tmp_path: Path, cluster: Any) -> None:
    ds = plan(tmp_path, 1)
    (ds / SHARE_MARKER).write_text(json.dumps({"token": "this-run"}))
    assert share_problem(str(ds), "this-run", "n1") is None
    # What a node without the shared mount sees at the dataset's path: nothing, or a local folder with the same
    # plan (a copy made by hand) but not the coordinator's marker.
    missing = share_problem(str(tmp_path / "nowhere"), "this-run", "n1", wait_s=0.0)
    assert missing is not None and "does not exist here" in missing and "same path" in missing
    local = tmp_path / "local_copy"
    shutil.copytree(ds, local, ignore=shutil.ignore_patterns(SHARE_MARKER, "jobs.sqlite*"))
    entry = next(iter(iter_manifest(ds)))
    task = ray.remote(_ray_execute).options(num_cpus=1, resources=RENDER)
    out = ray.get(task.remote(str(local), "test-synthetic", "{}", "this-run", entry, 1))
    assert out.kind == "fatal" and out.node in render_nodes()
    assert f"node {out.node}" in (out.error or "") and f"does not see the dataset folder {local}" in out.error
    assert not list((local / "train").glob("*/*")) and not (local / ".tmp").exists()  # nothing rendered into it
    os.remove(ds / SHARE_MARKER)
