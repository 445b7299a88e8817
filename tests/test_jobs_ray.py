"""The Ray executor on a small local Ray instance (deselect with -m 'not ray')."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from render_jobs.planner import iter_manifest, load_settings, materialize, plan_dataset
from render_jobs.runner import run_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore
from render_jobs.verify import verify_scene_dir
from scene_catalog.loader import load_catalog

ray = pytest.importorskip("ray")

CATALOG = {
    "environments": [{"id": "plaza", "asset": "builtin:plaza", "anchors": [{"location_cm": [0, 0, 0]}]},
                     {"id": "room", "asset": "builtin:room", "size": "small", "anchors": [{"location_cm": [0, 0, 0]}]}],
    "characters": [{"id": "ada", "asset": "builtin:m"}],
    "animations": [{"id": "walk", "asset": "builtin:walk", "length_frames": 60, "loopable": True},
                   {"id": "wave", "asset": "builtin:wave", "length_frames": 90}],
}


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.ray
def test_ray_executor_runs_the_plan_with_a_retry(tmp_path: Path, local_ray: None) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CATALOG))
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(tmp_path / "c.yaml"), 6, 4, ds,
                 RenderSettings(width=32, height=32, frames=6, samples=1), n_cameras=3)
    opts = {"fail_once": ["s000003"], "fail_always": ["s000005"], "state_dir": str(tmp_path / "state")}
    s = run_dataset(ds, "test-synthetic", executor="ray", workers=2, backend_options=opts, progress=False,
                    max_attempts=2, backoff_s=0.05)
    assert s.counts == {"pending": 0, "running": 0, "done": 5, "failed": 1}
    assert s.retried == 2 and s.rendered == 5
    with JobStore.for_dataset(ds) as store:
        rows = {r.job_id: r for r in store.rows()}
        assert store.event_counts("done") == {f"s00000{i}": 1 for i in (1, 2, 3, 4, 6)}
        # Ray tasks start when submitted (at most `workers` in flight): one started event per attempt
        assert store.event_counts("started") == store.event_counts("claimed") == {
            f"s00000{i}": 2 if i in (3, 5) else 1 for i in range(1, 7)}
    assert all(r.started_at is not None for r in rows.values())
    assert rows["s000003"].state == "done" and rows["s000003"].attempts == 2
    assert rows["s000005"].state == "failed" and "fail_always" in (rows["s000005"].last_error or "")
    settings, n_cam = load_settings(ds)
    for e in iter_manifest(ds):
        if e.job_id != "s000005":
            assert verify_scene_dir(materialize(e, settings, n_cam), ds / e.output_dir) == []
    # metadata.csv (ReCamMaster's captions file) lists the 5 complete scenes x 3 cameras, not the failed one
    listed = (ds / "metadata.csv").read_text().splitlines()[1:]
    failed_dir = next(e.output_dir for e in iter_manifest(ds) if e.job_id == "s000005")
    assert len(listed) == 15 and not any(r.startswith(failed_dir.removeprefix("train/") + "/") for r in listed)

    # The per-job time limit cancels a task that runs too long.
    with JobStore.for_dataset(ds) as store:
        store.retry_failed()
    s2 = run_dataset(ds, "test-synthetic", executor="ray", workers=1, backend_options={"sleep_s": 60},
                     job_timeout_s=3, progress=False, max_attempts=1)
    assert s2.counts["failed"] == 1
    with JobStore.for_dataset(ds) as store:
        assert "time limit of 3 s exceeded" in (store.get("s000005").last_error or "")
