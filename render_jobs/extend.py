"""``multicam extend``: new synchronized cameras for scenes already rendered, through the job store.

An extension job (:class:`~render_jobs.schema.ExtensionEntry`, kind ``extend`` in ``jobs.sqlite``) adds cameras
``camNN..`` to one complete scene. Everything about the scene comes from the plan's typed entry
(:func:`render_jobs.planner.extension_job`: environment, layout seed, character, animation and start offset,
placement, settings, time line), and it is rendered by the backend that rendered the scene (``scene.json``'s
``backend``); the new cameras come from :func:`render_jobs.planner.sample_entry_cameras` (seeded from (seed, scene,
camera)) or from the given trajectory.

Order of work in the worker, safe to kill at any instant (the scene is as it was, or fully extended):

1. finish a commit that a killed run left half done (:func:`recover_scene`);
2. if ``scene.json`` already lists the job's cameras (a run committed and was killed before recording it), the
   job is done;
3. the backend renders the new cameras only into ``DATASET/.tmp/<job>...``; verified like a first render;
4. a staged copy of the scene is built next to it (``.scene<k>.extend-<job>``): every old file hard-linked
   (the same bytes, the same inodes), the new videos moved in, the camera file and ``scene.json`` written with the
   old entries kept character for character; the staged folder is verified in full;
5. commit: one ``renameat2(RENAME_EXCHANGE)`` swaps the staged folder and the scene (Linux); elsewhere two
   renames, the scene first moved to ``.scene<k>.pre-extend-<job>``, which step 1 rolls forward.

``MULTICAM_FAULT=<point>`` (tests only) kills the run (worker and coordinator, SIGKILL) at ``staged`` (before the
commit) or ``committed`` (after it, before the job store records it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.camera_json import CAMERA_FILE, CameraFileError, merge_camera_json_text, read_camera_json
from multicam.errors import DatasetError
from multicam.io import atomic_write_text, exchange_dirs
from render_jobs.backend import RenderError
from render_jobs.planner import TMP_DIR, PlanError, extension_job, iter_manifest, load_settings, read_plan
from render_jobs.schema import (
    CameraTrack,
    ExtensionEntry,
    ManifestEntry,
    Obstacle,
    RenderJob,
    RenderSettings,
    extension_job_id,
)
from render_jobs.store import JobStore
from render_jobs.verify import verify_scene_dir

if TYPE_CHECKING:
    from render_jobs.execute import JobContext, Outcome

SCENE_FILE = "scene.json"
#: Highest camera number of a scene: two-digit names like the released dataset's (cam01..cam99).
MAX_CAMERA_NUMBER = 99
FAULT_ENV = "MULTICAM_FAULT"


class ExtendError(DatasetError):
    """A request that cannot be met (bad argument, scene missing its plan or not rendered): exit 2."""


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def _cam_key(name: str) -> int:
    return int(name[3:])


def _staged(final: Path, job_id: str) -> Path:
    return final.with_name(f".{final.name}.extend-{job_id}")


def _aside(final: Path, job_id: str) -> Path:
    return final.with_name(f".{final.name}.pre-extend-{job_id}")


def recover_scene(final: Path) -> None:
    """Finish what a killed commit left: the scene moved aside with no scene in place is rolled forward to its
    staged extension (complete: staged folders are verified before the commit) or back to itself."""
    if final.exists():
        return
    for aside in sorted(final.parent.glob(f".{final.name}.pre-extend-*")):
        job_id = aside.name.rpartition(".pre-extend-")[2]
        staged = _staged(final, job_id)
        os.rename(staged if staged.is_dir() else aside, final)
        return


def read_scene_record(final: Path) -> dict[str, Any]:
    try:
        rec = json.loads((final / SCENE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RenderError(f"{final / SCENE_FILE}: cannot be read ({exc})") from exc
    if not isinstance(rec, dict) or not isinstance(rec.get("cameras"), dict):
        raise RenderError(f"{final / SCENE_FILE}: no 'cameras' record")
    return rec


def scene_json_text(record: dict[str, Any]) -> str:
    """scene.json as :func:`render_jobs.execute.write_scene_record` writes it."""
    return json.dumps(record, indent=2) + "\n"


def merged_scene_record(old_text: str, job: RenderJob, ext: ExtensionEntry, renderer: dict[str, Any],
                        where: Path) -> str:
    """The extended scene.json: the old record with the new cameras' sampler records and motion labels added after
    the old ones and this extension appended to ``extensions``; every old entry is kept character for character."""
    rec = json.loads(old_text)
    if scene_json_text(rec) != old_text:
        raise RenderError(f"{where}: not as multicam writes it; its entries cannot be kept byte for byte")
    new_cams: Any = job.scene.get("cameras", {})
    new_motion: Any = job.scene.get("camera_motion", {})
    rec["cameras"] = {**rec["cameras"], **new_cams}
    if isinstance(rec.get("camera_motion"), dict):
        rec["camera_motion"] = {**rec["camera_motion"], **new_motion}
    rec.setdefault("extensions", []).append({
        "job_id": ext.job_id, "cameras": list(ext.cameras), "backend": ext.backend, "seed": ext.seed,
        "trajectory": ext.trajectory, "source": ext.source, **renderer,
    })
    return scene_json_text(rec)


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        dirs.sort()
        for f in files:
            if (rel / f).as_posix() not in skip:
                os.link(Path(root) / f, dst / rel / f)


def _move_new_outputs(tmp: Path, staged: Path, skip: set[str]) -> None:
    for root, _, files in os.walk(tmp):
        rel = Path(root).relative_to(tmp)
        for f in files:
            if (rel / f).as_posix() in skip:
                continue
            dst = staged / rel / f
            if dst.exists():
                raise RenderError(f"{(rel / f).as_posix()}: the scene has this file already")
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(Path(root) / f, dst)


def full_job(job: RenderJob, final: Path, base: list[str]) -> RenderJob:
    """The extended scene as one job for :func:`verify_scene_dir`: the scene's cameras as its camera file holds
    them, then the new cameras."""
    poses, names = read_camera_json(final / CAMERA_FILE)
    if names != sorted(base, key=_cam_key):
        raise RenderError(f"{final / CAMERA_FILE}: cameras {names}, scene.json lists {base}")
    ref = job.cameras[0]
    old = [CameraTrack(name=n, focal_mm=ref.focal_mm, aperture=ref.aperture, poses_ue=poses[:, i].tolist(),
                       focus_points_cm=ref.focus_points_cm) for i, n in enumerate(names)]
    return job.model_copy(update={"cameras": old + list(job.cameras), "setup_cameras": []})


def execute_extension(ctx: JobContext, ext: ExtensionEntry, lease: int | None = None) -> Outcome:
    """Run one extension job in a worker (see the module docstring for the order of work); ``lease``: the fencing
    token of this attempt (nothing is committed once another run holds the job)."""
    from render_jobs.execute import Outcome, render_scene, tmp_dir_name

    t0 = time.perf_counter()
    if ext.backend != ctx.backend_name:
        return Outcome(ext.job_id, False, "error", 0.0,
                       error=f"{ext.job_id}: scene rendered by {ext.backend!r}, this run uses {ctx.backend_name!r}")
    backend = ctx.backend
    job = extension_job(ext, ctx.settings, ctx.n_cameras)
    final = ctx.dataset_dir / ext.output_dir
    recover_scene(final)
    staged = _staged(final, ext.job_id)
    for left in (staged, _aside(final, ext.job_id)):  # a killed run's: never committed, or the old scene's links
        shutil.rmtree(left, ignore_errors=True)
    rec = read_scene_record(final)
    have = list(rec["cameras"])
    if all(n in have for n in ext.cameras):
        if any(e.get("job_id") == ext.job_id for e in rec.get("extensions", []) if isinstance(e, dict)):
            return Outcome(ext.job_id, True, "already", time.perf_counter() - t0)
        raise RenderError(f"{final}: has cameras {ext.cameras} from another extension")
    if have != ext.base_cameras:
        raise RenderError(f"{final}: its cameras are {have}, the job was made for {ext.base_cameras}; "
                          "run `multicam extend` again to make a new job")
    tmp = ctx.dataset_dir / TMP_DIR / tmp_dir_name(ext.job_id)
    tmp.mkdir(parents=True)
    try:
        renderer = render_scene(backend, job, tmp)
        problems = verify_scene_dir(job, tmp)
        if problems:
            raise RenderError("new cameras failed verification: " + "; ".join(problems))
        skip = {SCENE_FILE, CAMERA_FILE.as_posix()}
        _link_tree(final, staged, skip)
        _move_new_outputs(tmp, staged, skip)
        old_cams, old_scene = (final / CAMERA_FILE).read_text(), (final / SCENE_FILE).read_text()
        try:
            merged = merge_camera_json_text(old_cams, (tmp / CAMERA_FILE).read_text(), str(final / CAMERA_FILE))
        except CameraFileError as exc:
            raise RenderError(str(exc)) from exc
        atomic_write_text(staged / CAMERA_FILE, merged, durable=True)
        atomic_write_text(staged / SCENE_FILE, merged_scene_record(old_scene, job, ext, renderer,
                                                                   final / SCENE_FILE), durable=True)
        problems = verify_scene_dir(full_job(job, final, have), staged)
        if problems:
            raise RenderError("extended scene failed verification: " + "; ".join(problems))
        _fault("staged")
        if not ctx._holds(ext.job_id, lease):
            return ctx._fenced(ext.job_id, lease, t0)
        try:
            exchange_dirs(staged, final)
        except OSError:  # no RENAME_EXCHANGE here: two renames, rolled forward by recover_scene if killed between
            os.rename(final, _aside(final, ext.job_id))
            os.rename(staged, final)
            shutil.rmtree(_aside(final, ext.job_id), ignore_errors=True)
        _fault("committed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)  # the old scene's links after the swap, or an uncommitted stage
    return Outcome(ext.job_id, True, "rendered", time.perf_counter() - t0,
                   frames=ctx.settings.frames * len(ext.cameras))


# -- the coordinator's side: from a request to extension jobs in the store ----------------------------------


def parse_scene_ids(text: str, option: str = "--scenes") -> list[int]:
    """``"1,3-5"`` -> [1, 3, 4, 5]."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ExtendError(f"{option}: expected scene ids like 1,3-5, got {text!r}") from None
        if a < 1 or b < a:
            raise ExtendError(f"{option}: expected scene ids >= 1 like 1,3-5, got {text!r}")
        out.extend(range(a, b + 1))
    return sorted(set(out))


def _request_key(ext: ExtensionEntry) -> tuple[Any, ...]:
    return (len(ext.cameras), ext.seed, ext.trajectory, ext.source, ext.poses_ue, ext.obstacles, ext.clear_radius_m)


def plan_extensions(dataset: Path, n_new: int, scenes: list[int] | None, seed: int | None, trajectory: str | None,
                    track: tuple[str, list[list[list[float]]]] | None) -> tuple[list[ExtensionEntry], int]:
    """The extension jobs of a request, added to the job store; returns them and how many were resumed (unfinished
    jobs of the same request found in the store, e.g. after a killed run). Raises :class:`ExtendError`."""
    try:
        plan = read_plan(dataset)
        settings, n_cameras = load_settings(dataset)
        entries = {e.scene_index: e for e in iter_manifest(dataset)}
    except PlanError as exc:
        raise ExtendError(f"{exc} (multicam extend re-renders a scene from the plan that made it)") from exc
    picked = sorted(entries) if scenes is None else scenes
    unknown = [s for s in picked if s not in entries]
    if unknown:
        raise ExtendError(f"--scenes: no scene {unknown[0]} in the plan (scenes 1..{len(entries)})")
    seed = int(plan["seed"]) if seed is None else seed
    with JobStore.for_dataset(dataset) as store:
        done_ids = {r.job_id for r in store.rows("done")}
        unfinished: dict[int, list[ExtensionEntry]] = {}
        for r in store.rows(kind="extend"):
            if r.state != "done":
                raw = store.entry_json(r.job_id)
                if raw:
                    unfinished.setdefault(r.scene_index, []).append(ExtensionEntry.model_validate_json(raw))
        jobs: list[ExtensionEntry] = []
        resumed = 0
        for k in picked:
            entry = entries[k]
            ext = _scene_request(dataset, entry, k, n_new, n_cameras, seed, trajectory, track, done_ids)
            _check_cameras(ext, settings, n_cameras)
            pending = unfinished.get(k, [])
            same = [p for p in pending if _request_key(p) == _request_key(ext)]
            if same:
                jobs.append(same[0])
                resumed += 1
                continue
            if pending:
                p = pending[0]
                raise ExtendError(f"scene {k}: an unfinished extension job {p.job_id} adds {', '.join(p.cameras)} "
                                  f"(seed {p.seed}, trajectory {p.trajectory or p.source or 'sampled'}); run that "
                                  "command again to finish it first")
            jobs.append(ext)
        store.add_jobs([(j.job_id, j.scene_index, j.output_dir, j.content_sha256(), j.canonical_json())
                        for j in jobs], kind="extend")  # resumed ones are there already (kept as they are)
        store.retry_failed(only=[j.job_id for j in jobs])  # a resumed job that used up its tries gets new ones
    return jobs, resumed


def _check_cameras(ext: ExtensionEntry, settings: RenderSettings, n_cameras: int) -> None:
    """Draw the new cameras now as the worker will (a pure function of the entry): a request whose cameras cannot
    keep clear of the body and the scene's props is refused before anything is queued."""
    try:
        extension_job(ext, settings, n_cameras)
    except PlanError as exc:
        raise ExtendError(str(exc)) from exc


def _layout(rec: dict[str, Any], where: Path) -> tuple[list[Obstacle], float | None]:
    """The props and the radius kept free of tall things that ``scene.json`` records (``environment_build``'s
    ``obstacles`` and ``clear_radius_m``; none for backends that lay out nothing)."""
    build = rec.get("environment_build")
    build = build if isinstance(build, dict) else {}
    try:
        free = build.get("clear_radius_m")
        return [Obstacle.model_validate(o) for o in build.get("obstacles", [])], None if free is None else float(free)
    except (ValueError, TypeError) as exc:
        raise ExtendError(f"{where}: environment_build: {exc}".splitlines()[0]) from exc


def _scene_request(dataset: Path, entry: ManifestEntry, k: int, n_new: int, n_cameras: int, seed: int,
                   trajectory: str | None, track: tuple[str, list[list[list[float]]]] | None,
                   done_ids: set[str]) -> ExtensionEntry:
    final = dataset / entry.output_dir
    recover_scene(final)
    if entry.job_id not in done_ids or not (final / SCENE_FILE).is_file():
        what = "no scene.json" if final.is_dir() else "no scene folder"
        raise ExtendError(f"scene {k} ({entry.output_dir}): {what}: not rendered yet; run `multicam render` first")
    try:
        rec = json.loads((final / SCENE_FILE).read_text(encoding="utf-8"))
        base = list(rec["cameras"])
        backend = str(rec["backend"])
        obstacles, clear_radius_m = _layout(rec, final / SCENE_FILE)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExtendError(f"{final / SCENE_FILE}: no camera record or backend ({exc}); extend needs the scene.json "
                          "that `multicam render` wrote") from exc
    first = max([n_cameras, *(_cam_key(n) for n in base)]) + 1
    if first + n_new - 1 > MAX_CAMERA_NUMBER:
        raise ExtendError(f"--cameras: scene {k} has cameras up to cam{first - 1:02d}; at most "
                          f"{MAX_CAMERA_NUMBER - first + 1} more fit (cam{MAX_CAMERA_NUMBER}), got {n_new}")
    names = [f"cam{c:02d}" for c in range(first, first + n_new)]
    source, poses = track if track is not None else (None, None)
    request: dict[str, Any] = {"base": base, "cameras": names, "seed": seed, "trajectory": trajectory,
                               "source": source, "poses": poses}
    if obstacles:
        request["obstacles"] = [o.model_dump() for o in obstacles]
    if clear_radius_m is not None:
        request["clear_radius_m"] = clear_radius_m
    return ExtensionEntry(job_id=extension_job_id(k, request), entry=entry, backend=backend, base_cameras=base,
                          cameras=names, seed=seed, trajectory=trajectory, source=source, poses_ue=poses,
                          obstacles=obstacles, clear_radius_m=clear_radius_m)
