"""``multicam plan``, ``multicam render``, ``multicam status``, ``multicam retry``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from multicam.errors import (
    MAX_CAMERAS,
    MAX_FRAMES,
    MAX_SCENES,
    DatasetError,
    check_count,
    check_out_folder,
    check_seed,
    fail,
    frame_size,
)
from scene_catalog.cli import asset_root_option
from trajectory.profiles import DEFAULT_CAMERA_PROFILE, PROFILE_HELP, profile_error


def _parse_options(options: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


#: RenderSettings fields whose option is not the field's name.
_SETTING_OPTIONS = {"extra_passes": "--pass", "depth_of_field": "--dof", "keep_frames": "--keep-frames"}


def fail_settings(exc: Any, options: dict[str, str] | None = None) -> None:
    """One line for a RenderSettings validation error, naming the command-line option (``--pass``, not the field
    ``extra_passes``); ``options`` overrides names for one command (``generate``: width -> ``--resolution``)."""
    err = exc.errors()[0]
    field = str(err["loc"][0])
    names = {**_SETTING_OPTIONS, **(options or {})}
    fail(f"{names.get(field, '--' + field.replace('_', '-'))}: {err['msg']} (got {err.get('input')!r})")


def report_run(summary: Any) -> None:
    """Print a run's outcome and every failed job's error; exit 130 if it was interrupted by Ctrl-C, 143 by
    SIGTERM (the shell conventions, 128 + signal number)."""
    c = summary.counts
    typer.echo(f"rendered {summary.rendered}, found complete {summary.already}, failed {summary.failed} "
               f"in {summary.elapsed_s:.1f} s; dataset: {c['done']} done, {c['pending']} pending, "
               f"{c['running']} running, {c['failed']} failed")
    for job_id, err in summary.errors.items():
        typer.echo(f"  failed {job_id}: {err}", err=True)
    if summary.interrupted:
        typer.echo("interrupted; run the same command again to resume", err=True)
        raise typer.Exit(143 if summary.interrupted_by == "SIGTERM" else 130)


def plan(
    catalog: list[Path] = typer.Option(..., "--catalog", help="Catalog file(s); repeat to merge several."),
    scenes: int = typer.Option(..., "--scenes", help="Number of scenes (jobs) to plan."),
    seed: int = typer.Option(..., "--seed", help="Dataset seed (composition and camera trajectories)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to create (or re-plan identically)."),
    resolution: int | None = typer.Option(None, "--resolution", help="Square frame size in pixels (the same as "
                                          "--width N --height N; default 1280)."),
    width: int | None = typer.Option(None, "--width", help="Render width in pixels (default 1280)."),
    height: int | None = typer.Option(None, "--height", help="Render height in pixels (default 1280)."),
    frames: int = typer.Option(81, "--frames", help="Frames per video (>= 2)."),
    fps: float = typer.Option(15.0, "--fps", help="Video frame rate."),
    samples: int = typer.Option(64, "--samples", help="Render samples (Cycles) / spatial samples (UE MRQ)."),
    cameras: int = typer.Option(10, "--cameras", help="Cameras per scene."),
    camera_profile: str = typer.Option(DEFAULT_CAMERA_PROFILE, "--camera-profile", help=PROFILE_HELP),
    extra_passes: list[str] = typer.Option([], "--pass", help="Extra outputs: depth, mask (repeatable)."),
    check_assets: bool = typer.Option(True, "--check-assets/--no-check-assets",
                                      help="Check that local asset files exist."),
    write_specs: bool = typer.Option(False, "--write-specs", help="Write every plan/specs/scene{k}.json now "
                                     "(default: each is written when its job runs)."),
    asset_roots: list[Path] = asset_root_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the --write-specs progress bar."),
) -> None:
    """Plan N render jobs from a catalog into a dataset folder (manifest, job store, folder layout)."""
    from pydantic import ValidationError

    from render_jobs.planner import plan_dataset, read_plan, write_scene_specs
    from render_jobs.schema import RenderSettings
    from scene_catalog.cli import _load

    check_seed(seed)
    check_count(scenes, "--scenes", 1, MAX_SCENES)
    check_count(cameras, "--cameras", 1, MAX_CAMERAS)
    check_count(frames, "--frames", 2, MAX_FRAMES)
    if (profile_msg := profile_error(camera_profile)) is not None:
        fail(profile_msg)
    check_out_folder(out)
    width, height = frame_size(resolution, width, height, (1280, 1280))
    try:
        settings = RenderSettings.model_validate(
            {"width": width, "height": height, "frames": frames, "fps": fps, "samples": samples,
             "extra_passes": extra_passes}
        )
    except ValidationError as exc:
        fail_settings(exc, None if resolution is None else {"width": "--resolution", "height": "--resolution"})
    cat = _load(catalog, check_assets, asset_roots)
    try:
        manifest = plan_dataset(cat, scenes, seed, out, settings, n_cameras=cameras, camera_profile=camera_profile)
    except DatasetError as exc:
        fail(str(exc))
    info = read_plan(out)
    typer.echo(f"planned {scenes} scenes into {out} ({manifest}) in {info['plan_seconds']:.2f} s")
    for kind, s in info["spread"].items():
        typer.echo(f"  {kind}: {s['items']} used {s['min']}..{s['max']} times each")
    typer.echo("  folders: " + ", ".join(f"{k} {v}" for k, v in sorted(info["folders"].items())))
    if write_specs:
        n = write_scene_specs(out, progress=progress)
        typer.echo(f"wrote {n} scene specs to {out / 'plan' / 'specs'}")


def parse_ray_resources(text: str | None) -> dict[str, float] | None:
    """``--ray-resources '{"render_node": 1}'`` -> a dict of custom Ray resource amounts (exit 2 when it is not a
    JSON object of names to finite numbers > 0)."""
    import math

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--ray-resources: not JSON ({exc.msg}); expected an object such as '{{\"render_node\": 1}}'")
    if not isinstance(value, dict) or not value:
        fail(f"--ray-resources: expected a JSON object of resource name -> amount, got {text!r}")
    for name, amount in value.items():
        if name in ("CPU", "GPU", "memory") or not name:
            fail(f"--ray-resources: {name!r} is not a custom resource (CPUs and GPUs come from the backend: "
                 "-o num_cpus=N / -o num_gpus=N)")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) \
                or amount <= 0:
            fail(f"--ray-resources: {name!r} must be a finite number > 0, got {amount!r}")
    return {str(k): float(v) for k, v in value.items()}


def check_executor(executor: str) -> None:
    """Fail with a one-line error for an unknown executor, or for ``ray`` when Ray is not installed."""
    import importlib.util

    from render_jobs.runner import EXECUTORS

    if executor not in EXECUTORS:
        fail(f"--executor: must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        fail("--executor ray: Ray is not installed; install the cluster extra: pip install -e \".[cluster]\" "
             "(or pip install 'ray[default]>=2.30')")


def render(
    dataset: Path = typer.Argument(..., help="A planned dataset folder."),
    backend: str = typer.Option(..., "--backend", help="Renderer backend: blender, unreal (test-* for tests)."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    workers: int = typer.Option(1, "--workers", help="Parallel jobs (local processes / Ray tasks in flight)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    ray_resources: str | None = typer.Option(None, "--ray-resources", help="Custom Ray resources every job asks "
                                             "for, as JSON: '{\"render_node\": 1}' (Ray executor only)."),
    timeout_s: float | None = typer.Option(None, "--timeout", help="Per-job time limit in seconds."),
    max_attempts: int = typer.Option(3, "--max-attempts", help="Tries per job before it is marked failed."),
    backoff_s: float = typer.Option(1.0, "--backoff", help="Seconds before the first retry (doubles each try)."),
    option: list[str] = typer.Option([], "--option", "-o", help="Backend option KEY=VALUE (VALUE as JSON if it "
                                      "parses), repeatable."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Render every job that is not done; resumable (run it again after a crash or Ctrl-C).

    Example: multicam render /shared/mcv --backend blender --executor ray --address HEAD:6379
    --ray-resources '{"render_node": 1}' -o num_cpus=8
    """
    from render_jobs.backends import BACKENDS
    from render_jobs.runner import RunError, run_dataset

    check_executor(executor)
    if backend not in BACKENDS:
        fail(f"--backend: must be one of {', '.join(sorted(BACKENDS))}, got {backend!r}")
    if workers < 1:
        fail(f"--workers: must be >= 1, got {workers}")
    if max_attempts < 1:
        fail(f"--max-attempts: must be >= 1, got {max_attempts}")
    if timeout_s is not None and not 0 < timeout_s < float("inf"):
        fail(f"--timeout: must be a finite number > 0, got {timeout_s}")
    if not 0 <= backoff_s < float("inf"):
        fail(f"--backoff: must be a finite number >= 0 seconds, got {backoff_s}")
    custom = parse_ray_resources(ray_resources)
    if custom and executor != "ray":
        fail("--ray-resources: applies to --executor ray only")
    options = _parse_options(option)
    try:
        summary = run_dataset(dataset, backend, executor=executor, workers=workers, address=address,
                              backend_options=options, job_timeout_s=timeout_s, progress=progress,
                              max_attempts=max_attempts, backoff_s=backoff_s, ray_resources=custom)
    except DatasetError as exc:
        fail(str(exc))
    except RunError as exc:
        fail(str(exc), code=1)
    report_run(summary)
    if summary.counts["failed"]:
        typer.echo("some jobs failed: see `multicam status`, then `multicam retry` to re-queue them", err=True)
        raise typer.Exit(1)


def status(
    dataset: Path = typer.Argument(..., help="A planned dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print job counts, the running jobs (rendering now, or claimed and queued in a worker) and the failed jobs
    with their last error."""
    from render_jobs.planner import iter_manifest, read_plan
    from render_jobs.repair import damaged_done, describe_damaged
    from render_jobs.runner import check_store_matches_plan
    from render_jobs.store import STORE_FILE, JobStore

    try:
        plan_info = read_plan(dataset)
        # read-only (nothing written, works on a dataset the user cannot write) unless there is no store yet
        readonly = (dataset / STORE_FILE).exists() or not os.access(dataset, os.W_OK)
        with JobStore.for_dataset(dataset, readonly=readonly) as store:
            entries = {e.job_id: e for e in iter_manifest(dataset)}
            check_store_matches_plan(store, dataset, entries)
            damaged = damaged_done(store, dataset, entries, int(plan_info.get("n_cameras", plan_info["cameras"])))
            counts = store.counts()
            ext_counts = store.counts("extend")  # multicam extend's jobs (docs/extend.md)
            split = store.running_split()
            failed = store.rows("failed")
            running = store.rows("running")
    except DatasetError as exc:
        fail(str(exc))
    if damaged:
        typer.echo(f"error: {describe_damaged(dataset, damaged)}; `multicam repair {dataset}` re-queues them "
                   "(`multicam render` does it itself)", err=True)
    if as_json:
        typer.echo(json.dumps({"counts": counts, "extension_counts": ext_counts, "running_split": split, "damaged": [
            {"job_id": d.job_id, "output_dir": d.output_dir, "missing": d.missing} for d in damaged], "failed": [
            {"job_id": r.job_id, "output_dir": r.output_dir, "attempts": r.attempts, "error": r.last_error}
            for r in failed], "running": [{"job_id": r.job_id, "owner": r.owner, "started_at": r.started_at}
                                          for r in running]}, indent=1))
        raise typer.Exit(1 if damaged else 0)
    total = sum(counts.values())
    parts = [f"{k} {v}" + (f" (rendering {split['rendering']}, queued in workers {split['queued']})"
                            if k == "running" and v else "") for k, v in counts.items()]
    typer.echo(f"{dataset}: {total} jobs (seed {plan_info['seed']}), " + ", ".join(parts))
    if any(ext_counts.values()):
        typer.echo("  extension jobs (multicam extend): " + ", ".join(f"{k} {v}" for k, v in ext_counts.items()))
    for r in running:
        what = "rendering" if r.started_at is not None else "queued   "
        typer.echo(f"  {what} {r.job_id} ({r.output_dir}) owner {r.owner}")
    for r in failed:
        err = (r.last_error or "").strip().splitlines()
        typer.echo(f"  failed {r.job_id} ({r.output_dir}) after {r.attempts} attempt(s): {err[0] if err else ''}")
    if damaged:
        raise typer.Exit(1)


def retry(
    dataset: Path = typer.Argument(..., help="A planned dataset folder."),
    running: bool = typer.Option(False, "--running", help="Also re-queue jobs marked running (for a run that died "
                                 "on another host; refused while their render is alive on this machine; if one "
                                 "still runs elsewhere, its tasks for them are fenced and their work redone)."),
) -> None:
    """Re-queue failed jobs (attempts reset) so that the next `multicam render` runs them."""
    from render_jobs.planner import read_plan
    from render_jobs.runner import check_store_matches_plan
    from render_jobs.store import JobStore, check_writable

    try:
        read_plan(dataset)
        check_writable(dataset)
        with JobStore.for_dataset(dataset) as store:
            check_store_matches_plan(store, dataset)
            live = store.live_running() if running else []
            if live:
                job_id, owner = live[0]
                fail(f"--running: {len(live)} running job(s) belong to a live process (first {job_id}, owner "
                     f"{owner}): a render is still going; stop it (Ctrl-C or kill {owner.rpartition(':')[2]}) "
                     "and it gives its jobs back itself")
            ids = store.retry_failed()
            extra = store.requeue_running() if running else []
    except DatasetError as exc:
        fail(str(exc))
    typer.echo(f"re-queued {len(ids)} failed job(s)" + (f" and {len(extra)} running job(s)" if running else ""))


def register(app: typer.Typer) -> None:
    app.command("plan", epilog=("Example: multicam plan --catalog scene_catalog/demo_catalog.yaml --out "
                              "ds --scenes 100 --seed 0 --resolution 1280"))(plan)
    app.command("render", epilog="Example: multicam render ds --backend blender --workers 2")(render)
    app.command("status", epilog="Example: multicam status ds --json")(status)
    app.command("retry", epilog="Example: multicam retry ds   (then: multicam render ds)")(retry)
