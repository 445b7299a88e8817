"""``multicam extend``: add synchronized cameras to rendered scenes (see :mod:`render_jobs.extend`)."""

from __future__ import annotations

from pathlib import Path

import typer

from multicam.errors import DatasetError, check_seed, fail


def extend(
    dataset: Path = typer.Argument(..., help="A dataset made by `multicam generate` / `plan` + `render`."),
    cameras: int = typer.Option(..., "--cameras", help="New cameras per scene (cam11, cam12, ... after the "
                                "scene's last camera)."),
    scenes: str | None = typer.Option(None, "--scenes", help="Scene ids of the plan, e.g. 1,3-5 (default: all)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the new cameras' draws (default: the dataset "
                                    "seed); each camera is drawn from (seed, scene, camera)."),
    trajectory: str | None = typer.Option(None, "--trajectory", help="Instead of the profile's choice: a sampler "
                                          "type (pan, tilt, translation, arc, random, static: drawn like the "
                                          "scene's cameras, its profile and start) or a validation preset "
                                          "(pan_right, pan_left, tilt_up, tilt_down, zoom_in, zoom_out, "
                                          "translate_up, translate_down, arc_left, arc_right; see `multicam "
                                          "presets`), placed at the scene's radius facing the character."),
    trajectory_file: Path | None = typer.Option(None, "--trajectory-file", help="A camera_extrinsics.json-format "
                                                "file holding the track to add (with --cam)."),
    cam: str | None = typer.Option(None, "--cam", help="The camera of --trajectory-file to add, e.g. cam03."),
    workers: int = typer.Option(1, "--workers", help="Parallel jobs (local processes)."),
    option: list[str] = typer.Option([], "--option", "-o", help="Backend option KEY=VALUE, as for `multicam "
                                     "render`."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Add K new synchronized cameras to rendered scenes: the same environment, layout, character, animation,
    start offset, lighting and time line (from the plan), rendered by the backend that made each scene. Existing
    files stay byte-identical; each scene gains its cameras atomically; resumable (run the same command again
    after a crash).

    Example: multicam extend demo_dataset --cameras 2 --scenes 1 --trajectory arc --no-progress
    """
    from exporters.camera_json import CameraFileError, read_camera_track
    from exporters.metadata import MetadataWriter
    from render_jobs.backends import BACKENDS
    from render_jobs.cli import _parse_options, report_run
    from render_jobs.extend import ExtendError, parse_scene_ids, plan_extensions
    from render_jobs.planner import load_settings
    from render_jobs.runner import RunError, run_dataset
    from render_jobs.schema import ExtensionEntry
    from trajectory.presets import PRESET_NAMES
    from trajectory.profiles import TRAJECTORY_TYPES

    if cameras < 1:
        fail(f"--cameras: must be >= 1, got {cameras}")
    if seed is not None:
        check_seed(seed)
    if workers < 1:
        fail(f"--workers: must be >= 1, got {workers}")
    if trajectory is not None and trajectory_file is not None:
        fail("--trajectory: give either --trajectory or --trajectory-file, not both")
    if cam is not None and trajectory_file is None:
        fail("--cam: only with --trajectory-file (the camera of that file to add)")
    if trajectory is not None and trajectory not in (*TRAJECTORY_TYPES, *PRESET_NAMES):
        fail(f"--trajectory: must be a sampler type ({', '.join(TRAJECTORY_TYPES)}) or a preset "
             f"({', '.join(PRESET_NAMES)}), got {trajectory!r}")
    if trajectory_file is not None and cam is None:
        fail("--trajectory-file: needs --cam camNN (the camera of the file to add)")
    if trajectory_file is not None and cameras != 1:
        fail(f"--cameras: must be 1 with --trajectory-file (one track), got {cameras}")
    options = _parse_options(option)
    try:
        scene_ids = parse_scene_ids(scenes) if scenes is not None else None
        track = None
        if trajectory_file is not None:
            assert cam is not None
            try:
                poses = read_camera_track(trajectory_file, cam)
            except CameraFileError as exc:
                fail(f"--trajectory-file: {exc}")
            settings, _ = load_settings(dataset)
            if poses.shape[0] != settings.frames:
                fail(f"--trajectory-file: {trajectory_file} has {poses.shape[0]} frames, the dataset's scenes "
                     f"{settings.frames}")
            track = (f"{trajectory_file.name}:{cam}", poses.tolist())
        jobs, resumed = plan_extensions(dataset, cameras, scene_ids, seed, trajectory, track)
    except (ExtendError, DatasetError) as exc:
        fail(str(exc))
    if resumed:
        typer.echo(f"resuming {resumed} unfinished extension job(s)")
    by_backend: dict[str, list[ExtensionEntry]] = {}
    for j in jobs:
        by_backend.setdefault(j.backend, []).append(j)
    unknown = sorted(b for b in by_backend if b not in BACKENDS)
    if unknown:
        fail(f"{dataset}: scenes rendered by backend {unknown[0]!r}, which is not installed here "
             f"(available: {', '.join(sorted(BACKENDS))})")
    failed = 0
    for backend, group in sorted(by_backend.items()):
        try:
            summary = run_dataset(dataset, backend, workers=workers, backend_options=options, progress=progress,
                                  extensions=group)
        except DatasetError as exc:
            fail(str(exc))
        except RunError as exc:
            fail(str(exc), code=1)
        report_run(summary)
        failed += summary.failed
    result = MetadataWriter(dataset).write()
    typer.echo(f"extended {len(jobs)} scene(s) by {cameras} camera(s); {result.path.name}: {result.rows} rows")
    if failed:
        typer.echo("some extension jobs failed: see the errors above; run the same command again to retry",
                   err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("extend")(extend)
