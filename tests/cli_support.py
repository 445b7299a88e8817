"""Shared by the CLI tests: the released validation camera files, an in-process ``multicam`` and ``multicam generate``
with the test-synthetic backend (real mp4s and JSON, no renderer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner, Result

from multicam_app import app

ROOT = Path(__file__).resolve().parents[1]
RELEASED_VAL_DIR = ROOT / "tests" / "data" / "recammaster_val"
"""One scene folder of ReCamMaster's released validation set (its camera file, no videos)."""
RELEASED_VAL_JSON = RELEASED_VAL_DIR / "cameras" / "camera_extrinsics.json"
SYNTHETIC = ("--backend", "test-synthetic", "--no-progress")
"""``render`` / ``generate`` options: the test backend (real H.264 mp4s of synthetic frames), no progress bars."""


def run_cli(*args: str) -> SimpleNamespace:
    """The ``multicam`` CLI in this process (typer's runner): exit code, stdout and stderr."""
    res = CliRunner().invoke(app, list(args))
    crash = "" if res.exception is None or isinstance(res.exception, SystemExit) else repr(res.exception)
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr + crash)


def synthetic_generate_args(out: Path, *, scenes: int | None = None, size: int | None = None,
                            frames: int | None = None, cameras: int | None = None, progress: bool = False,
                            extra_args: Sequence[str] = ()) -> list[str]:
    """``multicam generate --out OUT ... --backend test-synthetic [--no-progress]``; a count left None is the CLI's
    default (so a test of defaults and presets leaves it out)."""
    counts = {"--scenes": scenes, "--resolution": size, "--frames": frames, "--cameras": cameras}
    args = ["generate", "--out", str(out)]
    for option, value in counts.items():
        if value is not None:
            args += [option, str(value)]
    return [*args, *(SYNTHETIC if not progress else SYNTHETIC[:2]), *extra_args]


def generate_synthetic(out: Path, *, scenes: int | None = None, size: int | None = None, frames: int | None = None,
                       cameras: int | None = None, progress: bool = False, extra_args: Sequence[str] = (),
                       expect: int = 0) -> Result:
    """Run ``multicam generate`` (test-synthetic backend) in this process into ``out`` and check its exit code
    (``expect``); returns typer's result (``output`` holds stdout and stderr)."""
    args = synthetic_generate_args(out, scenes=scenes, size=size, frames=frames, cameras=cameras, progress=progress,
                                   extra_args=extra_args)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == expect, f"multicam {' '.join(args)} exited {res.exit_code}:\n{res.output}{res.exception!r}"
    return res
