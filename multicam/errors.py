"""One-line CLI errors with exit code 2."""

from __future__ import annotations

import os
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
