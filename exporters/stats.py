"""``multicam stats``: what a dataset holds, before training on it, and what breaks the paper's rules.

Per camera, from ``scene.json`` (what the sampler drew: type, direction, speed, start, angle or length) and from the
camera file itself (what the poses do: pitch and roll at every frame, distance to the character, whether the
character's aim point is in the image). Scenes without ``scene.json`` (the released dataset) give the pose-measured
quantities only. The rules checked are those of :mod:`trajectory.sampler` (the paper's, plus the height floor this
project adds, marked as such).

The result is plain data (:class:`DatasetStats`), rendered as a text table, JSON and PNG histograms.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from exporters.formats import ExportError, SceneCameras
from multicam.conventions import (
    CAMERA_SETS,
    CM_PER_M,
    intrinsics_matrix,
    project_points_ue,
    ue_matrix_to_location_rotator,
)
from multicam.io import atomic_write_bytes, atomic_write_text
from trajectory.clearance import path_body_distance
from trajectory.sampler import (
    A_RANGE_RELEASED,
    ALLOWED_RADII_M,
    ARC_RANGE_DEG,
    LENGTH_FRACTION,
    MAX_PITCH_DEG,
    MIN_DISTANCE_M,
    MIN_HEIGHT_M,
    PAN_RANGE_DEG,
    RELEASED_MOVING_TYPES,
    RELEASED_ROLES,
    START_FRACTION,
    TILT_RANGE_DEG,
    TRAJECTORY_TYPES,
)
from trajectory.speed import A_RANGE

FloatArray = NDArray[np.float64]
ROLL_TOL_DEG = 1e-3
#: Slack on drawn ranges: values are printed with full precision, this only absorbs rounding.
RANGE_TOL = 1e-6
ANGLE_RANGES: dict[str, tuple[float, float]] = {"pan": PAN_RANGE_DEG, "tilt": TILT_RANGE_DEG, "arc": ARC_RANGE_DEG}


@dataclass
class CameraStats:
    scene: str
    camera: str
    trajectory: str
    direction: str | None
    role: str | None
    speed_mode: str | None
    speed_a: float | None
    start_distance_m: float | None
    start_pitch_deg: float
    angle_deg: float | None
    length_m: float | None
    #: Measured over every frame from the camera file.
    pitch_min_deg: float
    pitch_max_deg: float
    max_abs_roll_deg: float
    path_length_m: float
    #: Angle of the rotation from the first to the last frame's orientation.
    rotation_deg: float
    #: What the poses do, whatever scene.json says (see :func:`measured_motion`).
    motion: str
    min_distance_m: float | None
    min_height_m: float | None
    in_view_fraction: float | None


@dataclass
class SceneStats:
    scene: str
    frames: int
    cameras: int
    focal_mm: float
    #: Where the focal length came from (``scene.json``, a folder name, ``--focal-mm``, ``default ...``).
    focal_source: str
    aperture: float | None
    radius_m: float | None
    camera_profile: str | None
    environment: str | None
    character: str | None
    animation: str | None


@dataclass
class DatasetStats:
    scenes: list[SceneStats] = field(default_factory=list)
    cameras: list[CameraStats] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _asset_id(record: dict[str, Any], key: str) -> str | None:
    v = record.get(key)
    return str(v["id"]) if isinstance(v, dict) and "id" in v else None


def camera_role(profile: str | None, index: int, cam: dict[str, Any]) -> str | None:
    """The part a camera plays in its scene: its record's ``role``, else by index in the ``released`` profile
    (cam01 pan, cam02 tilt, cam10 static, the others ``moving``: translation, chord arc or path); None otherwise."""
    if "role" in cam:
        return str(cam["role"])
    if profile == "released":
        return RELEASED_ROLES.get(index, "moving")
    return None


def _flag_record(where: str, cam: dict[str, Any], radius: float | None, role: str | None,
                 a_range: tuple[float, float], out: list[str]) -> None:
    """Rules on what the sampler drew (scene.json)."""
    kind = cam.get("trajectory")
    allowed = RELEASED_MOVING_TYPES if role == "moving" else (role,)
    if role is not None and kind not in allowed and "replaces" not in cam:
        out.append(f"{where}: role {role} but trajectory {kind!r} (and no 'replaces' saying why)")
    if kind not in TRAJECTORY_TYPES:
        out.append(f"{where}: trajectory {kind!r} is not one of {', '.join(TRAJECTORY_TYPES)}")
        return
    start = cam.get("start") if isinstance(cam.get("start"), dict) else {}
    assert isinstance(start, dict)
    dist = _num(start.get("distance_m"))
    if dist is not None and radius is not None and not (
            START_FRACTION * radius - RANGE_TOL <= dist <= radius + RANGE_TOL):
        out.append(f"{where}: start distance {dist:.3f} m outside [{START_FRACTION * radius:g}, {radius:g}] m "
                   f"(radius {radius:g} m)")
    if kind in ANGLE_RANGES:
        lo, hi = ANGLE_RANGES[kind]
        ang = _num(cam.get("angle_deg"))
        if ang is None:
            out.append(f"{where}: {kind} without angle_deg")
        elif not lo - RANGE_TOL <= ang <= hi + RANGE_TOL:
            out.append(f"{where}: {kind} angle {ang} deg outside [{lo:g}, {hi:g}]")
    length = _num(cam.get("distance_m" if kind == "translation" else "length_m"))
    if kind in ("translation", "random") and dist is not None:
        lo, hi = LENGTH_FRACTION[0] * dist, LENGTH_FRACTION[1] * dist
        if length is None:
            out.append(f"{where}: {kind} without its length")
        elif not lo - RANGE_TOL <= length <= hi + RANGE_TOL:
            out.append(f"{where}: {kind} length {length} m outside [{lo:.3f}, {hi:.3f}] m (1/4..1 x start distance)")
    speed = cam.get("speed") if isinstance(cam.get("speed"), dict) else {}
    assert isinstance(speed, dict)
    a = _num(speed.get("a"))
    if speed.get("mode") == "variable":
        if kind == "static":
            out.append(f"{where}: static camera with a variable speed")
        elif a is None or not a_range[0] - RANGE_TOL <= abs(a) <= a_range[1] + RANGE_TOL:
            out.append(f"{where}: speed a = {a} outside +-[{a_range[0]:g}, {a_range[1]:g}]")
    elif speed and speed.get("mode") != "constant":
        out.append(f"{where}: speed mode {speed.get('mode')!r} is neither constant nor variable")


#: Below these a camera is said not to move / not to turn (cm over the clip, degrees).
STILL_CM = 1.0
STILL_DEG = 0.05
#: A path whose end-to-end distance is this fraction of its length or more is straight.
STRAIGHT = 0.999


def measured_motion(loc_cm: FloatArray, rot_deg: FloatArray) -> list[str]:
    """Classify each camera's motion from its poses alone (frames first: ``loc_cm (F, C, 3)``, ``rot_deg (F, C, 3)``
    pitch/yaw/roll): ``static``, ``pan`` (yaw only), ``tilt`` (pitch only), ``pan+tilt``, ``straight`` (a straight
    move, orientation fixed), ``straight+turn`` (a straight move while turning, e.g. a chord arc or a translation
    kept on the subject), ``curve`` (anything else: circular arcs, smoothed paths). Works without scene.json, e.g.
    on the released dataset."""
    path = np.linalg.norm(np.diff(loc_cm, axis=0), axis=-1).sum(0)
    chord = np.linalg.norm(loc_cm[-1] - loc_cm[0], axis=-1)
    dyaw = np.abs((rot_deg[..., 1] - rot_deg[:1, :, 1] + 180.0) % 360.0 - 180.0).max(0)
    dpitch = np.abs(rot_deg[..., 0] - rot_deg[:1, :, 0]).max(0)
    out = []
    for p, ch, y, t in zip(path, chord, dyaw, dpitch, strict=True):
        turned = max(y, t) > STILL_DEG
        if p <= STILL_CM:
            out.append(("pan+tilt" if y > STILL_DEG and t > STILL_DEG else "pan" if y > STILL_DEG else "tilt")
                       if turned else "static")
        elif ch >= STRAIGHT * p:
            out.append("straight+turn" if turned else "straight")
        else:
            out.append("curve")
    return out


def scene_stats(scene: SceneCameras, record: dict[str, Any]) -> tuple[SceneStats, list[CameraStats], list[str]]:
    """Stats and rule flags of one scene, vectorised over frames and cameras."""
    name = scene.rel.as_posix()
    flags: list[str] = []
    poses = scene.poses_ue  # (F, C, 4, 4)
    loc_cm, rot = ue_matrix_to_location_rotator(poses)
    pitch, roll = rot[..., 0], rot[..., 2]
    path_m = np.linalg.norm(np.diff(loc_cm, axis=0), axis=-1).sum(0) / CM_PER_M
    rel_rot = np.einsum("cij,ckj->cik", poses[0, :, :3, :3], poses[-1, :, :3, :3])  # R0 @ R_last^T, row vectors
    motion = measured_motion(loc_cm, rot)
    turn_deg = np.degrees(np.arccos(np.clip((np.trace(rel_rot, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)))
    char = record.get("character") if isinstance(record.get("character"), dict) else None
    ground = np.asarray(char["location_cm"], float) if char and isinstance(char.get("location_cm"), list) else None
    dist_m = height_m = in_view = None
    body_h = _num(char.get("height_m")) if char else None
    if ground is not None:
        rel_m = np.swapaxes(loc_cm - ground, 0, 1) / CM_PER_M  # (C, F, 3), UE axes
        # nearest approach to the body (a capsule from the ground point to head height), frames and in between
        dist_m = path_body_distance(rel_m, body_h if body_h is not None else 0.0)
        height_m = rel_m[..., 2].min(-1)
    if scene.aim_point_cm is not None:
        k = intrinsics_matrix(scene.focal_mm, scene.width_px, scene.height_px)
        uv, depth = project_points_ue(scene.aim_point_cm[None, :], poses, k)  # (F, C, 1, 2), (F, C, 1)
        inside = (depth[..., 0] > 0) & np.all((uv[..., 0, :] >= 0) & (uv[..., 0, :] < [scene.width_px,
                                                                                    scene.height_px]), -1)
        in_view = inside.mean(0)
    cam_set = record.get("camera_set") if isinstance(record.get("camera_set"), dict) else {}
    assert isinstance(cam_set, dict)
    aperture = _num(cam_set.get("aperture"))
    radius = _num(record.get("radius_m"))
    profile = str(record["camera_profile"]) if "camera_profile" in record else None
    a_range = A_RANGE_RELEASED if profile == "released" else A_RANGE
    if record:
        if (scene.focal_mm, aperture) not in CAMERA_SETS:
            flags.append(f"{name}: camera set {scene.focal_mm:g} mm f/{aperture} is not one of the dataset's four")
        if radius is None or radius not in ALLOWED_RADII_M:
            flags.append(f"{name}: radius {radius} m is not one of {', '.join(f'{r:g}' for r in ALLOWED_RADII_M)}")
    records = record.get("cameras") if isinstance(record.get("cameras"), dict) else {}
    assert isinstance(records, dict)
    cams = []
    for c, cam_name in enumerate(scene.names):
        where = f"{name}/{cam_name}"
        rec = records.get(cam_name) if isinstance(records.get(cam_name), dict) else {}
        assert isinstance(rec, dict)
        role = camera_role(profile, int(cam_name[3:]) - 1, rec) if rec else None
        if record:
            if not rec:
                flags.append(f"{where}: no record in scene.json")
            else:
                _flag_record(where, rec, radius, role, a_range, flags)
        p_abs = np.abs(pitch[:, c]).max()
        if p_abs > MAX_PITCH_DEG + RANGE_TOL:
            flags.append(f"{where}: pitch reaches {p_abs:.2f} deg (limit +-{MAX_PITCH_DEG:g})")
        r_abs = float(np.abs(roll[:, c]).max())
        if r_abs > ROLL_TOL_DEG:
            flags.append(f"{where}: roll reaches {r_abs:.3g} deg (cameras have no roll)")
        if dist_m is not None and dist_m[c] <= MIN_DISTANCE_M:
            flags.append(f"{where}: comes within {dist_m[c]:.3f} m of the character's body (must stay > "
                         f"{MIN_DISTANCE_M:g})")
        if height_m is not None and height_m[c] < MIN_HEIGHT_M - RANGE_TOL:
            flags.append(f"{where}: {height_m[c]:.3f} m above the character's ground, below the {MIN_HEIGHT_M:g} m "
                         "floor (a multicam rule, not the paper's)")
        kind = str(rec.get("trajectory", "unknown"))
        if kind == "static" and (path_m[c] > 1e-6 or np.ptp(rot[:, c, :2], axis=0).max() > 1e-6):
            flags.append(f"{where}: static in scene.json, but the camera file moves it")
        start = rec.get("start") if isinstance(rec.get("start"), dict) else {}
        speed = rec.get("speed") if isinstance(rec.get("speed"), dict) else {}
        assert isinstance(start, dict) and isinstance(speed, dict)
        cams.append(CameraStats(
            scene=name, camera=cam_name, trajectory=kind,
            direction=str(rec["direction"]) if "direction" in rec else None,
            role=role,
            speed_mode=str(speed["mode"]) if "mode" in speed else None, speed_a=_num(speed.get("a")),
            start_distance_m=_num(start.get("distance_m")), start_pitch_deg=float(pitch[0, c]),
            angle_deg=_num(rec.get("angle_deg")),
            length_m=_num(rec.get("distance_m" if kind == "translation" else "length_m")),
            pitch_min_deg=float(pitch[:, c].min()), pitch_max_deg=float(pitch[:, c].max()),
            max_abs_roll_deg=r_abs, path_length_m=float(path_m[c]),
            rotation_deg=float(turn_deg[c]), motion=motion[c],
            min_distance_m=None if dist_m is None else float(dist_m[c]),
            min_height_m=None if height_m is None else float(height_m[c]),
            in_view_fraction=None if in_view is None else float(in_view[c]),
        ))
    st = SceneStats(scene=name, frames=scene.frames, cameras=len(scene.names), focal_mm=scene.focal_mm,
                    focal_source=scene.sources["focal"], aperture=aperture, radius_m=radius, camera_profile=profile,
                    environment=_asset_id(record, "environment"),
                    character=_asset_id(record, "character"), animation=_asset_id(record, "animation"))
    return st, cams, flags


# ----------------------------------------------------------------------------------------------
# Summaries: counts, numeric distributions, histograms
# ----------------------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict[str, float | int]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "min": float(a.min()), "p10": float(np.percentile(a, 10)),
            "median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "max": float(a.max()),
            "mean": float(a.mean())}


def _histogram(values: list[float], bins: int = 20) -> dict[str, list[float]]:
    if not values:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


def numeric_columns(stats: DatasetStats) -> dict[str, list[float]]:
    """Every numeric distribution by name (``angle_deg.pan``, ``in_view_fraction.cam03``...), missing values left
    out."""
    cols: dict[str, list[float]] = {}

    def add(key: str, v: float | None) -> None:
        if v is not None:
            cols.setdefault(key, []).append(v)

    for c in stats.cameras:
        add("start_distance_m", c.start_distance_m)
        add("start_pitch_deg", c.start_pitch_deg)
        add("pitch_min_deg", c.pitch_min_deg)
        add("pitch_max_deg", c.pitch_max_deg)
        add("path_length_m", c.path_length_m)
        add("rotation_deg", c.rotation_deg)
        add("min_distance_to_body_m", c.min_distance_m)
        add("speed_abs_a", None if c.speed_a is None else abs(c.speed_a))
        add(f"angle_deg.{c.trajectory}", c.angle_deg)
        add(f"length_m.{c.trajectory}", c.length_m)
        add("in_view_fraction", c.in_view_fraction)
    for s in stats.scenes:
        add("radius_m", s.radius_m)
    return dict(sorted(cols.items()))


def categorical_counts(stats: DatasetStats) -> dict[str, dict[str, int]]:
    cams, scenes = stats.cameras, stats.scenes

    def count(values: list[str | None]) -> dict[str, int]:
        return dict(Counter(v if v is not None else "-" for v in values).most_common())

    return {
        "trajectory": count([c.trajectory for c in cams]),
        "trajectory_direction": count([f"{c.trajectory} {c.direction}" if c.direction else c.trajectory
                                       for c in cams]),
        "role": count([c.role for c in cams]),
        "measured_motion": count([c.motion for c in cams]),
        "speed_mode": count([c.speed_mode for c in cams]),
        "camera_set": count([f"{s.focal_mm:g}mm f/{s.aperture:g}" if s.aperture else
                             f"{s.focal_mm:g}mm" + (" (assumed)" if s.focal_source.startswith("default") else "")
                             for s in scenes]),
        "environment": count([s.environment for s in scenes]),
        "character": count([s.character for s in scenes]),
        "animation": count([s.animation for s in scenes]),
        "camera_profile": count([s.camera_profile for s in scenes]),
        "frames": count([str(s.frames) for s in scenes]),
        "cameras_per_scene": count([str(s.cameras) for s in scenes]),
    }


def in_view_per_camera(stats: DatasetStats) -> dict[str, float]:
    """Mean fraction of frames with the character's aim point in the image, per camera name (cam01..)."""
    acc: dict[str, list[float]] = {}
    for c in stats.cameras:
        if c.in_view_fraction is not None:
            acc.setdefault(c.camera, []).append(c.in_view_fraction)
    return {k: float(np.mean(v)) for k, v in sorted(acc.items(), key=lambda kv: int(kv[0][3:]))}


def stats_json(stats: DatasetStats) -> dict[str, Any]:
    cols = numeric_columns(stats)
    return {
        "scenes": len(stats.scenes), "cameras": len(stats.cameras),
        "counts": categorical_counts(stats),
        "in_view_fraction_per_camera": in_view_per_camera(stats),
        "numeric": {k: _summary(v) for k, v in cols.items()},
        "histograms": {k: _histogram(v) for k, v in cols.items()},
        "flags": stats.flags,
    }


PER_CAMERA_COUNTS = ("trajectory", "trajectory_direction", "role", "measured_motion", "speed_mode")


def text_table(summary: dict[str, Any]) -> str:
    lines = [f"{summary['scenes']} scene(s), {summary['cameras']} camera(s)", ""]
    total = max(summary["cameras"], 1)
    for key, counts in summary["counts"].items():
        if set(counts) == {"-"}:
            continue
        denom = total if key in PER_CAMERA_COUNTS else max(summary["scenes"], 1)
        lines.append(f"{key}:")
        lines += [f"  {name:<28} {n:>7}  {100.0 * n / denom:5.1f} %" for name, n in counts.items()]
    lines += ["", f"{'quantity':<34} {'n':>6} {'min':>9} {'median':>9} {'max':>9} {'mean':>9}"]
    for key, s in summary["numeric"].items():
        if s["n"]:
            lines.append(f"{key:<34} {s['n']:>6} {s['min']:>9.3f} {s['median']:>9.3f} {s['max']:>9.3f} "
                         f"{s['mean']:>9.3f}")
    if summary["in_view_fraction_per_camera"]:
        lines += ["", "character in view (fraction of frames, mean over scenes):"]
        lines += [f"  {k:<8} {v:6.3f}" for k, v in summary["in_view_fraction_per_camera"].items()]
    lines += ["", f"{len(summary['flags'])} rule flag(s)" + (":" if summary["flags"] else "")]
    lines += [f"  {f}" for f in summary["flags"]]
    return "\n".join(lines) + "\n"


def write_histograms(summary: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per numeric distribution and per category (matplotlib, Agg), atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        paths.append(atomic_write_bytes(out / f"{name}.png", buf.getvalue(), durable=False))

    for key, h in summary["histograms"].items():
        if not h["counts"]:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        edges = np.asarray(h["edges"])
        ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", edgecolor="black", linewidth=0.4)
        ax.set_title(f"{key} (n={int(sum(h['counts']))})", fontsize=10)
        ax.set_ylabel("count")
        save(fig, key.replace(".", "_"))
    for key, counts in summary["counts"].items():
        if set(counts) == {"-"}:
            continue
        fig, ax = plt.subplots(figsize=(5, 0.8 + 0.28 * len(counts)))
        names = list(counts)[::-1]
        ax.barh(names, [counts[n] for n in names])
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("count")
        save(fig, f"count_{key}")
    if summary["cameras"]:
        save(overview_figure(summary, plt), "overview")
    per_cam = summary["in_view_fraction_per_camera"]
    if per_cam:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.bar(list(per_cam), list(per_cam.values()))
        ax.set_ylim(0, 1)
        ax.set_title("character in view (fraction of frames)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=90)
        save(fig, "in_view_fraction_per_camera")
    return paths


def overview_figure(summary: dict[str, Any], plt: Any) -> Any:
    """One page: trajectory types, start distance, pitch at the start, angle per type, |a|, character in view."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    counts = summary["counts"]["trajectory_direction"]
    names = list(counts)[::-1]
    axes[0, 0].barh(names, [counts[n] for n in names])
    axes[0, 0].set_title("trajectory (cameras)")
    hists = summary["histograms"]
    for ax, key, label in ((axes[0, 1], "start_distance_m", "start distance to the character (m)"),
                           (axes[0, 2], "start_pitch_deg", "pitch at the start (deg)"),
                           (axes[1, 1], "speed_abs_a", "variable speed |a|")):
        h = hists.get(key, {"counts": []})
        if h["counts"]:
            e = np.asarray(h["edges"])
            ax.bar(e[:-1], h["counts"], width=np.diff(e), align="edge", edgecolor="black", linewidth=0.4)
        ax.set_title(label)
    for key in sorted(k for k in hists if k.startswith("angle_deg.")):
        axes[1, 0].stairs(hists[key]["counts"], hists[key]["edges"], fill=True, alpha=0.5, label=key.split(".", 1)[1])
    if any(k.startswith("angle_deg.") for k in hists):
        axes[1, 0].legend()
    axes[1, 0].set_title("angle per type (deg)")
    per_cam = summary["in_view_fraction_per_camera"]
    axes[1, 2].bar(list(per_cam), list(per_cam.values()))
    axes[1, 2].set_ylim(0, 1)
    axes[1, 2].tick_params(axis="x", labelrotation=90)
    axes[1, 2].set_title("character in view (fraction of frames)")
    fig.suptitle(f"{summary['scenes']} scenes, {summary['cameras']} cameras, {len(summary['flags'])} rule flags")
    return fig


def write_stats_json(summary: dict[str, Any], path: Path) -> Path:
    return atomic_write_text(path, json.dumps(summary, indent=1) + "\n")


__all__ = ["DatasetStats", "scene_stats", "stats_json", "text_table", "write_histograms",
           "write_stats_json", "ExportError"]
