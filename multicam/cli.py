"""The ``multicam`` command line. Each area registers its own commands from its own module."""

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
    from multicam import cli_cameras, cli_validate

    cli_cameras.register(app)
    cli_validate.register(app)
    for mod in ("scene_catalog.cli", "render_jobs.cli", "render_jobs.cli_generate"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
