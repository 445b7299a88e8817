"""Finding and repairing damage a dataset took after it was planned or rendered.

- A ``done`` scene whose folder, ``scene.json``, camera file or one of its videos was deleted: found by
  :func:`damaged_done` (stat calls only, no decoding), re-queued by :func:`requeue_damaged` (``multicam render`` and
  ``multicam generate`` do it themselves before rendering; ``multicam repair`` without rendering).
- A lost or damaged ``jobs.sqlite``: :func:`rebuild_store` makes it again from the manifest, after checking that the
  manifest is the one ``plan.json`` published (its SHA-256); the next render adopts the finished scenes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from exporters.camera_json import CAMERA_FILE, cam_name
from render_jobs.planner import (
    PLAN_KEY_META,
    PlanError,
    _store_row,
    canonical_plan_key,
    file_sha256,
    iter_manifest,
    plan_key_of,
    plan_paths,
    read_plan,
)
from render_jobs.schema import ManifestEntry
from render_jobs.store import STORE_FILE, JobStore, StoreError


def missing_part(dataset: Path, entry: ManifestEntry, n_cameras: int) -> str | None:
    """What a finished scene folder lacks (``videos/cam03.mp4``, ``the folder``), or None when nothing is missing."""
    folder = dataset / entry.output_dir
    if not folder.is_dir():
        return "the folder"
    for rel in ("scene.json", str(CAMERA_FILE), *(f"videos/{cam_name(i)}.mp4" for i in range(n_cameras))):
        if not (folder / rel).is_file():
            return rel
    return None


@dataclass(frozen=True)
class Damaged:
    job_id: str
    output_dir: str
    missing: str

    def __str__(self) -> str:
        return f"{self.output_dir} ({self.job_id}): {self.missing} missing"


def damaged_done(store: JobStore, dataset: Path, entries: dict[str, ManifestEntry], n_cameras: int) -> list[Damaged]:
    """The ``done`` jobs whose scene folder lost files since."""
    out = []
    for row in store.rows("done"):
        entry = entries.get(row.job_id)
        if entry is not None and (missing := missing_part(dataset, entry, n_cameras)) is not None:
            out.append(Damaged(row.job_id, row.output_dir, missing))
    return out


def describe_damaged(dataset: Path, damaged: list[Damaged]) -> str:
    more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
    return f"{dataset}: {len(damaged)} done scene(s) lost files: {damaged[0]}{more}"


def requeue_damaged(store: JobStore, damaged: list[Damaged]) -> None:
    store.requeue_done([d.job_id for d in damaged], "damaged: " + "; ".join(str(d) for d in damaged[:3]))


def rebuild_store(dataset: Path) -> tuple[int, Path | None]:
    """Make ``jobs.sqlite`` again from the published manifest (a damaged one is moved aside first, to the returned
    path); every job is pending, and the next render adopts the finished scenes without rewriting them."""
    plan = read_plan(dataset)
    _, manifest = plan_paths(dataset)
    want = plan.get("manifest_sha256")
    if want is not None and manifest.exists() and file_sha256(manifest) != want:
        raise PlanError(f"{manifest}: not the manifest {dataset / 'plan' / 'plan.json'} published (SHA-256 differs): "
                        "the store cannot be rebuilt from it; run the same `multicam plan` command again instead")
    entries = list(iter_manifest(dataset))
    path = dataset / STORE_FILE
    aside = None
    if path.exists():
        aside = path.with_name(f"{STORE_FILE}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    with JobStore(path) as store:
        store.add_jobs(_store_row(e) for e in entries)
        store.set_meta_default(PLAN_KEY_META, canonical_plan_key(plan_key_of(plan)))
    return len(entries), aside


def store_state(dataset: Path) -> str:
    """``ok``, ``missing`` or ``damaged`` (cannot be opened as a job store)."""
    path = dataset / STORE_FILE
    if not path.exists():
        return "missing"
    try:
        JobStore(path, readonly=True).close()
    except StoreError:
        return "damaged"
    return "ok"
