"""``plan_dataset``: catalog + N + seed -> a dataset folder holding the plan of render jobs.

Layout written by :func:`plan_dataset`::

    DATASET/plan/plan.json          header: seed, scene count, render settings, catalog hash (written last)
    DATASET/plan/manifest.jsonl     one compact job spec per line (composition, placement, sampler args,
                                    camera set, output folder); no poses
    DATASET/plan/specs/             per-scene specs (``scene.json`` superset), written lazily when a job is
                                    materialized, or all at once by :func:`write_scene_specs`
    DATASET/jobs.sqlite             the job store, every job pending
    DATASET/train/f{focal}_aperture{a}/   the MultiCamVideo folders the jobs will fill with scene{i}/

Poses are not stored in the plan: :func:`materialize` regenerates them with
``trajectory.sampler.sample_scene`` from the stored arguments (the sampler is deterministic in
(seed, scene, camera)), which keeps planning 13,600 scenes fast. Scene ``k`` is identical whatever
the number of planned scenes: the composition and the sampler are both prefix-stable.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from exporters.camera_json import cam_name
from multicam.conventions import SENSOR_HEIGHT_MM, SENSOR_WIDTH_MM, camera_set_folder
from multicam.errors import DatasetError
from multicam.io import atomic_write_json, atomic_write_text
from render_jobs.schema import (
    AnimationRef,
    CameraTrack,
    CharacterRef,
    EnvironmentRef,
    Placement,
    RenderJob,
    RenderSettings,
)
from render_jobs.store import JobStore
from scene_catalog.compose import compose_scenes, usage_spread
from scene_catalog.models import Catalog

PLAN_VERSION = 1
PLAN_DIR = "plan"
PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.jsonl"
SPECS_DIR = "specs"
TMP_DIR = ".tmp"
_SAMPLE_CHUNK = 2048


class PlanError(DatasetError):
    pass


def job_id_for(scene_index: int) -> str:
    return f"s{scene_index:06d}"


def plan_paths(dataset_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    d = Path(dataset_dir) / PLAN_DIR
    return d / PLAN_FILE, d / MANIFEST_FILE


def _plan_key(
    catalog: Catalog, n_scenes: int, seed: int, settings: RenderSettings, n_cameras: int
) -> dict[str, Any]:
    return {
        "version": PLAN_VERSION,
        "seed": int(seed),
        "scenes": int(n_scenes),
        "cameras": int(n_cameras),
        "settings": settings.model_dump(mode="json"),
        "catalog_sha256": hashlib.sha256(catalog.content_key().encode()).hexdigest(),
    }


def plan_dataset(
    catalog: Catalog,
    n_scenes: int,
    seed: int,
    out_dir: str | os.PathLike[str],
    settings: RenderSettings | None = None,
    *,
    n_cameras: int = 10,
) -> Path:
    """Write the plan of ``n_scenes`` render jobs into ``out_dir``; return the manifest path.

    Idempotent: planning an existing dataset again with the same arguments does nothing; with different
    arguments it raises :class:`PlanError` naming what differs (a dataset has exactly one plan).
    """
    from trajectory.sampler import sample_scenes

    if n_scenes < 1:
        raise PlanError(f"--scenes must be >= 1, got {n_scenes}")
    settings = settings or RenderSettings.model_validate({})
    out = Path(out_dir)
    plan_file, manifest = plan_paths(out)
    key = _plan_key(catalog, n_scenes, seed, settings, n_cameras)
    if plan_file.exists():
        old = read_plan(out)
        diff = [k for k in key if old.get(k) != key[k]]
        if not diff:
            # Same plan again: re-add every planned job the store lacks (a deleted or replaced jobs.sqlite is
            # rebuilt this way; rows already there keep their state).
            with JobStore.for_dataset(out) as store:
                store.add_jobs((e["job_id"], int(e["scene_index"]), e["output_dir"]) for e in iter_manifest(out))
            return manifest
        details = "; ".join(f"{k}: planned {old.get(k)!r}, now {key[k]!r}" for k in diff if k != "settings")
        if "settings" in diff:
            s_old, s_new = old.get("settings") or {}, key["settings"]
            details += (
                "; " * bool(details)
                + "settings: "
                + ", ".join(
                    f"{k} {s_old.get(k)!r} -> {s_new[k]!r}" for k in s_new if s_old.get(k) != s_new[k]
                )
            )
        raise PlanError(f"{out} already holds a different plan ({details}); plan into a new folder")

    t0 = time.perf_counter()
    draws = compose_scenes(catalog, n_scenes, seed, frames=settings.frames, fps=settings.fps)
    envs = {e.id: e for e in catalog.environments}
    chars = {c.id: c for c in catalog.characters}
    anims = {a.id: a for a in catalog.animations}

    # Scene-level draws (radius, camera set) from the sampler itself, cheaply: one camera, two frames.
    # materialize() draws the full scene with the same (seed, scene, radii, location) and checks they agree.
    groups: dict[tuple[float, ...], list[int]] = defaultdict(list)
    for i, d in enumerate(draws):
        groups[envs[d.environment].anchor_radii_m(d.anchor)].append(i)
    scene_level: list[tuple[float, int]] = [(0.0, 0)] * len(draws)
    for radii, idx in groups.items():
        for lo in range(0, len(idx), _SAMPLE_CHUNK):
            part = idx[lo : lo + _SAMPLE_CHUNK]
            batch = sample_scenes(
                seed,
                [draws[i].scene_index for i in part],
                n_cameras=1,
                frames=2,
                allowed_radii_m=radii,
                character_location_cm=[
                    envs[draws[i].environment].anchors[draws[i].anchor].location_cm for i in part
                ],
                character_height_m=[chars[draws[i].character].height_m for i in part],
            )
            for i, s in zip(part, batch.scenes, strict=True):
                scene_level[i] = (s.radius_m, s.camera_set)

    from multicam.conventions import CAMERA_SETS

    per_folder: dict[str, int] = defaultdict(int)
    lines = []
    rows = []
    for d, (radius, cset) in zip(draws, scene_level, strict=True):
        env, char, anim = envs[d.environment], chars[d.character], anims[d.animation]
        anchor = env.anchors[d.anchor]
        focal, aperture = CAMERA_SETS[cset]
        folder = camera_set_folder(focal, aperture)
        per_folder[folder] += 1
        output_dir = f"train/{folder}/scene{per_folder[folder]}"
        jid = job_id_for(d.scene_index)
        entry = {
            "job_id": jid,
            "scene_index": d.scene_index,
            "seed": int(seed),
            "output_dir": output_dir,
            "environment": {
                "id": env.id,
                "asset": env.asset,
                "tags": list(env.tags),
                "anchor": d.anchor,
                "anchor_id": env.anchor_id(d.anchor),
            },
            "character": {
                "id": char.id,
                "asset": char.asset,
                "height_m": char.height_m,
                "skeleton": char.skeleton,
            },
            "animation": {
                "id": anim.id,
                "asset": anim.asset,
                "skeleton": anim.skeleton,
                "fps": anim.fps,
                "length_frames": anim.length_frames,
                "loopable": anim.loopable,
                "start_frame": d.start_frame,
            },
            "placement": {"location_cm": list(anchor.location_cm), "yaw_deg": d.yaw_deg},
            "sampler": {
                "allowed_radii_m": list(env.anchor_radii_m(d.anchor)),
                "camera_set": cset,
                "radius_m": radius,
                "focal_mm": focal,
                "aperture": aperture,
            },
        }
        descriptions = {k: v for k, v in (("environment", env.description), ("character", char.description),
                                          ("animation", anim.description)) if v}
        if descriptions:  # caption text only (not in the catalog hash); absent when the catalog has none
            entry["descriptions"] = descriptions
        lines.append(json.dumps(entry, separators=(",", ":")))
        rows.append((jid, d.scene_index, output_dir))

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    for folder in per_folder:
        (out / "train" / folder).mkdir(parents=True, exist_ok=True)
    with JobStore.for_dataset(out) as store:
        store.add_jobs(rows)
    spreads = usage_spread(catalog, draws)
    header = {
        **key,
        "n_cameras": n_cameras,
        "catalog_sources": list(catalog.sources),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plan_seconds": round(time.perf_counter() - t0, 3),
        "folders": dict(per_folder),
        "spread": {
            s.kind: {"items": s.items, "min": s.min, "max": s.max, "unused": s.unused} for s in spreads
        },
    }
    atomic_write_json(plan_file, header)
    return manifest


# -- reading a plan --------------------------------------------------------------------------------


def read_plan(dataset_dir: str | os.PathLike[str]) -> dict[str, Any]:
    plan_file, _ = plan_paths(dataset_dir)
    if not plan_file.exists():
        raise PlanError(f"{dataset_dir} has no plan ({plan_file} missing); run `multicam plan` first")
    try:
        plan: dict[str, Any] = json.loads(plan_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{plan_file}: damaged plan file ({exc}); plan into a new folder, or restore it") from exc
    if not isinstance(plan, dict) or "settings" not in plan:
        raise PlanError(f"{plan_file}: damaged plan file (no 'settings'); plan into a new folder, or restore it")
    return plan


def iter_manifest(dataset_dir: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    _, manifest = plan_paths(dataset_dir)
    with open(manifest, encoding="utf-8", errors="strict") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PlanError(f"{manifest}:{number}: damaged manifest line ({exc.msg}); the plan cannot be "
                                    "used as it is") from exc
                if not isinstance(entry, dict) or "job_id" not in entry:
                    raise PlanError(f"{manifest}:{number}: damaged manifest line (not a job entry)")
                yield entry


def load_settings(dataset_dir: str | os.PathLike[str]) -> tuple[RenderSettings, int]:
    plan = read_plan(dataset_dir)
    return RenderSettings.model_validate(plan["settings"]), int(
        plan.get("n_cameras", plan.get("cameras", 10))
    )


def materialize(entry: dict[str, Any], settings: RenderSettings, n_cameras: int = 10) -> RenderJob:
    """A manifest entry -> the full :class:`RenderJob` (poses drawn by the trajectory sampler)."""
    from trajectory.sampler import sample_scene

    smp = entry["sampler"]
    sample = sample_scene(
        entry["seed"],
        entry["scene_index"],
        n_cameras=n_cameras,
        frames=settings.frames,
        allowed_radii_m=smp["allowed_radii_m"],
        character_location_cm=entry["placement"]["location_cm"],
        character_height_m=entry["character"]["height_m"],
    )
    if sample.camera_set != smp["camera_set"] or sample.radius_m != smp["radius_m"]:
        raise PlanError(
            f"{entry['job_id']}: the trajectory sampler now draws camera set {sample.camera_set} / radius "
            f"{sample.radius_m} where the plan has {smp['camera_set']} / {smp['radius_m']}; "
            "the sampler changed since planning - plan again into a new folder"
        )
    record = sample.record()
    scene = scene_spec(entry, record)
    cams = record["cameras"]
    # The sampler's poses are checked once with numpy; the tracks are then built without pydantic
    # re-validating 16 floats per frame per camera (the hot path of materializing 13,600 jobs).
    poses = np.asarray(sample.poses_ue, dtype=np.float64)
    if poses.shape != (n_cameras, settings.frames, 4, 4) or not np.all(np.isfinite(poses)):
        raise PlanError(f"{entry['job_id']}: sampler returned poses of shape {poses.shape} (or non-finite)")
    tracks = [
        CameraTrack.model_construct(
            name=cam_name(i),
            focal_mm=float(sample.focal_mm),
            aperture=float(sample.aperture),
            sensor_width_mm=SENSOR_WIDTH_MM,
            sensor_height_mm=SENSOR_HEIGHT_MM,
            poses_ue=poses[i].tolist(),
            trajectory=cams[cam_name(i)],
        )
        for i in range(n_cameras)
    ]
    return RenderJob(
        job_id=entry["job_id"],
        scene_index=entry["scene_index"],
        seed=entry["seed"],
        environment=EnvironmentRef(
            id=entry["environment"]["id"],
            asset=entry["environment"]["asset"],
            tags=entry["environment"]["tags"],
        ),
        character=CharacterRef(**entry["character"]),
        animation=AnimationRef(**entry["animation"]),
        placement=Placement(**entry["placement"]),
        cameras=tracks,
        settings=settings,
        output_dir=entry["output_dir"],
        scene=scene,
    )


def scene_spec(entry: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The per-scene spec: the sampler's record (unchanged) plus the composition. A superset of
    ``sample_scene(...).record()``: no key of the record is altered, ``character`` only gains keys.

    It also carries the catalog descriptions, the scene's ``caption`` and each camera's ``camera_motion``
    label (``exporters/metadata.py``), which ``metadata.csv`` is written from."""
    from exporters.metadata import camera_motion_labels, scene_caption

    spec = dict(record)
    spec["character"] = {**entry["character"], **record["character"]}
    spec["environment"] = dict(entry["environment"])
    spec["animation"] = dict(entry["animation"])
    spec["placement"] = dict(entry["placement"])
    spec["job_id"] = entry["job_id"]
    spec["output_dir"] = entry["output_dir"]
    for part, text in (entry.get("descriptions") or {}).items():
        spec[part] = {**spec[part], "description": text}
    spec["caption"] = scene_caption(spec)
    spec["camera_motion"] = camera_motion_labels(record)
    return spec


def spec_path(dataset_dir: str | os.PathLike[str], scene_index: int) -> Path:
    return Path(dataset_dir) / PLAN_DIR / SPECS_DIR / f"scene{scene_index}.json"


def write_scene_spec(dataset_dir: str | os.PathLike[str], job: RenderJob) -> Path:
    """Write ``plan/specs/scene{k}.json`` if missing: same content every time for the same plan.

    Written to a temporary name and renamed (readers never see half a file) but not fsynced: a spec
    is a cache of the manifest, regenerated whenever it is missing."""
    path = spec_path(dataset_dir, job.scene_index)
    if not path.exists():
        atomic_write_text(path, json.dumps(job.scene, indent=2) + "\n", durable=False)
    return path


def write_scene_specs(dataset_dir: str | os.PathLike[str], progress: bool = False) -> int:
    """Write every scene's spec now instead of lazily; returns how many were written."""
    from tqdm import tqdm

    settings, n_cameras = load_settings(dataset_dir)
    entries = list(iter_manifest(dataset_dir))
    for entry in tqdm(entries, desc="scene specs", unit="scene", disable=not progress):
        write_scene_spec(dataset_dir, materialize(entry, settings, n_cameras))
    return len(entries)
