"""The MultiCamVideo camera trajectory sampler (ReCamMaster paper, Sec. 3 / App.), two camera profiles.

Shared rules
------------
* Start: on the upper hemisphere centred on the character's ground point, radius ``R`` from
  {3, 5, 7, 10} m by scene size; the start distance is uniform in ``[START_FRACTION * R, R]``, the
  camera at least ``MIN_HEIGHT_M`` above the ground, its pitch within +-45 deg (40 deg at the start),
  aimed at the character's aim point (``aim_height_m`` above the ground point: the catalog's, else
  ``multicam.conventions.default_aim_height_m``, ~1 m for 1.8 m).
* Body clearance (:mod:`trajectory.clearance`): no position, at a frame or between frames, within
  ``BODY_RADIUS_M`` (0.5 m) of the vertical capsule ground point -> head height (the character's height).
* Every camera keeps its pitch within +-45 deg, height >= ``MIN_HEIGHT_M``, no roll (directions that
  would break a rule are not drawn; a path that breaks one is replaced deterministically).
* Speed: constant or variable (equal odds), see :mod:`trajectory.speed`.

``released`` (default): the structure of the released MultiCamVideo scenes
--------------------------------------------------------------------------
* One start pose per scene, drawn from ``(seed, scene)``, shared by every camera.
* Roles by camera index: cam01 pans 5-45 deg, cam02 tilts 5-30 deg, cam10 is static; cam03-cam09 and
  extra cameras (cam11, ...) draw one of: a translation along a **world** axis (+-X, +-Y, +-Z) by
  [1/4, 1] x the start distance; a chord arc (the straight chord from the start to the point 15-75 deg
  around the character at the same height and distance, as validation presets 9/10); a smoothed
  path through 1-3 random points of length [1/4, 1] x distance. Chord arcs always aim at the aim point
  at every frame; translations and paths do too except ``KEEP_ORIENTATION_P`` of them, which keep the
  start orientation. Variable speed: ``|a|`` in ``A_RANGE_RELEASED`` (the measured 0.38..3.98), both signs.

``independent``: every camera its own start (wide baselines, e.g. for 4D reconstruction)
------------------------------------------------------------------------------------------
* Types (uniform): pan; tilt; translation along the camera's own +-x/+-y/+-z by [1/4, 1] x distance,
  orientation fixed; arc 15-75 deg on the circle about the vertical through the character, facing it;
  random 1-3 points path facing the character; static. ``|a|`` in ``A_RANGE``.

Randomness: scene-level draws (radius, camera set, the released start) come from
``default_rng([seed, scene])``; each camera's draws from ``default_rng([seed, scene, camera])`` as one fixed
block of uniforms, so a camera never changes when cameras are added (extending scenes), and scene ``k``
never depends on how many scenes are drawn. All geometry is vectorised over every camera of every scene.

Units: metres and degrees inside, UE centimetres in the output poses (see ``multicam.conventions``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import make_interp_spline

from multicam import detmath as dm
from multicam.conventions import (
    AIM_HEIGHT_FRACTION,
    CAMERA_SETS,
    CM_PER_M,
    default_aim_height_m,
    ue_location_forward_to_matrix,
    ue_look_at_pitch_yaw,
    ue_look_direction,
    ue_pitch_yaw_to_axes,
    ue_pitch_yaw_to_forward,
)
from trajectory.clearance import BODY_RADIUS_M, clear_of_body, point_body_distance, segment_body_distance
from trajectory.profiles import CAMERA_PROFILES, DEFAULT_CAMERA_PROFILE, TRAJECTORY_TYPES
from trajectory.rng import camera_uniforms
from trajectory.speed import A_RANGE, progress

FloatArray = NDArray[np.float64]

__all__ = ["AIM_HEIGHT_FRACTION", "BODY_RADIUS_M", "CAMERA_PROFILES", "DEFAULT_CAMERA_PROFILE",
           "TRAJECTORY_TYPES"]  # re-exported
#: Types a moving camera of the released profile draws from (cam03-cam09, cam11, ...), equal odds.
RELEASED_MOVING_TYPES: tuple[str, ...] = ("translation", "arc", "random")
#: Released roles by 0-based camera index; every other index is a moving camera.
RELEASED_ROLES: dict[int, str] = {0: "pan", 1: "tilt", 9: "static"}
#: Share of released translations / random paths that keep their start orientation (the rest aim at the
#: character at every frame; the released scenes: 1 of 14 moving cameras).
KEEP_ORIENTATION_P = 0.1
#: Variable-speed exponent magnitudes of the released profile (measured: 0.38 .. 3.98, both signs).
A_RANGE_RELEASED = (0.25, 4.0)
ALLOWED_RADII_M: tuple[float, ...] = (3.0, 5.0, 7.0, 10.0)
PAN_RANGE_DEG = (5.0, 45.0)
TILT_RANGE_DEG = (5.0, 30.0)
ARC_RANGE_DEG = (15.0, 75.0)
LENGTH_FRACTION = (0.25, 1.0)
MAX_PITCH_DEG = 45.0
MIN_DISTANCE_M = BODY_RADIUS_M
MIN_HEIGHT_M = 0.2
START_FRACTION = 0.5
RANDOM_CANDIDATES = 4
TRANSLATION_DIRECTIONS: tuple[str, ...] = ("forward", "backward", "right", "left", "up", "down")
#: Released translations: the world axes in TRANSLATION_DIRECTIONS' order (+X forward, +Y right, +Z up).
WORLD_AXES: tuple[str, ...] = ("+x", "-x", "+y", "-y", "+z", "-z")
_WORLD_DIRS = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0], [0, 0, -1.0]])
_CLEAR_MARGIN_M = 0.05  # start / dense-sample margin beyond BODY_RADIUS_M
_TAN_MAX = float(np.tan(np.radians(MAX_PITCH_DEG - 0.5)))

# Layout of each camera's block of uniforms (the released profile reads _U_DIST as the keep-orientation draw:
# its start is the scene's).
_U_TYPE, _U_DIST, _U_AZ, _U_ELEV, _U_SPEED, _U_A, _U_ASIGN, _U_MAG, _U_DIR, _U_NPTS = range(10)
_U_KEEP = _U_DIST
_U_RANDOM = 10  # RANDOM_CANDIDATES x (3 points x (azimuth, elevation, weight))
N_UNIFORMS = _U_RANDOM + RANDOM_CANDIDATES * 9
#: Scene-level uniforms: radius, camera set, then the released start's distance, azimuth, elevation.
N_SCENE_UNIFORMS = 5
_DENSE = 65  # samples per spline when measuring arc length


def camera_rng(seed: int, scene_index: int, camera_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, scene_index, camera_index])


def scene_rng(seed: int, scene_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, scene_index])


@dataclass
class SceneSample:
    """One sampled scene: its cameras' poses and every choice made."""

    seed: int
    scene_index: int
    radius_m: float
    camera_set: int
    character_location_cm: FloatArray
    character_height_m: float
    #: (C, F, 4, 4) UE row-vector matrices in cm.
    poses_ue: FloatArray
    #: 0-based camera indices (cam01 = 0).
    camera_indices: list[int] = field(default_factory=list)
    _block: CameraBlockResult | None = field(default=None, repr=False)
    _rows: range = field(default=range(0), repr=False)
    _cameras: list[dict[str, Any]] | None = field(default=None, repr=False)
    camera_profile: str = DEFAULT_CAMERA_PROFILE
    #: Height of the aim point above the ground point (m).
    aim_height_m: float = float("nan")
    #: Seed of the cameras' own draws (default: ``seed``).
    camera_seed: int | None = None
    #: Which draw of each camera: 0 = ``(camera_seed, scene, camera)``, k > 0 = ``(camera_seed, scene, camera, k)``
    #: (a redraw, e.g. of an extension camera that would pass through a prop).
    camera_draw: int = 0

    def __post_init__(self) -> None:
        if np.isnan(self.aim_height_m):
            self.aim_height_m = float(default_aim_height_m(self.character_height_m))
        if self.camera_seed is None:
            self.camera_seed = self.seed

    @property
    def cameras(self) -> list[dict[str, Any]]:
        """Per-camera records (built on first use: sampling itself stays vectorised)."""
        if self._cameras is None:
            assert self._block is not None
            recs = []
            for row, c in zip(self._rows, self.camera_indices, strict=True):
                rec = self._block.camera_record(row, self.character_location_cm)
                rec.update(focal_mm=self.focal_mm, aperture=self.aperture,
                           seed=[self.camera_seed, self.scene_index, c, *([self.camera_draw] if self.camera_draw
                                                                          else [])])
                recs.append(rec)
            self._cameras = recs
        return self._cameras

    @property
    def focal_mm(self) -> float:
        return CAMERA_SETS[self.camera_set][0]

    @property
    def aperture(self) -> float:
        return CAMERA_SETS[self.camera_set][1]

    @property
    def frames(self) -> int:
        return int(self.poses_ue.shape[1])

    @property
    def aim_point_cm(self) -> list[float]:
        g = self.character_location_cm
        return [float(g[0]), float(g[1]), float(g[2] + self.aim_height_m * CM_PER_M)]

    def poses_frame_major(self) -> FloatArray:
        """``(F, C, 4, 4)``, the camera file's order."""
        return np.ascontiguousarray(np.swapaxes(self.poses_ue, 0, 1))

    def record(self) -> dict[str, Any]:
        """The ``scene.json`` record: every parameter drawn."""
        return {
            "scene_index": self.scene_index,
            "seed": self.seed,
            "camera_profile": self.camera_profile,
            "radius_m": self.radius_m,
            "frames": self.frames,
            "camera_set": {"focal_mm": self.focal_mm, "aperture": self.aperture},
            "character": {
                "location_cm": [float(v) for v in self.character_location_cm],
                "height_m": self.character_height_m,
                "aim_height_m": self.aim_height_m,
                "aim_point_cm": self.aim_point_cm,
            },
            "cameras": {f"cam{c + 1:02d}": cam for c, cam in zip(self.camera_indices, self.cameras, strict=True)},
        }


@dataclass
class SceneBatch:
    """Many scenes at once: poses ``(S, C, F, 4, 4)`` plus per-scene records."""

    scenes: list[SceneSample]

    @property
    def poses_ue(self) -> FloatArray:
        return np.stack([s.poses_ue for s in self.scenes])


def _check_args(n_cameras: int, frames: int, radius_m: float | None, allowed: Sequence[float],
                camera_profile: str) -> None:
    if n_cameras < 1:
        raise ValueError(f"n_cameras must be >= 1, got {n_cameras}")
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    bad = [r for r in allowed if float(r) not in ALLOWED_RADII_M]
    if bad or not allowed:
        raise ValueError(f"allowed radii must be a non-empty subset of {list(ALLOWED_RADII_M)}, got {list(allowed)}")
    if radius_m is not None and float(radius_m) not in ALLOWED_RADII_M:
        raise ValueError(f"radius_m must be one of {list(ALLOWED_RADII_M)}, got {radius_m}")
    if camera_profile not in CAMERA_PROFILES:
        raise ValueError(f"camera_profile must be one of {', '.join(CAMERA_PROFILES)}, got {camera_profile!r}")


def sample_scenes(
    seed: int,
    scene_indices: Sequence[int],
    *,
    n_cameras: int = 10,
    frames: int = 81,
    radius_m: float | None = None,
    allowed_radii_m: Sequence[float] = ALLOWED_RADII_M,
    character_location_cm: Sequence[Sequence[float]] | Sequence[float] = (0.0, 0.0, 0.0),
    character_height_m: float | Sequence[float] = 1.8,
    camera_set: int | None = None,
    camera_indices: Sequence[int] | None = None,
    camera_profile: str = DEFAULT_CAMERA_PROFILE,
    aim_height_m: float | Sequence[float] | None = None,
    camera_seed: int | None = None,
    trajectory_type: str | None = None,
    camera_draw: int = 0,
) -> SceneBatch:
    """Sample scenes ``scene_indices`` (1-based ids) with ``n_cameras`` cameras each, vectorised.

    ``character_location_cm``, ``character_height_m`` and ``aim_height_m`` are one value or one per scene
    (``aim_height_m`` None: :func:`multicam.conventions.default_aim_height_m` of the height);
    ``camera_indices`` (0-based) selects which cameras to draw (default ``range(n_cameras)``), e.g.
    ``[10, 11]`` to extend a scene with cam11 and cam12 without touching cam01..cam10. ``camera_seed`` (default
    ``seed``) seeds the cameras' own draws, ``(camera_seed, scene, camera)``, while the scene-level draws (radius,
    camera set, the released start) stay those of ``(seed, scene)``: extra cameras with their own seed still
    share the scene's start. ``trajectory_type`` (one of ``TRAJECTORY_TYPES``) makes every drawn camera of that
    type instead of its profile's choice (the released profile: still from the scene's shared start, translations
    along world axes, chord arcs); the drawn type may still be replaced where no path of it keeps every rule
    (the record's ``replaces`` / ``fallback``). ``camera_draw`` k > 0 draws the cameras from
    ``(camera_seed, scene, camera, k)`` instead: the k-th redraw of the same camera.
    """
    _check_args(n_cameras, frames, radius_m, allowed_radii_m, camera_profile)
    cam_seed = seed if camera_seed is None else int(camera_seed)
    if seed < 0 or cam_seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed} (camera seed {cam_seed})")
    if camera_set is not None and not 0 <= camera_set < len(CAMERA_SETS):
        raise ValueError(f"camera_set must be in 0..{len(CAMERA_SETS) - 1}, got {camera_set}")
    scenes = [int(s) for s in scene_indices]
    cams = list(range(n_cameras)) if camera_indices is None else [int(c) for c in camera_indices]
    if any(c < 0 for c in cams):
        raise ValueError(f"camera indices must be >= 0, got {cams}")
    if trajectory_type is not None and trajectory_type not in TRAJECTORY_TYPES:
        raise ValueError(f"trajectory_type must be one of {', '.join(TRAJECTORY_TYPES)}, got {trajectory_type!r}")
    if camera_draw < 0:
        raise ValueError(f"camera_draw must be >= 0, got {camera_draw}")
    draw_key = [int(camera_draw)] if camera_draw else []
    n_s, n_c = len(scenes), len(cams)
    loc = np.broadcast_to(np.asarray(character_location_cm, dtype=np.float64), (n_s, 3))
    height = np.broadcast_to(np.asarray(character_height_m, dtype=np.float64), (n_s,))
    aim_hs = np.broadcast_to(default_aim_height_m(height) if aim_height_m is None
                             else np.asarray(aim_height_m, dtype=np.float64), (n_s,))
    if np.any(~(aim_hs > 0)) or np.any(aim_hs > height):
        raise ValueError(f"aim_height_m must be in (0, character height], got {aim_height_m}")
    allowed = np.asarray(sorted(float(r) for r in allowed_radii_m))

    # Scene-level draws: default_rng([seed, scene]); camera draws: default_rng([seed, scene, camera]),
    # computed for all cameras at once (trajectory.rng reproduces NumPy's streams bit for bit).
    u_scene = camera_uniforms([[seed, s] for s in scenes], N_SCENE_UNIFORMS)
    if radius_m is not None:
        radii = np.full(n_s, float(radius_m))
    else:
        radii = allowed[np.minimum((u_scene[:, 0] * len(allowed)).astype(np.int64), len(allowed) - 1)]
    if camera_set is not None:
        sets = np.full(n_s, camera_set, dtype=np.int64)
    else:
        sets = np.minimum((u_scene[:, 1] * len(CAMERA_SETS)).astype(np.int64), len(CAMERA_SETS) - 1)
    u = camera_uniforms([[cam_seed, s, c, *draw_key] for s in scenes for c in cams], N_UNIFORMS)

    aim_h = np.repeat(aim_hs, n_c)
    body_h = np.repeat(height, n_c)
    if camera_profile == "independent":
        result = sample_camera_block(u, np.repeat(radii, n_c), aim_h, frames, body_h, trajectory_type)
    else:
        start = hemisphere_start(u_scene[:, 2], u_scene[:, 3], u_scene[:, 4], radii, aim_hs, height)
        rep = {k: np.repeat(v, n_c, axis=0) for k, v in start.items()}
        role = np.tile(np.asarray([trajectory_type or RELEASED_ROLES.get(c, "moving") for c in cams], dtype=object),
                       n_s)
        result = sample_released_block(u, rep, role, aim_h, body_h, frames)
    loc_rep = np.repeat(loc, n_c, axis=0)
    poses = result.poses_m_to_ue(loc_rep)

    poses = poses.reshape(n_s, n_c, frames, 4, 4)
    out = [
        SceneSample(int(seed), s, float(radii[i]), int(sets[i]), loc[i].copy(), float(height[i]), poses[i],
                    cams, result, range(i * n_c, (i + 1) * n_c), camera_profile=camera_profile,
                    aim_height_m=float(aim_hs[i]), camera_seed=cam_seed, camera_draw=int(camera_draw))
        for i, s in enumerate(scenes)
    ]
    return SceneBatch(out)


def sample_scene(
    seed: int,
    scene_index: int,
    *,
    n_cameras: int = 10,
    frames: int = 81,
    radius_m: float | None = None,
    allowed_radii_m: Sequence[float] = ALLOWED_RADII_M,
    character_location_cm: Sequence[float] = (0.0, 0.0, 0.0),
    character_height_m: float = 1.8,
    camera_set: int | None = None,
    camera_indices: Sequence[int] | None = None,
    camera_profile: str = DEFAULT_CAMERA_PROFILE,
    aim_height_m: float | None = None,
    camera_seed: int | None = None,
    trajectory_type: str | None = None,
    camera_draw: int = 0,
) -> SceneSample:
    """One scene (see :func:`sample_scenes`)."""
    return sample_scenes(
        seed, [scene_index], n_cameras=n_cameras, frames=frames, radius_m=radius_m,
        allowed_radii_m=allowed_radii_m, character_location_cm=character_location_cm,
        character_height_m=character_height_m, camera_set=camera_set, camera_indices=camera_indices,
        camera_profile=camera_profile, aim_height_m=aim_height_m, camera_seed=camera_seed,
        trajectory_type=trajectory_type, camera_draw=camera_draw,
    ).scenes[0]


# ------------------------------------------------------------------------------------------------
# The vectorised core: N cameras from N blocks of uniforms.
# ------------------------------------------------------------------------------------------------


def _lerp(lo_hi: tuple[float, float], u: FloatArray) -> FloatArray:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u


def _segment_min_distance(p0: FloatArray, v: FloatArray) -> FloatArray:
    """Minimum |p0 + t v| over t in [0, 1] (distance of a segment to the origin)."""
    vv = np.sum(v * v, -1)
    t = np.clip(-np.sum(p0 * v, -1) / np.where(vv > 0, vv, 1.0), 0.0, 1.0)
    return dm.norm3(p0 + t[..., None] * v)


def _pitch_ok_on_segment(rel0: FloatArray, disp: FloatArray) -> NDArray[np.bool_]:
    """A camera moving in a straight line ``rel0 -> rel0 + disp`` (relative to the aim point) and aiming at it
    keeps ``|pitch| <= MAX_PITCH_DEG - 0.5`` (sufficient test: the largest height difference of the two ends
    against the nearest horizontal approach; exact for horizontal and for vertical moves)."""
    flat0 = rel0 * np.array([1.0, 1.0, 0.0])
    hor_min = _segment_min_distance(flat0, disp * np.array([1.0, 1.0, 0.0]))
    dz = np.maximum(np.abs(rel0[..., 2]), np.abs(rel0[..., 2] + disp[..., 2]))
    return np.asarray(dz <= _TAN_MAX * hor_min)


def _pick(feasible: NDArray[np.bool_], u: FloatArray) -> NDArray[np.int64]:
    """Uniform choice among the True columns of each row of ``feasible`` using ``u`` in [0, 1)."""
    counts = feasible.sum(-1)
    k = np.minimum((u * counts).astype(np.int64), np.maximum(counts - 1, 0))
    csum = np.cumsum(feasible, -1)
    return np.argmax(csum > k[:, None], axis=-1)


def hemisphere_start(
    u_dist: FloatArray, u_az: FloatArray, u_elev: FloatArray, radius_m: FloatArray, aim_height_m: FloatArray,
    body_height_m: FloatArray,
) -> dict[str, FloatArray]:
    """Start positions on the hemisphere (relative to the ground point, m) from three uniforms each.

    Distance uniform in [START_FRACTION R, R], azimuth uniform, elevation uniform over the range where the
    camera is >= MIN_HEIGHT_M high, its pitch to the aim point within MAX_PITCH_DEG - 5 and it is clear of
    the body capsule by a margin. Returns ``pos`` (N, 3), ``distance``, ``azimuth`` (deg), ``elevation`` (rad).
    """
    dist = radius_m * (START_FRACTION + (1.0 - START_FRACTION) * u_dist)
    az = 360.0 * u_az
    grid = np.radians(np.linspace(0.0, MAX_PITCH_DEG, 91))
    z = dist[:, None] * dm.sin(grid)
    hor = dist[:, None] * dm.cos(grid)
    # |pitch| <= MAX_PITCH_DEG - 5 without trigonometry per grid point: |dz| <= tan(limit) * horizontal
    ok = (z >= MIN_HEIGHT_M) & (np.abs(aim_height_m[:, None] - z) <= np.tan(np.radians(MAX_PITCH_DEG - 5.0)) * hor)
    ok &= point_body_distance(np.stack([hor, np.zeros_like(hor), z], -1),
                              body_height_m[:, None]) > BODY_RADIUS_M + _CLEAR_MARGIN_M
    ok[:, -1] |= ~ok.any(-1)  # guarantee a non-empty range (never hit with the supported radii)
    lo = grid[np.argmax(ok, -1)]
    hi = grid[ok.shape[1] - 1 - np.argmax(ok[:, ::-1], -1)]
    elev = lo + (hi - lo) * u_elev
    p0 = np.stack([dist * dm.cos(elev) * dm.cos(np.radians(az)),
                   dist * dm.cos(elev) * dm.sin(np.radians(az)),
                   dist * dm.sin(elev)], -1)
    return {"pos": p0, "distance": dist, "azimuth": az, "elevation": elev}


@dataclass
class CameraBlockResult:
    """Vectorised sampler output for N cameras (positions relative to the character, metres)."""

    kind: NDArray[np.int64]
    pos_m: FloatArray  # (N, F, 3) relative to the character's ground point, UE axes
    fwd: FloatArray  # (N, F, 3) unit view directions (roll is always 0)
    rotator0: FloatArray  # (N, 3) start rotator (pitch, yaw, 0) in degrees
    a: FloatArray  # (N,), NaN = constant
    start: dict[str, FloatArray]
    params: dict[str, Any]
    profile: str = "independent"

    def poses_m_to_ue(self, ground_cm: FloatArray) -> FloatArray:
        loc_cm = self.pos_m * CM_PER_M + ground_cm[:, None, :]
        return ue_location_forward_to_matrix(loc_cm, self.fwd)

    def camera_record(self, n: int, ground_cm: FloatArray) -> dict[str, Any]:
        kind = TRAJECTORY_TYPES[int(self.kind[n])]
        a = self.a[n]
        speed = {"mode": "constant", "a": None} if np.isnan(a) else {"mode": "variable", "a": float(a)}
        start_cm = self.pos_m[n, 0] * CM_PER_M + ground_cm
        rec: dict[str, Any] = {
            "trajectory": kind,
            "speed": speed,
            "start": {
                "location_cm": [float(v) for v in start_cm],
                "rotator_deg": [float(v) for v in self.rotator0[n]],
                "distance_m": float(self.start["distance"][n]),
                "azimuth_deg": float(self.start["azimuth"][n]),
                "elevation_deg": float(self.start["elevation"][n]),
            },
        }
        p = self.params
        if kind in ("pan", "tilt", "arc"):
            rec["angle_deg"] = float(p["angle"][n])
            rec["direction"] = str(p["direction"][n])
        elif kind == "translation":
            rec["distance_m"] = float(p["length"][n])
            rec["direction"] = str(p["direction"][n])
            k = TRANSLATION_DIRECTIONS.index(str(p["direction"][n]))
            rec["axis"] = ("+x", "-x", "+y", "-y", "+z", "-z")[k]
        elif kind == "random":
            rec["length_m"] = float(p["length"][n])
            rec["n_points"] = int(p["n_points"][n])
            wp = p["waypoints"][n]
            rec["waypoints_cm"] = [[float(x) for x in w * CM_PER_M + ground_cm] for w in wp]
            rec["candidate"] = int(p["candidate"][n])
            rec["fallback"] = bool(p["fallback"][n])
        if self.profile == "released":
            if kind == "translation":
                rec["axes"] = "world"  # axis +x = UE world +X (direction names: +X forward, +Y right, +Z up)
            if kind == "arc":
                rec["path"] = "chord"
            if kind in ("translation", "arc", "random"):
                rec["aimed"] = bool(p["aimed"][n])  # aims at the character's aim point at every frame
            if p["replaces"][n]:
                rec["replaces"] = str(p["replaces"][n])  # the drawn type had no path keeping every rule
        return rec


def _speed(moving: NDArray[np.bool_], u: FloatArray, a_range: tuple[float, float], frames: int
           ) -> tuple[FloatArray, FloatArray]:
    variable = moving & (u[:, _U_SPEED] < 0.5)
    a = np.where(variable, _lerp(a_range, u[:, _U_A]) * np.where(u[:, _U_ASIGN] < 0.5, -1.0, 1.0), np.nan)
    return a, progress(frames, a)


def _pan(m: NDArray[np.bool_], u: FloatArray, pitch0: FloatArray, yaw0: FloatArray, s: FloatArray,
         out: dict[str, Any]) -> None:
    """Pan: yaw about the world vertical, + = right."""
    out["angle"][m] = _lerp(PAN_RANGE_DEG, u[m, _U_MAG])
    sign = np.where(u[m, _U_DIR] < 0.5, 1.0, -1.0)
    out["direction"][m] = np.where(sign > 0, "right", "left")
    out["fwd"][m] = ue_pitch_yaw_to_forward(pitch0[m, None], yaw0[m, None] + (sign * out["angle"][m])[:, None] * s[m])


def _tilt(m: NDArray[np.bool_], u: FloatArray, pitch0: FloatArray, yaw0: FloatArray, s: FloatArray,
          out: dict[str, Any]) -> None:
    """Tilt: pitch about the camera's right axis, + = up; only directions that stay within +-45 deg."""
    angle = _lerp(TILT_RANGE_DEG, u[m, _U_MAG])
    out["angle"][m] = angle
    feas = np.stack([pitch0[m] + angle <= MAX_PITCH_DEG, pitch0[m] - angle >= -MAX_PITCH_DEG], -1)
    sign = np.where(_pick(feas, u[m, _U_DIR]) == 0, 1.0, -1.0)
    out["direction"][m] = np.where(sign > 0, "up", "down")
    out["fwd"][m] = ue_pitch_yaw_to_forward(pitch0[m, None] + (sign * angle)[:, None] * s[m], yaw0[m, None])


def _pan_tilt(kind: NDArray[np.int64], u: FloatArray, pitch0: FloatArray, yaw0: FloatArray, s: FloatArray,
              out: dict[str, Any]) -> None:
    """The pan and tilt cameras of ``kind`` (both profiles draw them alike)."""
    for name, fill in (("pan", _pan), ("tilt", _tilt)):
        m = kind == TRAJECTORY_TYPES.index(name)
        if m.any():
            fill(m, u, pitch0, yaw0, s, out)


def _new_params(n: int, frames: int, p0: FloatArray, fwd0: FloatArray) -> dict[str, Any]:
    return {
        "pos": np.repeat(p0[:, None, :], frames, axis=1), "fwd": np.repeat(fwd0[:, None, :], frames, axis=1),
        "angle": np.full(n, np.nan), "length": np.full(n, np.nan),
        "direction": np.array([""] * n, dtype=object), "n_points": np.zeros(n, dtype=np.int64),
        "waypoints": [np.zeros((0, 3))] * n, "candidate": np.full(n, -1, dtype=np.int64),
        "fallback": np.zeros(n, dtype=bool),
    }


def _result(kind: NDArray[np.int64], out: dict[str, Any], p0: FloatArray, pitch0: FloatArray, yaw0: FloatArray,
            a: FloatArray, start: dict[str, FloatArray], profile: str) -> CameraBlockResult:
    pos, fwd = out.pop("pos"), out.pop("fwd")
    return CameraBlockResult(
        kind=kind, pos_m=pos, fwd=fwd, rotator0=np.stack([pitch0, yaw0, np.zeros_like(yaw0)], -1), a=a,
        start={"distance": start["distance"], "azimuth": start["azimuth"],
               "elevation": np.degrees(start["elevation"])},
        params=out, profile=profile,
    )


def _random_kind(idx: NDArray[np.int64], u: FloatArray, p0: FloatArray, aim: FloatArray, dist: FloatArray,
                 body_h: FloatArray, s: FloatArray, out: dict[str, Any], aimed: NDArray[np.bool_] | None = None
                 ) -> NDArray[np.bool_]:
    """Random-path cameras ``idx``: fills ``out``; returns which of them found a path keeping every rule."""
    out["length"][idx] = dist[idx] * _lerp(LENGTH_FRACTION, u[idx, _U_MAG])
    out["n_points"][idx] = 1 + np.minimum((u[idx, _U_NPTS] * 3).astype(np.int64), 2)
    aim_each = np.ones(len(idx), dtype=bool) if aimed is None else aimed[idx]
    rp, rwp, rcand, ok, fb = _random_paths(u[idx], p0[idx], aim[idx], out["length"][idx], out["n_points"][idx],
                                           s[idx], body_h[idx], aim_each, aimed is None)
    out["fallback"][idx] = fb
    out["pos"][idx] = rp
    out["fwd"][idx] = np.where(aim_each[:, None, None], ue_look_direction(rp, aim[idx, None, :]), out["fwd"][idx])
    out["candidate"][idx] = rcand
    for j, i in enumerate(idx):
        out["waypoints"][i] = rwp[j]
    return ok


def sample_camera_block(
    u: FloatArray, radius_m: FloatArray, aim_height_m: FloatArray, frames: int,
    body_height_m: FloatArray | None = None, trajectory_type: str | None = None,
) -> CameraBlockResult:
    """The ``independent`` profile: N cameras from ``u`` ``(N, N_UNIFORMS)``; radii, aim and body heights ``(N,)``
    (body height default: aim height / AIM_HEIGHT_FRACTION); ``trajectory_type``: every camera of that type
    instead of the drawn one."""
    n = u.shape[0]
    body_h = aim_height_m / AIM_HEIGHT_FRACTION if body_height_m is None else body_height_m
    kind = np.minimum((u[:, _U_TYPE] * len(TRAJECTORY_TYPES)).astype(np.int64), len(TRAJECTORY_TYPES) - 1)
    if trajectory_type is not None:
        kind = np.full(n, TRAJECTORY_TYPES.index(trajectory_type), dtype=np.int64)
    aim = np.zeros((n, 3))
    aim[:, 2] = aim_height_m
    start = hemisphere_start(u[:, _U_DIST], u[:, _U_AZ], u[:, _U_ELEV], radius_m, aim_height_m, body_h)
    p0, dist, az = start["pos"], start["distance"], start["azimuth"]
    pitch0, yaw0 = ue_look_at_pitch_yaw(p0, aim)
    a, s = _speed(kind != TRAJECTORY_TYPES.index("static"), u, A_RANGE, frames)
    out = _new_params(n, frames, p0, ue_look_direction(p0, aim))
    mag = u[:, _U_MAG]

    _pan_tilt(kind, u, pitch0, yaw0, s, out)

    # translation along the camera's own axes
    m = kind == TRAJECTORY_TYPES.index("translation")
    if m.any():
        out["length"][m] = dist[m] * _lerp(LENGTH_FRACTION, mag[m])
        ax_f, ax_r, ax_u = ue_pitch_yaw_to_axes(pitch0[m], yaw0[m])
        dirs = np.stack([ax_f, -ax_f, ax_r, -ax_r, ax_u, -ax_u], 1)  # (M, 6, 3)
        disp = dirs * out["length"][m][:, None, None]
        start_m = np.broadcast_to(p0[m][:, None, :], disp.shape)
        high = start_m[..., 2] + disp[..., 2] >= MIN_HEIGHT_M
        # The direction drawn among those clear of the ground point (the rule before the body capsule) is kept
        # when it also clears the capsule, so that cameras that were right stay byte-identical; else redrawn.
        k = _pick(high & (_segment_min_distance(start_m, disp) > MIN_DISTANCE_M + 1e-6), u[m, _U_DIR])
        clear = high & (segment_body_distance(start_m, start_m + disp, body_h[m][:, None]) > BODY_RADIUS_M + 1e-6)
        rows = np.arange(len(k))
        k = np.where(clear[rows, k], k, _pick(clear, u[m, _U_DIR]))
        out["direction"][m] = np.asarray(TRANSLATION_DIRECTIONS, dtype=object)[k]
        d = disp[np.arange(len(k)), k]
        out["pos"][m] = p0[m, None, :] + d[:, None, :] * s[m][..., None]

    # arc about the vertical axis through the character, facing it; + = camera moves left
    m = kind == TRAJECTORY_TYPES.index("arc")
    if m.any():
        out["angle"][m] = _lerp(ARC_RANGE_DEG, mag[m])
        sign = np.where(u[m, _U_DIR] < 0.5, 1.0, -1.0)
        out["direction"][m] = np.where(sign > 0, "left", "right")
        phi = np.radians(az[m, None] + (sign * out["angle"][m])[:, None] * s[m])
        r_h = dm.hypot(p0[m, 0], p0[m, 1])[:, None]
        pos = np.stack([r_h * dm.cos(phi), r_h * dm.sin(phi), np.broadcast_to(p0[m, None, 2], phi.shape)], -1)
        out["pos"][m] = pos
        out["fwd"][m] = ue_look_direction(pos, aim[m, None, :])

    # random: smoothed polyline through 1-3 sampled points, facing the character
    idx = np.flatnonzero(kind == TRAJECTORY_TYPES.index("random"))
    if len(idx):
        ok = _random_kind(idx, u, p0, aim, dist, body_h, s, out)
        fb = idx[~ok]
        if len(fb):
            # A path whose frames cut a corner of the body (rare): the straight move along the right axis.
            out["fallback"][fb] = True
            out["candidate"][fb] = -1
            _, right, _ = ue_pitch_yaw_to_axes(np.zeros(len(fb)), yaw0[fb])
            length = out["length"][fb]
            out["pos"][fb] = p0[fb, None, :] + right[:, None, :] * (length[:, None] * s[fb])[..., None]
            out["fwd"][fb] = ue_look_direction(out["pos"][fb], aim[fb, None, :])
            for j, i in enumerate(fb):
                out["waypoints"][i] = np.repeat((p0[i] + right[j] * length[j])[None], out["n_points"][i], 0)
    return _result(kind, out, p0, pitch0, yaw0, a, start, "independent")


def sample_released_block(
    u: FloatArray, start: dict[str, FloatArray], role: NDArray[Any], aim_height_m: FloatArray,
    body_height_m: FloatArray, frames: int,
) -> CameraBlockResult:
    """The ``released`` profile: N cameras from ``u`` ``(N, N_UNIFORMS)`` sharing their scene's ``start`` (rows
    of :func:`hemisphere_start`); ``role`` ``(N,)`` is ``moving`` (a type drawn from ``RELEASED_MOVING_TYPES``) or
    one of ``TRAJECTORY_TYPES`` (that type)."""
    n = u.shape[0]
    body_h = body_height_m
    aim = np.zeros((n, 3))
    aim[:, 2] = aim_height_m
    p0, dist, az = start["pos"], start["distance"], start["azimuth"]
    pitch0, yaw0 = ue_look_at_pitch_yaw(p0, aim)
    fwd0 = ue_look_direction(p0, aim)
    moving_kind = np.asarray([TRAJECTORY_TYPES.index(t) for t in RELEASED_MOVING_TYPES])[
        np.minimum((u[:, _U_TYPE] * len(RELEASED_MOVING_TYPES)).astype(np.int64), len(RELEASED_MOVING_TYPES) - 1)]
    kind = moving_kind.astype(np.int64)
    for type_index, name in enumerate(TRAJECTORY_TYPES):
        kind = np.where(role == name, type_index, kind)
    a, s = _speed(kind != TRAJECTORY_TYPES.index("static"), u, A_RANGE_RELEASED, frames)
    out = _new_params(n, frames, p0, fwd0)
    out["aimed"] = u[:, _U_KEEP] >= KEEP_ORIENTATION_P
    out["replaces"] = np.array([""] * n, dtype=object)
    mag = u[:, _U_MAG]

    _pan_tilt(kind, u, pitch0, yaw0, s, out)

    # chord arcs: the straight chord to the point `angle` around the character (same height and distance),
    # aimed at the character at every frame (validation presets 9/10); + = camera moves left
    idx = np.flatnonzero(kind == TRAJECTORY_TYPES.index("arc"))
    if len(idx):
        out["aimed"][idx] = True
        angle = _lerp(ARC_RANGE_DEG, mag[idx])
        sign = np.where(u[idx, _U_DIR] < 0.5, 1.0, -1.0)
        phi = np.radians(az[idx] + sign * angle)
        r_h = dm.hypot(p0[idx, 0], p0[idx, 1])
        end = np.stack([r_h * dm.cos(phi), r_h * dm.sin(phi), p0[idx, 2]], -1)
        disp = end - p0[idx]
        ok = (segment_body_distance(p0[idx], end, body_h[idx]) > BODY_RADIUS_M + 1e-6) & _pitch_ok_on_segment(
            p0[idx] - aim[idx], disp)
        good = idx[ok]
        out["angle"][good] = angle[ok]
        out["direction"][good] = np.where(sign[ok] > 0, "left", "right")
        pos = p0[good, None, :] + disp[ok][:, None, :] * s[good][..., None]
        out["pos"][good] = pos
        out["fwd"][good] = ue_look_direction(pos, aim[good, None, :])
        bad = idx[~ok]
        out["replaces"][bad] = "arc"
        kind[bad] = TRAJECTORY_TYPES.index("translation")

    # random: smoothed path through 1-3 sampled points, aimed or keeping the start orientation
    idx = np.flatnonzero(kind == TRAJECTORY_TYPES.index("random"))
    if len(idx):
        ok = _random_kind(idx, u, p0, aim, dist, body_h, s, out, out["aimed"])
        bad = idx[~ok]
        out["replaces"][bad] = "random"
        out["n_points"][bad] = 0
        out["candidate"][bad] = -1
        for i in bad:
            out["waypoints"][i] = np.zeros((0, 3))
        kind[bad] = TRAJECTORY_TYPES.index("translation")

    # translation along a world axis (with or without rotation toward the character)
    m = kind == TRAJECTORY_TYPES.index("translation")
    if m.any():
        length = dist[m] * _lerp(LENGTH_FRACTION, mag[m])
        out["length"][m] = length
        disp = _WORLD_DIRS[None, :, :] * length[:, None, None]  # (M, 6, 3)
        start_m = np.broadcast_to(p0[m][:, None, :], disp.shape)
        feas = (segment_body_distance(start_m, start_m + disp, body_h[m][:, None]) > BODY_RADIUS_M + 1e-6) & (
            start_m[..., 2] + disp[..., 2] >= MIN_HEIGHT_M
        ) & (_pitch_ok_on_segment(start_m - aim[m][:, None, :], disp) | ~out["aimed"][m][:, None])
        # moving straight away from the body horizontally keeps every rule, so a direction always exists
        k = _pick(feas, u[m, _U_DIR])
        out["direction"][m] = np.asarray(TRANSLATION_DIRECTIONS, dtype=object)[k]
        d = disp[np.arange(len(k)), k]
        pos = p0[m, None, :] + d[:, None, :] * s[m][..., None]
        out["pos"][m] = pos
        out["fwd"][m] = np.where(out["aimed"][m][:, None, None], ue_look_direction(pos, aim[m, None, :]),
                                 fwd0[m, None, :])
    # frame 0 is the scene's start pose bit for bit (pan/tilt directions come from angles, the others from p0)
    out["pos"][:, 0] = p0
    out["fwd"][:, 0] = fwd0
    return _result(kind, out, p0, pitch0, yaw0, a, start, "released")


@functools.cache
def _spline_weights(k: int) -> FloatArray:
    """Interpolating spline (degree min(3, k), uniform parameter) through k+1 points, sampled at _DENSE
    parameters, as a fixed ``(_DENSE, k+1)`` linear map of the points (a spline is linear in its data)."""
    spline = make_interp_spline(np.linspace(0.0, 1.0, k + 1), np.eye(k + 1), k=min(3, k), axis=0)
    w = np.asarray(spline(np.linspace(0.0, 1.0, _DENSE)), dtype=np.float64)
    w.setflags(write=False)
    return w


def _random_paths(
    u: FloatArray, p0: FloatArray, aim: FloatArray, length: FloatArray, n_pts: NDArray[np.int64], s: FloatArray,
    body_h: FloatArray, check_pitch: NDArray[np.bool_], fallback_right: bool,
) -> tuple[FloatArray, list[FloatArray], NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Random-type cameras: try RANDOM_CANDIDATES candidate paths each, keep the first feasible one.

    Returns positions ``(m, F, 3)``, waypoints, the candidate used (-1: none) and whether the path keeps every
    rule, clearance checked exactly at and between the frames (rows that do not are for the caller to replace).
    ``check_pitch``: the camera aims at ``aim`` (its pitch must stay within the limit). ``fallback_right``: a
    camera without a feasible candidate moves along its right axis instead (flagged in the last array)."""
    m, frames = u.shape[0], s.shape[1]
    # The candidates in turn, each only for the cameras still without a feasible one (every number of a row is
    # computed element by element, so a row does not depend on which others are in the batch).
    curve = np.zeros((m, _DENSE, 3))  # dense samples of the chosen curve
    arc = np.zeros((m, _DENSE))  # arc length at the dense samples
    wps = np.zeros((m, 4, 3))  # control points
    choice = np.full(m, -1, dtype=np.int64)
    tan_max = np.tan(np.radians(MAX_PITCH_DEG - 1.0))
    for c in range(RANDOM_CANDIDATES):
        rows = np.flatnonzero(choice < 0)
        if not len(rows):
            break
        dense, arclen, ctrl = _candidate_curves(u[rows, _U_RANDOM + 9 * c: _U_RANDOM + 9 * (c + 1)], p0[rows],
                                                length[rows], n_pts[rows])
        rel = dense - aim[rows, None, :]
        feas = (
            (dm.norm3(dense).min(-1) > MIN_DISTANCE_M + _CLEAR_MARGIN_M)  # margin from the ground point
            & (point_body_distance(dense, body_h[rows, None]).min(-1) > BODY_RADIUS_M)  # clear of the body
            & (dense[..., 2].min(-1) >= MIN_HEIGHT_M)
            & (np.all(np.abs(rel[..., 2]) <= tan_max * dm.hypot(rel[..., 0], rel[..., 1]), axis=-1)
               | ~check_pitch[rows])
        )
        take = feas | (c == 0)  # candidate 0 stands in until a later one is feasible
        curve[rows[take]], arc[rows[take]], wps[rows[take]] = dense[take], arclen[take], ctrl[take]
        choice[rows[feas]] = c
    any_ok = choice >= 0
    if fallback_right:
        # No feasible candidate: a straight horizontal move along the camera's right axis, which only ever
        # increases the distance to the body axis and keeps height and pitch.
        fb = ~any_ok
        if fb.any():
            _, yaw0 = ue_look_at_pitch_yaw(p0[fb], aim[fb])
            _, right, _ = ue_pitch_yaw_to_axes(np.zeros_like(yaw0), yaw0)
            dense_t = np.linspace(0.0, 1.0, _DENSE)
            curve[fb] = p0[fb, None, :] + right[:, None, :] * (length[fb, None, None] * dense_t[None, :, None])
            arc[fb] = length[fb, None] * dense_t[None, :]
            wps[fb] = p0[fb, None, :] + right[:, None, :] * length[fb, None, None] * np.array([0, 1, 1, 1.0])[
                None, :, None]
    # positions at the frames' arc lengths: batched linear interpolation (one global searchsorted)
    target = s * length[:, None]
    offs = (np.arange(m) * (length.max() * 4.0 + 1.0))[:, None]
    flat_arc = (arc + offs).ravel()
    j = np.searchsorted(flat_arc, (target + offs).ravel(), side="right").reshape(m, frames) - 1
    j = np.clip(j - (np.arange(m) * _DENSE)[:, None], 0, _DENSE - 2)
    a0 = np.take_along_axis(arc, j, 1)
    a1 = np.take_along_axis(arc, j + 1, 1)
    t = np.clip((target - a0) / np.where(a1 > a0, a1 - a0, 1.0), 0.0, 1.0)
    c0 = np.take_along_axis(curve, j[..., None], 1)
    c1 = np.take_along_axis(curve, j[..., None] + 1, 1)
    pos = c0 + (c1 - c0) * t[..., None]
    pos[:, 0] = p0
    # the frames cut the curve's corners: clearance is checked again on the segments between them
    fb = ~any_ok if fallback_right else np.zeros(m, dtype=bool)
    ok = (any_ok | fb) & clear_of_body(pos, body_h)
    wp_list = [wps[i, 1: int(n_pts[i]) + 1] for i in range(m)]
    return pos, wp_list, choice, ok, fb


def _candidate_curves(block_u: FloatArray, p0: FloatArray, length: FloatArray, n_pts: NDArray[np.int64]
                      ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One candidate path per row from its 9 uniforms: dense samples ``(m, _DENSE, 3)`` of the spline through
    the start and 1-3 points, scaled about the start to arc length ``length``; arc lengths ``(m, _DENSE)``;
    control points ``(m, 4, 3)``."""
    m = block_u.shape[0]
    block = block_u.reshape(m, 3, 3)
    seg_az = 2 * np.pi * block[..., 0]
    seg_el = np.radians(_lerp((-35.0, 35.0), block[..., 1]))
    w = 0.2 + 0.8 * block[..., 2]
    w = np.where(np.arange(3)[None, :] < n_pts[:, None], w, 0.0)
    w = w / w.sum(-1, keepdims=True)
    seg = np.stack([dm.cos(seg_el) * dm.cos(seg_az), dm.cos(seg_el) * dm.sin(seg_az), dm.sin(seg_el)], -1)
    seg = seg * (w * length[:, None])[..., None]
    ctrl = np.zeros((m, 4, 3))
    ctrl[:, 0] = p0
    ctrl[:, 1:] = p0[:, None, :] + np.cumsum(seg, axis=1)
    dense = np.zeros((m, _DENSE, 3))
    for k in (1, 2, 3):
        sel = n_pts == k
        if sel.any():
            # dense = W_k @ control points as explicit products and sums in j order (no BLAS, no SIMD reduction):
            # bit-stable whatever the batch
            wk, ck = _spline_weights(k), ctrl[sel]
            acc = wk[None, :, 0, None] * ck[:, None, 0, :]
            for j in range(1, k + 1):
                acc = acc + wk[None, :, j, None] * ck[:, None, j, :]
            dense[sel] = acc
    # scale about the start so that the curve's arc length is exactly `length`
    seglen = dm.norm3(np.diff(dense, axis=1))
    arclen = np.concatenate([np.zeros((m, 1)), np.cumsum(seglen, -1)], -1)
    total = arclen[:, -1]
    scale = length / np.where(total > 0, total, 1.0)
    dense = p0[:, None, :] + (dense - p0[:, None, :]) * scale[:, None, None]
    ctrl = p0[:, None, :] + (ctrl - p0[:, None, :]) * scale[:, None, None]
    return dense, arclen * scale[:, None], ctrl
