"""The ``multicam`` command line: it only assembles the commands each package registers from its own ``cli`` module.

This package sits above every other layer (ground ``multicam/`` <- ``trajectory/``, ``scene_catalog/``,
``exporters/`` <- ``render_jobs/`` <- here), so no package below imports it.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="multicam",
    help="Make synchronized multi-camera video datasets in the MultiCamVideo format.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    modules = ("exporters.cli_cameras", "exporters.cli", "exporters.cli_export", "exporters.cli_stats",
               "exporters.cli_preview", "scene_catalog.cli",
               "render_jobs.cli", "render_jobs.cli_generate", "render_jobs.cli_unreal",
               "render_jobs.cli_extend", "render_jobs.cli_repair")
    for mod in modules:
        try:
            module = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    """The ``multicam`` entry point: one top-level handler turns any escaped exception into one ``error:`` line
    (exit 2 for bad input or a damaged dataset, 1 for failures; ``MULTICAM_DEBUG=1`` shows the traceback)."""
    from multicam.errors import run_cli

    run_cli(app)


if __name__ == "__main__":
    main()
