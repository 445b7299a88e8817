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

import fcntl
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from exporters.camera_json import cam_name
from multicam.conventions import CAMERA_SETS, CM_PER_M, SENSOR_HEIGHT_MM, SENSOR_WIDTH_MM, camera_set_folder
from multicam.errors import DatasetError
from multicam.io import atomic_write_json, atomic_write_text
from multicam.testhooks import hook
from render_jobs.schema import (
    AnimationRef,
    CameraTrack,
    CharacterRef,
    EnvironmentRef,
    ExtensionEntry,
    ManifestEntry,
    ManifestEnvironment,
    Obstacle,
    Placement,
    RenderJob,
    RenderSettings,
    SamplerArgs,
    split_validation_error,
)
from render_jobs.store import STORE_FILE, JobStore
from scene_catalog.compose import compose_scenes, usage_spread
from scene_catalog.models import Catalog
from trajectory.profiles import CAMERA_PROFILES, DEFAULT_CAMERA_PROFILE

PLAN_VERSION = 1
PLAN_DIR = "plan"
PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.jsonl"
SPECS_DIR = "specs"
TMP_DIR = ".tmp"
_SAMPLE_CHUNK = 2048
#: Stream id of the prop layout in (seed, scene, stream): apart from the cameras' (seed, scene, camera < 2**31).
LAYOUT_STREAM = 2**31 + 7


class PlanError(DatasetError):
    pass


def job_id_for(scene_index: int) -> str:
    return f"s{scene_index:06d}"


def plan_paths(dataset_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    d = Path(dataset_dir) / PLAN_DIR
    return d / PLAN_FILE, d / MANIFEST_FILE


def _plan_key(
    catalog: Catalog, n_scenes: int, seed: int, settings: RenderSettings, n_cameras: int, camera_profile: str
) -> dict[str, Any]:
    return {
        "version": PLAN_VERSION,
        "seed": int(seed),
        "scenes": int(n_scenes),
        "cameras": int(n_cameras),
        "camera_profile": camera_profile,
        "settings": settings.model_dump(mode="json"),
        "catalog_sha256": hashlib.sha256(catalog.content_key().encode()).hexdigest(),
    }


#: The job store's record of the plan's arguments (seed, scenes, cameras, settings, catalog hash) at plan time.
PLAN_KEY_META = "plan_key"


def canonical_plan_key(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def plan_key_of(plan: dict[str, Any]) -> dict[str, Any]:
    """The arguments part of a plan.json header (what :func:`_plan_key` made)."""
    return {k: plan.get(k) for k in ("version", "seed", "scenes", "cameras", "camera_profile", "settings",
                                     "catalog_sha256")}


def plan_dataset(
    catalog: Catalog,
    n_scenes: int,
    seed: int,
    out_dir: str | os.PathLike[str],
    settings: RenderSettings | None = None,
    *,
    n_cameras: int = 10,
    camera_profile: str = DEFAULT_CAMERA_PROFILE,
) -> Path:
    """Write the plan of ``n_scenes`` render jobs into ``out_dir``; return the manifest path.

    ``camera_profile``: the trajectory sampler's profile (``released`` or ``independent``, docs/trajectories.md).

    Idempotent: planning an existing dataset again with the same arguments does nothing; with different
    arguments it raises :class:`PlanError` naming what differs (a dataset has exactly one plan).
    """
    if n_scenes < 1:
        raise PlanError(f"--scenes must be >= 1, got {n_scenes}")
    settings = settings or RenderSettings.model_validate({})
    if camera_profile not in CAMERA_PROFILES:
        raise PlanError(f"--camera-profile: must be one of {', '.join(CAMERA_PROFILES)}, got {camera_profile!r}")
    out = Path(out_dir)
    with plan_lock(out):
        return _plan_locked(catalog, n_scenes, seed, out, settings, n_cameras, camera_profile)


@contextmanager
def plan_lock(out: Path) -> Iterator[None]:
    """Hold ``DATASET/plan/.lock`` (``flock``): one ``plan`` at a time writes a dataset's plan; a second waits and
    then finds the published plan (the same one: nothing to do; another one: refused)."""
    lock = out / PLAN_DIR / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another `multicam plan` on {out} to finish ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _plan_locked(catalog: Catalog, n_scenes: int, seed: int, out: Path, settings: RenderSettings,
                 n_cameras: int, camera_profile: str) -> Path:
    plan_file, manifest = plan_paths(out)
    key = _plan_key(catalog, n_scenes, seed, settings, n_cameras, camera_profile)
    if plan_file.exists():
        old = read_plan(out)
        diff = [k for k in key if old.get(k) != key[k]]
        if not diff:
            # Same plan again: the entries are a pure function of the plan's arguments, so they are drawn again
            # and are the repair: a damaged or hand-edited manifest is restored, and every planned job the store
            # lacks is re-added (a deleted or replaced jobs.sqlite is rebuilt this way; rows keep their state).
            entries, _ = plan_entries(catalog, n_scenes, seed, settings, n_cameras=n_cameras,
                                      camera_profile=camera_profile)
            kept = _existing_entries_if_same(out, entries)
            if kept is not None:
                entries = kept  # the same plan (descriptions, caption text only, may differ: the plan's are kept)
            else:
                atomic_write_text(manifest, "".join(e.canonical_json() + "\n" for e in entries))
            with JobStore.for_dataset(out) as store:
                store.add_jobs(_store_row(e) for e in entries)
                store.set_meta_default(PLAN_KEY_META, canonical_plan_key(key))
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
    entries, draws = plan_entries(catalog, n_scenes, seed, settings, n_cameras=n_cameras,
                                      camera_profile=camera_profile)
    per_folder: dict[str, int] = defaultdict(int)
    for e in entries:
        per_folder[e.output_dir.split("/")[1]] += 1
    lines = [e.canonical_json() for e in entries]
    rows = [_store_row(e) for e in entries]

    out.mkdir(parents=True, exist_ok=True)
    _discard_unpublished_store(out, canonical_plan_key(key))
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    for folder in per_folder:
        (out / "train" / folder).mkdir(parents=True, exist_ok=True)
    with JobStore.for_dataset(out) as store:
        store.add_jobs(rows)
        store.set_meta_default(PLAN_KEY_META, canonical_plan_key(key))
    hook("plan-after-store")
    spreads = usage_spread(catalog, draws)
    header = {
        **key,
        "manifest_sha256": file_sha256(manifest),
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


def _discard_unpublished_store(out: Path, key: str) -> None:
    """No plan.json yet: a job store left there is a plan that was stopped before it published plan.json (nothing
    can have rendered from it). It is dropped when it holds another plan, unless it records progress."""
    if not (out / STORE_FILE).exists():
        return
    with JobStore.for_dataset(out) as store:
        if store.meta(PLAN_KEY_META) == key:
            return  # the same plan, interrupted: its rows are added to again
        progress = {k: v for k, v in store.counts().items() if k != "pending" and v}
        if progress:
            what = ", ".join(f"{v} {k}" for k, v in progress.items())
            raise PlanError(f"{out / PLAN_DIR / PLAN_FILE} is missing but {store.path} records progress ({what}); "
                            "restore plan/plan.json, or plan into a new folder")
        store.clear()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _existing_entries_if_same(out: Path, entries: list[ManifestEntry]) -> list[ManifestEntry] | None:
    """The manifest's entries when it is intact and equal to ``entries`` up to their descriptions, else None."""
    try:
        old = list(iter_manifest(out))
    except PlanError:
        return None
    if len(old) != len(entries):
        return None
    same = all(a.model_copy(update={"descriptions": None}) == b.model_copy(update={"descriptions": None})
               for a, b in zip(old, entries, strict=True))
    return old if same else None


def layout_seed_for(seed: int, scene_index: int) -> int:
    """The prop-layout seed of a scene: its own stream of (dataset seed, scene), apart from the cameras'."""
    return int(np.random.SeedSequence([int(seed), int(scene_index), LAYOUT_STREAM]).generate_state(1, np.uint64)[0])


def _store_row(e: ManifestEntry) -> tuple[str, int, str, str, str]:
    return (e.job_id, e.scene_index, e.output_dir, e.content_sha256(), e.canonical_json())


def plan_entries(
    catalog: Catalog, n_scenes: int, seed: int, settings: RenderSettings, *, n_cameras: int = 10,
    camera_profile: str = DEFAULT_CAMERA_PROFILE,
) -> tuple[list[ManifestEntry], list[Any]]:
    """The typed manifest entries of a plan (a pure function of its arguments) and the catalog draws."""
    from trajectory.sampler import sample_scenes

    draws = compose_scenes(catalog, n_scenes, seed, frames=settings.frames, fps=settings.fps)
    envs = {e.id: e for e in catalog.environments}
    chars = {c.id: c for c in catalog.characters}
    anims = {a.id: a for a in catalog.animations}

    # Scene-level draws (radius, camera set) from the sampler itself, once, cheaply (one camera, two frames);
    # materialize() passes them back to the sampler.
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
                aim_height_m=[chars[draws[i].character].resolved_aim_height_m for i in part],
                camera_profile=camera_profile,
            )
            for i, s in zip(part, batch.scenes, strict=True):
                scene_level[i] = (s.radius_m, s.camera_set)

    per_folder: dict[str, int] = defaultdict(int)
    entries = []
    for d, (radius, cset) in zip(draws, scene_level, strict=True):
        env, char, anim = envs[d.environment], chars[d.character], anims[d.animation]
        anchor = env.anchors[d.anchor]
        focal, aperture = CAMERA_SETS[cset]
        folder = camera_set_folder(focal, aperture)
        per_folder[folder] += 1
        entries.append(ManifestEntry(
            job_id=job_id_for(d.scene_index),
            scene_index=d.scene_index,
            seed=int(seed),
            output_dir=f"train/{folder}/scene{per_folder[folder]}",
            environment=ManifestEnvironment(
                id=env.id, asset=env.asset, tags=list(env.tags), anchor=d.anchor, anchor_id=env.anchor_id(d.anchor)
            ),
            character=CharacterRef(id=char.id, asset=char.asset, height_m=char.height_m, skeleton=char.skeleton),
            animation=AnimationRef(
                id=anim.id, asset=anim.asset, skeleton=anim.skeleton, fps=anim.fps,
                length_frames=anim.length_frames, loopable=anim.loopable, start_frame=d.start_frame,
            ),
            placement=Placement(location_cm=tuple(anchor.location_cm), yaw_deg=d.yaw_deg),
            sampler=SamplerArgs(
                allowed_radii_m=list(env.anchor_radii_m(d.anchor)), camera_set=cset, radius_m=radius,
                focal_mm=focal, aperture=aperture, camera_profile=camera_profile,
                aim_height_m=char.resolved_aim_height_m,
            ),
            layout_seed=layout_seed_for(seed, d.scene_index),
            # caption text only (not in the catalog hash); None when the catalog has none
            descriptions={k: v for k, v in (("environment", env.description), ("character", char.description),
                                            ("animation", anim.description)) if v} or None,
        ))
    return entries, draws


# -- reading a plan --------------------------------------------------------------------------------


def read_plan(dataset_dir: str | os.PathLike[str]) -> dict[str, Any]:
    plan_file, _ = plan_paths(dataset_dir)
    if not plan_file.exists():
        if plan_file.with_name(MANIFEST_FILE).exists() or (Path(dataset_dir) / STORE_FILE).exists():
            raise PlanError(f"{plan_file}: missing: the plan was not finished (a `multicam plan` stopped before "
                            "publishing it); run the same `multicam plan` command again")
        raise PlanError(f"{dataset_dir} has no plan ({plan_file} missing); run `multicam plan` first")
    try:
        plan: dict[str, Any] = json.loads(plan_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{plan_file}: damaged plan file ({exc}); plan into a new folder, or restore it") from exc
    if not isinstance(plan, dict) or "settings" not in plan:
        raise PlanError(f"{plan_file}: damaged plan file (no 'settings'); plan into a new folder, or restore it")
    return plan


_REPAIR = "run the same `multicam plan` command again to restore it, or plan into a new folder"


def iter_manifest(dataset_dir: str | os.PathLike[str]) -> Iterator[ManifestEntry]:
    """The typed entries of ``plan/manifest.jsonl``; a line that is not a valid entry raises :class:`PlanError`
    naming the file, line, scene and field."""
    _, manifest = plan_paths(dataset_dir)
    try:
        fh = open(manifest, encoding="utf-8", errors="strict")
    except FileNotFoundError as exc:
        raise PlanError(f"{manifest}: missing; {_REPAIR}") from exc
    seen: dict[str, str] = {}  # job id and output folder -> the line that first named it
    with fh:
        try:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    where = f"{manifest}:{number}"
                    entry = parse_manifest_line(line, where)
                    for what, value in (("job id", entry.job_id), ("output folder", entry.output_dir)):
                        if value in seen:
                            raise PlanError(f"{where}: {what} {value} is also on line {seen[value]}: two jobs would "
                                            f"write one folder; {_REPAIR}")
                        seen[value] = str(number)
                    yield entry
        except UnicodeDecodeError as exc:
            raise PlanError(f"{manifest}: not UTF-8 text ({exc.reason}); {_REPAIR}") from exc


def parse_manifest_line(line: str, where: str) -> ManifestEntry:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{where}: damaged manifest line ({exc.msg}); {_REPAIR}") from exc
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: damaged manifest line (not a job entry); {_REPAIR}")
    try:
        return ManifestEntry.model_validate(raw)
    except ValidationError as exc:
        field, msg = split_validation_error(dict(exc.errors()[0]))
        scene = raw.get("scene_index", "?")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise PlanError(f"{where}: scene {scene}: field {field}: {msg}{more}; {_REPAIR}") from exc


def load_settings(dataset_dir: str | os.PathLike[str]) -> tuple[RenderSettings, int]:
    plan = read_plan(dataset_dir)
    return RenderSettings.model_validate(plan["settings"]), int(
        plan.get("n_cameras", plan.get("cameras", 10))
    )


def materialize(entry: ManifestEntry, settings: RenderSettings, n_cameras: int = 10) -> RenderJob:
    """A manifest entry -> the full :class:`RenderJob`: a pure function of the entry and the plan's settings.

    The trajectory sampler draws the poses with the scene-level choices the planner made (radius, camera set)
    passed back to it; nothing is drawn twice."""
    sample = _sample_entry(entry, settings.frames, list(range(n_cameras)))
    record = sample.record()
    scene = scene_spec(entry.model_dump(mode="json"), record)
    tracks = _tracks(entry, sample, record)
    return RenderJob(
        job_id=entry.job_id,
        scene_index=entry.scene_index,
        seed=entry.seed,
        environment=EnvironmentRef(id=entry.environment.id, asset=entry.environment.asset,
                                   tags=list(entry.environment.tags)),
        character=entry.character.model_copy(),
        animation=entry.animation.model_copy(),
        placement=entry.placement.model_copy(),
        cameras=tracks,
        layout_seed=entry.layout_seed,
        settings=settings,
        output_dir=entry.output_dir,
        scene=scene,
    )


def _sample_entry(entry: ManifestEntry, frames: int, camera_indices: list[int], camera_seed: int | None = None,
                  trajectory_type: str | None = None, camera_draw: int = 0) -> Any:
    """The sampler's :class:`~trajectory.sampler.SceneSample` of a planned scene, for these 0-based cameras, with
    the scene-level choices the planner made (radius, camera set, profile, aim height) passed back to it
    (``trajectory_type``, ``camera_draw``: see :func:`trajectory.sampler.sample_scenes`)."""
    from trajectory.sampler import sample_scene

    smp = entry.sampler
    return sample_scene(
        entry.seed,
        entry.scene_index,
        frames=frames,
        allowed_radii_m=smp.allowed_radii_m,
        radius_m=smp.radius_m,
        camera_set=smp.camera_set,
        character_location_cm=entry.placement.location_cm,
        character_height_m=entry.character.height_m,
        camera_indices=camera_indices,
        camera_profile=smp.camera_profile,
        aim_height_m=smp.aim_height_m,
        camera_seed=camera_seed,
        trajectory_type=trajectory_type,
        camera_draw=camera_draw,
    )


def _tracks(entry: ManifestEntry, sample: Any, record: dict[str, Any]) -> list[CameraTrack]:
    """The sample's cameras as :class:`CameraTrack`s. The poses are checked once with numpy; the tracks are then
    built without pydantic re-validating 16 floats per frame per camera (the hot path of materializing 13,600
    jobs). Every camera aims and focuses at the character's aim point (the sampler's look-at target)."""
    poses = np.asarray(sample.poses_ue, dtype=np.float64)
    n_cameras, frames = len(sample.camera_indices), sample.frames
    if poses.shape != (n_cameras, frames, 4, 4) or not np.all(np.isfinite(poses)):
        raise PlanError(f"{entry.job_id}: sampler returned poses of shape {poses.shape} (or non-finite)")
    focus = [list(map(float, record["character"]["aim_point_cm"]))] * frames
    cams = record["cameras"]
    return [
        CameraTrack.model_construct(
            name=cam_name(c),
            focal_mm=float(sample.focal_mm),
            aperture=float(sample.aperture),
            sensor_width_mm=SENSOR_WIDTH_MM,
            sensor_height_mm=SENSOR_HEIGHT_MM,
            poses_ue=poses[i].tolist(),
            focus_points_cm=[list(p) for p in focus],
            trajectory=cams[cam_name(c)],
        )
        for i, c in enumerate(sample.camera_indices)
    ]


def sample_entry_cameras(entry: ManifestEntry, frames: int, camera_indices: Sequence[int], *,
                         seed: int | None = None) -> list[CameraTrack]:
    """The camera tracks of a planned scene for the given 0-based camera indices (``[10, 11]`` = cam11, cam12),
    as :func:`materialize` would make them: same start pose, same profile. Camera ``k``'s track depends only on
    (seed, scene, k) and the scene-level draws, so extending a scene never changes its cam01..cam10. ``seed``
    (default: the plan's) seeds only the cameras' own draws; the scene's start, radius and camera set stay the
    plan's (do not pass a copy of the entry with another seed: its released start would move)."""
    idx = [int(c) for c in camera_indices]
    if not idx or min(idx) < 0 or len(set(idx)) != len(idx):
        raise PlanError(f"{entry.job_id}: camera indices must be distinct and >= 0, got {idx}")
    sample = _sample_entry(entry, frames, idx, seed)
    return _tracks(entry, sample, sample.record())


def camera_index_of(name: str) -> int:
    """``cam11`` -> 10 (0-based, the sampler's camera index)."""
    return int(name[3:]) - 1


#: ``multicam extend --trajectory`` presets (trajectory/presets.py) as sampler-style records (for the labels).
_PRESET_RECORDS: dict[str, dict[str, Any]] = {
    "pan_right": {"trajectory": "pan", "direction": "right", "angle_deg": 20.0},
    "pan_left": {"trajectory": "pan", "direction": "left", "angle_deg": 20.0},
    "tilt_up": {"trajectory": "tilt", "direction": "up", "angle_deg": 10.0},
    "tilt_down": {"trajectory": "tilt", "direction": "down", "angle_deg": 10.0},
    "zoom_in": {"trajectory": "translation", "direction": "forward", "distance_m": 2.0},
    "zoom_out": {"trajectory": "translation", "direction": "backward", "distance_m": 2.0},
    "translate_up": {"trajectory": "translation", "direction": "up", "distance_m": 1.0},
    "translate_down": {"trajectory": "translation", "direction": "down", "distance_m": 1.0},
    "arc_left": {"trajectory": "arc", "direction": "left", "angle_deg": 30.0},
    "arc_right": {"trajectory": "arc", "direction": "right", "angle_deg": 30.0},
}


def _preset_poses(entry: ManifestEntry, seed: int, frames: int, camera_index: int, preset: str,
                  aim_point_cm: list[float], draw: int = 0) -> Any:
    """A validation preset (``trajectory/presets.py``) placed in the scene: started at the scene's radius from the
    character, level with its aim point, from an azimuth drawn from (seed, scene, camera) (redraw ``k``: from
    (seed, scene, camera, k))."""
    from trajectory.presets import PRESET_NAMES, SUBJECT_HEIGHT_CM, preset_track

    track = preset_track(PRESET_NAMES.index(preset) + 1, distance_m=entry.sampler.radius_m, frames=frames)
    key = [seed, entry.scene_index, camera_index, *([draw] if draw else [])]
    yaw = np.radians(np.random.default_rng(key).uniform(0.0, 360.0))
    c, s = np.cos(yaw), np.sin(yaw)
    aim = np.asarray(aim_point_cm, dtype=np.float64)
    # Row-vector UE matrices: rotate about the world vertical (yaw from +X towards +Y), then move the subject centre
    # (0, 0, SUBJECT_HEIGHT_CM) to the scene's aim point.
    place = np.array([[c, s, 0, 0], [-s, c, 0, 0], [0, 0, 1, 0],
                      [aim[0], aim[1], aim[2] - SUBJECT_HEIGHT_CM, 1.0]])
    return track @ place


#: Draws of one extension camera (the first, then redraws) before ``multicam extend`` gives up on it.
MAX_EXTENSION_DRAWS = 32


def clearance_problem(entry: ManifestEntry, poses_ue: Any, obstacles: Sequence[Obstacle],
                      clear_radius_m: float | None = None) -> str | None:
    """Why a camera track ``(F, 4, 4)`` (UE cm) breaks the planned cameras' clearance in this scene, or None: it
    comes within ``BODY_RADIUS_M`` of the character's body capsule, within ``PROP_CAMERA_GAP_M`` of a prop's
    footprint (at a frame or between frames), or leaves the radius kept free of tall things
    (:mod:`trajectory.clearance`)."""
    from trajectory.clearance import BODY_RADIUS_M, clear_radius_problem, path_body_distance, prop_problem

    ground = np.asarray(entry.placement.location_cm, dtype=np.float64)
    pos_m = (np.asarray(poses_ue, dtype=np.float64)[:, 3, :3] - ground) / CM_PER_M
    body = float(path_body_distance(pos_m, entry.character.height_m))
    if not body > BODY_RADIUS_M:
        return f"comes {body:.2f} m from the character's body axis (needs > {BODY_RADIUS_M} m)"
    xy = (np.asarray([o.xy_cm for o in obstacles], dtype=np.float64).reshape(-1, 2) - ground[:2]) / CM_PER_M
    return prop_problem(pos_m, xy, [o.radius_m for o in obstacles]) or clear_radius_problem(pos_m, clear_radius_m)


def _drawn_track(ext: ExtensionEntry, frames: int, camera_index: int, draw: int, aim_point_cm: list[float]
                 ) -> CameraTrack:
    """Draw ``draw`` of one new camera of ``ext`` (a preset or a sampler draw, of ``ext.trajectory``'s type)."""
    entry, name = ext.entry, cam_name(camera_index)
    if ext.trajectory in _PRESET_RECORDS:
        poses = _preset_poses(entry, ext.seed, frames, camera_index, ext.trajectory, aim_point_cm, draw)
        rec: dict[str, Any] = {**_PRESET_RECORDS[ext.trajectory], "preset": ext.trajectory,
                               "speed": {"mode": "constant", "a": None}}
        if draw:
            rec["draw"] = draw
        rec.update(focal_mm=entry.sampler.focal_mm, aperture=entry.sampler.aperture)
        focus = [list(aim_point_cm) for _ in range(frames)]
        return CameraTrack(name=name, focal_mm=entry.sampler.focal_mm, aperture=entry.sampler.aperture,
                           poses_ue=poses.tolist(), focus_points_cm=focus, trajectory=rec)
    sample = _sample_entry(entry, frames, [camera_index], ext.seed, ext.trajectory, draw)
    return _tracks(entry, sample, sample.record())[0]


def extension_tracks(ext: ExtensionEntry, frames: int, aim_point_cm: list[float]) -> list[CameraTrack]:
    """The new cameras of an extension job (a pure function of the entry; ``aim_point_cm``: the scene's, where every
    camera aims and focuses): sampled (:func:`sample_entry_cameras`, seeded by ``ext.seed``, following the scene's
    camera profile), of a sampler type (``pan`` ... ``static``, same profile and start), a validation preset placed
    in the scene, or the given track. A drawn camera that breaks :func:`clearance_problem` (body, the scene's
    props, its radius free of tall things) is drawn again from (seed, scene, camera, k), k = 1, 2, ...; raises
    :class:`PlanError` when none of ``MAX_EXTENSION_DRAWS`` draws fits, or when the given track does not."""
    entry = ext.entry
    indices = [camera_index_of(n) for n in ext.cameras]
    if ext.poses_ue is not None:
        poses = np.asarray(ext.poses_ue, dtype=np.float64)
        why = clearance_problem(entry, poses, ext.obstacles, ext.clear_radius_m)
        if why:
            raise PlanError(f"{ext.source}: the track {why}")
        rec: dict[str, Any] = {"trajectory": "file", "source": ext.source, "focal_mm": entry.sampler.focal_mm,
                               "aperture": entry.sampler.aperture}
        return [CameraTrack(name=ext.cameras[0], focal_mm=entry.sampler.focal_mm, aperture=entry.sampler.aperture,
                            poses_ue=poses.tolist(), focus_points_cm=[list(aim_point_cm) for _ in range(frames)],
                            trajectory=rec)]
    # draw 0 of every camera at once (a sampled cam11 is the cam11 of a plan of 11 cameras), redraws one by one
    first = (sample_entry_cameras(entry, frames, indices, seed=ext.seed) if ext.trajectory is None else
             [_drawn_track(ext, frames, c, 0, aim_point_cm) for c in indices])

    def problem(track: CameraTrack) -> str | None:
        return _type_problem(ext, track) or clearance_problem(entry, track.poses_array(), ext.obstacles,
                                                              ext.clear_radius_m)

    out = []
    for track, c in zip(first, indices, strict=True):
        why = problem(track)
        draw = 0
        while why is not None:
            draw += 1
            if draw == MAX_EXTENSION_DRAWS:
                what = f"{ext.trajectory} camera" if ext.trajectory else "sampled camera"
                raise PlanError(f"scene {entry.scene_index} {track.name}: none of {MAX_EXTENSION_DRAWS} draws of a "
                                f"{what} keeps clear of the body and the scene's props (the last {why}); try "
                                "another --seed or --trajectory")
            track = _drawn_track(ext, frames, c, draw, aim_point_cm)
            why = problem(track)
        out.append(track)
    return out


def _type_problem(ext: ExtensionEntry, track: CameraTrack) -> str | None:
    """Why a draw of a sampler type is not of that type (the sampler replaced it: no path of it kept every rule)."""
    rec = track.trajectory
    if ext.trajectory is None or ext.trajectory in _PRESET_RECORDS:
        return None
    if rec["trajectory"] != ext.trajectory or rec.get("replaces") or rec.get("fallback"):
        return f"drew no {ext.trajectory} path keeping the sampler's rules"
    return None


def extension_job(ext: ExtensionEntry, settings: RenderSettings, n_cameras: int = 10) -> RenderJob:
    """The :class:`RenderJob` of an extension: the plan's scene (:func:`materialize` of its entry: environment,
    layout seed, character, animation and start offset, placement, settings) rendering only the new cameras, with
    the planned cameras as its setup cameras."""
    base = materialize(ext.entry, settings, n_cameras)
    new = extension_tracks(ext, settings.frames, base.cameras[0].focus_points_cm[0])
    scene = dict(base.scene)
    scene["cameras"] = {t.name: t.trajectory for t in new}
    from exporters.metadata import camera_motion_labels

    scene["camera_motion"] = camera_motion_labels(scene)
    return base.model_copy(update={"job_id": ext.job_id, "cameras": new, "setup_cameras": base.cameras,
                                   "scene": scene})


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
