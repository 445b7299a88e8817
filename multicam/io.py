"""Atomic file output: write to a temporary sibling, fsync, rename. Readers never see half a file."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling and a rename.

    Readers and a crashed writer never leave a half file. ``durable=False`` skips the fsync: still
    atomic against process crashes, not against power loss; for bulk output that is reproducible.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str, durable: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path: Path, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written temporary folder into place (same file system), replacing any old one.

    The old folder, if any, is first renamed aside so that ``final_dir`` is either the old complete
    folder or the new complete folder at every instant, never a mix.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    if final_dir.exists():
        aside = final_dir.with_name(f".{final_dir.name}.old-{os.getpid()}")
        os.replace(final_dir, aside)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_dirs(a: Path, b: Path) -> None:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): at every instant ``b`` is the
    old folder or the new one. Raises :class:`OSError` where the system or file system cannot (then callers
    fall back to two renames)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError) as exc:
        raise OSError(f"renameat2 is not available: {exc}") from exc
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))
