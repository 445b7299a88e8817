"""Shared by the export and stats tests: the released validation camera file and an in-process ``multicam``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from multicam_app import app

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT / "tests" / "data" / "recammaster_val" / "cameras" / "camera_extrinsics.json"


def run_cli(*args: str) -> SimpleNamespace:
    """The ``multicam`` CLI in this process (typer's runner): exit code, stdout and stderr."""
    res = CliRunner().invoke(app, list(args))
    crash = "" if res.exception is None or isinstance(res.exception, SystemExit) else repr(res.exception)
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr + crash)
