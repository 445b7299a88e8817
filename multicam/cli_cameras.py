"""``multicam presets`` and ``multicam sample-cameras`` (filled in by the trajectory work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
