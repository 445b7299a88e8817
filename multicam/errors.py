"""One-line CLI errors with exit code 2."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer


class DatasetError(ValueError):
    """A dataset on disk that cannot be used as it is: missing or damaged plan, manifest or job store.

    The message names the file and says how to repair it; the CLI prints it on one line with exit code 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code`` (2 = bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


#: Seeds feed ``numpy.random.default_rng([seed, scene, camera])``, which takes unsigned 64-bit words.
SEED_MAX = 2**64 - 1


def check_seed(seed: int, option: str = "--seed") -> None:
    """Fail with a one-line error unless ``seed`` fits an unsigned 64-bit word."""
    if not 0 <= seed <= SEED_MAX:
        fail(f"{option}: must be an integer in 0..2**64-1, got {seed}")


def frame_size(resolution: int | None, width: int | None, height: int | None,
               default: tuple[int, int]) -> tuple[int, int]:
    """``--resolution N`` (square, the name ``generate`` uses) or ``--width``/``--height`` -> (width, height);
    giving both is a one-line exit 2. What is not given comes from ``default``."""
    if resolution is not None:
        if width is not None or height is not None:
            given = "--width" if width is not None else "--height"
            fail(f"--resolution: give either --resolution (square) or --width/--height, not both ({given} given)")
        return resolution, resolution
    return (default[0] if width is None else width), (default[1] if height is None else height)


#: Upper bounds of counts on the command line: far beyond any dataset (MultiCamVideo: 13,600 scenes, 10 cameras,
#: 81 frames), low enough that a typo fails at once instead of planning for hours or exhausting memory.
MAX_SCENES = 1_000_000
MAX_CAMERAS = 1_000
MAX_FRAMES = 100_000


def check_count(value: int, option: str, low: int, high: int) -> None:
    """Fail with a one-line error unless ``low <= value <= high``."""
    if not low <= value <= high:
        fail(f"{option}: must be an integer in {low}..{high}, got {value}")


def check_number(value: float, option: str, *, low: float, high: float = float("inf"),
                 low_open: bool = False) -> None:
    """Fail unless ``value`` is finite and in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    finite = value == value and abs(value) != float("inf")
    above = value > low if low_open else value >= low
    if not (finite and above and value <= high):
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if high == float("inf") else f" and <= {high:g}"
        fail(f"{option}: must be a finite number {lo}{hi}, got {value:g}")


def check_out_folder(out: Path, option: str = "--out") -> None:
    """Fail with a one-line error unless ``out`` is, or can be made as, a writable folder."""
    if out.exists() and not out.is_dir():
        fail(f"{option} {out}: exists and is a file, expected a folder")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{option} {out}: {parent} is a file, so no folder can be made below it")
            break
    existing = out if out.exists() else next(p for p in out.absolute().parents if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{option} {out}: {existing} is not writable")


#: ``MULTICAM_DEBUG=1`` shows the traceback of an unexpected error instead of its one-line summary.
DEBUG_ENV = "MULTICAM_DEBUG"

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def describe_exception(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of an exception that reached the top of the CLI: bad input or a damaged
    dataset exit 2, a full disk and other failures exit 1 (what ran is kept: the same command resumes)."""
    import sqlite3

    resume = "the finished work is kept; free space and run the same command again to resume"
    if isinstance(exc, DatasetError):
        return one_line(exc), 2
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return f"{exc.filename or 'disk'}: no space left on device; {resume}", 1
    if isinstance(exc, OSError) and exc.errno in _NOT_WRITABLE and exc.filename:
        return f"{exc.filename}: cannot write ({exc.strerror}); this command needs a writable dataset", 2
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "disk is full" in text:
            return f"job store: database or disk is full; {resume}", 1
        if "readonly" in text or "read-only" in text:
            return f"job store: {text}; this command needs a writable dataset", 2
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or one_line(exc)}", 1
    return (f"unexpected {type(exc).__name__}: {one_line(exc)} (set {DEBUG_ENV}=1 to see the traceback)", 1)


def run_cli(app: Callable[[], object]) -> None:
    """Run a CLI app with the one top-level error handler: every exception that escapes a command becomes one
    ``error:`` line and its exit code; ``MULTICAM_DEBUG=1`` re-raises it (full traceback)."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        message, code = describe_exception(exc)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(code) from None
