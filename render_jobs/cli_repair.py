"""``multicam repair DATASET``: rebuild a lost or damaged job store from the plan, re-queue damaged scenes."""

from __future__ import annotations

from pathlib import Path

import typer

from multicam.errors import DatasetError, fail


def repair(
    dataset: Path = typer.Argument(..., help="A planned dataset folder."),
    rebuild_store: bool = typer.Option(False, "--rebuild-store", help="Rebuild jobs.sqlite from the plan even when "
                                       "it opens (the old one is moved aside; finished scenes are adopted again)."),
) -> None:
    """Repair a planned dataset without rendering: a missing or damaged jobs.sqlite is rebuilt from the published
    manifest (a damaged one is moved aside, jobs.sqlite.damaged-<time>), finished scenes that lost files (a scene
    folder, a video, the camera file) are re-queued. Then `multicam render DATASET` finishes it.

    Example: multicam repair my_dataset
    """
    from render_jobs.planner import iter_manifest, read_plan
    from render_jobs.repair import damaged_done, requeue_damaged, store_state
    from render_jobs.repair import rebuild_store as rebuild
    from render_jobs.runner import check_store_matches_plan
    from render_jobs.store import JobStore, check_writable

    try:
        plan = read_plan(dataset)
        check_writable(dataset)
        state = store_state(dataset)
        if state != "ok" or rebuild_store:
            n, aside = rebuild(dataset)
            typer.echo(f"rebuilt {dataset / 'jobs.sqlite'} from the plan ({n} jobs"
                       + (f"; the old one is {aside}" if aside else f"; it was {state}") + ")")
        entries = {e.job_id: e for e in iter_manifest(dataset)}
        with JobStore.for_dataset(dataset) as store:
            check_store_matches_plan(store, dataset, entries)
            recovered = store.recover()
            damaged = damaged_done(store, dataset, entries, int(plan.get("n_cameras", plan["cameras"])))
            requeue_damaged(store, damaged)
    except DatasetError as exc:
        fail(str(exc))
    for d in damaged:
        typer.echo(f"re-queued {d}")
    if recovered:
        typer.echo(f"re-queued {len(recovered)} job(s) left running by a killed run")
    if state == "ok" and not rebuild_store and not damaged and not recovered:
        typer.echo(f"{dataset}: nothing to repair")
    else:
        typer.echo(f"run `multicam render {dataset}` to finish it (finished scenes are adopted, not rendered again)")


def register(app: typer.Typer) -> None:
    app.command("repair")(repair)
