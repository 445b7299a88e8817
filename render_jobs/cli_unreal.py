"""``multicam unreal check``: the self-check of an Unreal install (render_jobs/unreal_check.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from multicam.errors import fail

unreal_app = typer.Typer(help="Unreal Engine 5 tools (the `unreal` backend).", no_args_is_help=True)


@unreal_app.command("check")
def check(
    editor: Path | None = typer.Option(None, "--editor", help="UnrealEditor-Cmd (default: config / "
                                       "$MULTICAM_UE_EDITOR)."),
    project: Path | None = typer.Option(None, "--project", help="The .uproject (default: config / "
                                        "$MULTICAM_UE_PROJECT)."),
    config: Path | None = typer.Option(None, "--config", help="Unreal backend config file (YAML/JSON)."),
    cameras: int = typer.Option(2, "--cameras", min=1, max=10, help="Cameras of the check job."),
    frames: int = typer.Option(8, "--frames", min=2, max=300, help="Frames of the check job."),
    resolution: int = typer.Option(128, "--resolution", min=64, max=4096, help="Square frame size in pixels."),
    keep: Path | None = typer.Option(None, "--keep", help="Keep the frames, camera JSON and logs in this folder."),
    timeout_s: float | None = typer.Option(None, "--timeout-s", min=1.0, help="Time limit for the editor."),
) -> None:
    """Render a tiny job (2 cameras x 8 frames, 128 px) with marker spheres at known world points and check that
    each marker's pixel centroid matches its projection through the exported camera JSON within 0.5 % of the
    width. Exit 0 when it passes, 1 when it does not, 2 for a bad configuration.

    Example: multicam unreal check --editor ~/UE_5.4/Engine/Binaries/Linux/UnrealEditor-Cmd
    --project ~/Projects/Town/Town.uproject
    """
    from render_jobs.backend import RenderError
    from render_jobs.unreal_backend import UnrealBackend, UnrealConfigError
    from render_jobs.unreal_check import CheckSpec, run_check

    if keep is not None and keep.exists() and not keep.is_dir():
        fail(f"--keep {keep}: exists and is a file, expected a folder")
    try:
        backend = UnrealBackend(config, editor=editor, project=project, timeout_s=timeout_s)
        backend.check_install()  # a missing editor or project, plugins off: bad input, not a failed render
    except (UnrealConfigError, RenderError) as exc:
        fail(str(exc))
    try:
        try:
            report = run_check(backend, CheckSpec(cameras=cameras, frames=frames, size_px=resolution), keep)
        except RenderError as exc:
            fail(f"the check job did not render: {exc}", code=1)
    finally:
        backend.close()
    for line in report.lines():
        typer.echo(line)
    if keep is not None:
        typer.echo(f"frames and camera JSON kept in {keep}")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(unreal_app, name="unreal")
