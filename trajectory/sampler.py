"""The MultiCamVideo camera trajectory sampler (ReCamMaster paper, Sec. 3 / App.).

Rules
-----
* Start: on the upper hemisphere centred on the character's ground point, radius ``R`` from
  {3, 5, 7, 10} m by scene size; the start distance is uniform in ``[START_FRACTION * R, R]``, the
  camera at least ``MIN_HEIGHT_M`` above the ground, its pitch within +-45 deg, aimed at the
  character's centre (``AIM_HEIGHT_FRACTION * height`` above the ground point, ~1 m for 1.8 m).
* Types (uniform): pan 5-45 deg (yaw about the world vertical); tilt 5-30 deg (pitch about the
  camera's right axis); translation along the camera's own +-x/+-y/+-z by [1/4, 1] x distance,
  orientation fixed; arc 15-75 deg about the vertical through the character, facing it; random
  1-3 points, spline-smoothed polyline of total length [1/4, 1] x distance, facing the character;
  static.
* Every camera keeps: nearest distance to the character's ground point > 0.5 m, pitch within
  +-45 deg, height >= ``MIN_HEIGHT_M`` (directions that would break a rule are not drawn).
* Speed: constant or variable (equal odds), see :mod:`trajectory.speed`.

Randomness: scene-level draws (radius, camera set) come from ``default_rng([seed, scene])``; each
camera's draws come from ``default_rng([seed, scene, camera])`` as one fixed block of uniforms, so a
camera never changes when cameras are added (extending scenes), and scene ``k`` never depends on
how many scenes are drawn. All geometry is vectorised over every camera of every scene at once.

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
from multicam.conventions import CAMERA_SETS, CM_PER_M, ue_location_forward_to_matrix
from trajectory.rng import camera_uniforms
from trajectory.speed import A_RANGE, progress

FloatArray = NDArray[np.float64]

TRAJECTORY_TYPES: tuple[str, ...] = ("pan", "tilt", "translation", "arc", "random", "static")
ALLOWED_RADII_M: tuple[float, ...] = (3.0, 5.0, 7.0, 10.0)
PAN_RANGE_DEG = (5.0, 45.0)
TILT_RANGE_DEG = (5.0, 30.0)
ARC_RANGE_DEG = (15.0, 75.0)
LENGTH_FRACTION = (0.25, 1.0)
MAX_PITCH_DEG = 45.0
MIN_DISTANCE_M = 0.5
MIN_HEIGHT_M = 0.2
START_FRACTION = 0.5
AIM_HEIGHT_FRACTION = 0.55
RANDOM_CANDIDATES = 4
TRANSLATION_DIRECTIONS: tuple[str, ...] = ("forward", "backward", "right", "left", "up", "down")

# Layout of each camera's block of uniforms.
_U_TYPE, _U_DIST, _U_AZ, _U_ELEV, _U_SPEED, _U_A, _U_ASIGN, _U_MAG, _U_DIR, _U_NPTS = range(10)
_U_RANDOM = 10  # RANDOM_CANDIDATES x (3 points x (azimuth, elevation, weight))
N_UNIFORMS = _U_RANDOM + RANDOM_CANDIDATES * 9
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

    @property
    def cameras(self) -> list[dict[str, Any]]:
        """Per-camera records (built on first use: sampling itself stays vectorised)."""
        if self._cameras is None:
            assert self._block is not None
            recs = []
            for row, c in zip(self._rows, self.camera_indices, strict=True):
                rec = self._block.camera_record(row, self.character_location_cm)
                rec.update(focal_mm=self.focal_mm, aperture=self.aperture,
                           seed=[self.seed, self.scene_index, c])
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

    def poses_frame_major(self) -> FloatArray:
        """``(F, C, 4, 4)``, the camera file's order."""
        return np.ascontiguousarray(np.swapaxes(self.poses_ue, 0, 1))

    def record(self) -> dict[str, Any]:
        """The ``scene.json`` record: every parameter drawn."""
        return {
            "scene_index": self.scene_index,
            "seed": self.seed,
            "radius_m": self.radius_m,
            "frames": self.frames,
            "camera_set": {"focal_mm": self.focal_mm, "aperture": self.aperture},
            "character": {
                "location_cm": [float(v) for v in self.character_location_cm],
                "height_m": self.character_height_m,
                "aim_point_cm": [
                    float(self.character_location_cm[0]),
                    float(self.character_location_cm[1]),
                    float(self.character_location_cm[2] + AIM_HEIGHT_FRACTION * self.character_height_m * CM_PER_M),
                ],
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


def _check_args(n_cameras: int, frames: int, radius_m: float | None, allowed: Sequence[float]) -> None:
    if n_cameras < 1:
        raise ValueError(f"n_cameras must be >= 1, got {n_cameras}")
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    bad = [r for r in allowed if float(r) not in ALLOWED_RADII_M]
    if bad or not allowed:
        raise ValueError(f"allowed radii must be a non-empty subset of {list(ALLOWED_RADII_M)}, got {list(allowed)}")
    if radius_m is not None and float(radius_m) not in ALLOWED_RADII_M:
        raise ValueError(f"radius_m must be one of {list(ALLOWED_RADII_M)}, got {radius_m}")


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
    trajectory_type: str | None = None,
) -> SceneBatch:
    """Sample scenes ``scene_indices`` (1-based ids) with ``n_cameras`` cameras each, vectorised.

    ``character_location_cm`` is one point or one per scene; ``camera_indices`` (0-based) selects
    which cameras to draw (default ``range(n_cameras)``), e.g. ``[10, 11]`` to extend a scene with
    cam11 and cam12 without touching cam01..cam10. ``trajectory_type`` (one of :data:`TRAJECTORY_TYPES`) forces
    every camera's type; its other draws are the camera's own.
    """
    _check_args(n_cameras, frames, radius_m, allowed_radii_m)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if camera_set is not None and not 0 <= camera_set < len(CAMERA_SETS):
        raise ValueError(f"camera_set must be in 0..{len(CAMERA_SETS) - 1}, got {camera_set}")
    scenes = [int(s) for s in scene_indices]
    cams = list(range(n_cameras)) if camera_indices is None else [int(c) for c in camera_indices]
    n_s, n_c = len(scenes), len(cams)
    loc = np.broadcast_to(np.asarray(character_location_cm, dtype=np.float64), (n_s, 3))
    height = np.broadcast_to(np.asarray(character_height_m, dtype=np.float64), (n_s,))
    allowed = np.asarray(sorted(float(r) for r in allowed_radii_m))

    # Scene-level draws: default_rng([seed, scene]); camera draws: default_rng([seed, scene, camera]),
    # computed for all cameras at once (trajectory.rng reproduces NumPy's streams bit for bit).
    u_scene = camera_uniforms([[seed, s] for s in scenes], 2)
    if radius_m is not None:
        radii = np.full(n_s, float(radius_m))
    else:
        radii = allowed[np.minimum((u_scene[:, 0] * len(allowed)).astype(np.int64), len(allowed) - 1)]
    if camera_set is not None:
        sets = np.full(n_s, camera_set, dtype=np.int64)
    else:
        sets = np.minimum((u_scene[:, 1] * len(CAMERA_SETS)).astype(np.int64), len(CAMERA_SETS) - 1)
    u = camera_uniforms([[seed, s, c] for s in scenes for c in cams], N_UNIFORMS)
    if trajectory_type is not None:
        if trajectory_type not in TRAJECTORY_TYPES:
            raise ValueError(f"trajectory_type must be one of {', '.join(TRAJECTORY_TYPES)}, got {trajectory_type!r}")
        u[:, _U_TYPE] = (TRAJECTORY_TYPES.index(trajectory_type) + 0.5) / len(TRAJECTORY_TYPES)

    aim_h = np.repeat(AIM_HEIGHT_FRACTION * height, n_c)
    result = sample_camera_block(u, np.repeat(radii, n_c), aim_h, frames)
    loc_rep = np.repeat(loc, n_c, axis=0)
    poses = result.poses_m_to_ue(loc_rep)

    poses = poses.reshape(n_s, n_c, frames, 4, 4)
    out = [
        SceneSample(int(seed), s, float(radii[i]), int(sets[i]), loc[i].copy(), float(height[i]), poses[i],
                    cams, result, range(i * n_c, (i + 1) * n_c))
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
    trajectory_type: str | None = None,
) -> SceneSample:
    """One scene (see :func:`sample_scenes`)."""
    return sample_scenes(
        seed, [scene_index], n_cameras=n_cameras, frames=frames, radius_m=radius_m,
        allowed_radii_m=allowed_radii_m, character_location_cm=character_location_cm,
        character_height_m=character_height_m, camera_set=camera_set, camera_indices=camera_indices,
        trajectory_type=trajectory_type,
    ).scenes[0]


# ------------------------------------------------------------------------------------------------
# The vectorised core: N cameras from N blocks of uniforms.
# ------------------------------------------------------------------------------------------------


def _lerp(lo_hi: tuple[float, float], u: FloatArray) -> FloatArray:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u


def _look_at(pos: FloatArray, target: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(pitch, yaw) in degrees of cameras at ``pos`` looking at ``target`` (UE axes, metres)."""
    d = target - pos
    yaw = np.degrees(dm.arctan2(d[..., 1], d[..., 0]))
    pitch = np.degrees(dm.arctan2(d[..., 2], dm.hypot(d[..., 0], d[..., 1])))
    return pitch, yaw


def _look_dir(pos: FloatArray, target: FloatArray) -> FloatArray:
    """Unit view directions from ``pos`` to ``target`` (no trigonometry: exact IEEE arithmetic)."""
    d = target - pos
    return d / dm.norm3(d)[..., None]


def _forward_from_angles(pitch_deg: FloatArray, yaw_deg: FloatArray) -> FloatArray:
    pitch_deg, yaw_deg = np.broadcast_arrays(pitch_deg, yaw_deg)
    (sp, cp), (sy, cy) = dm.sincos(np.radians(pitch_deg)), dm.sincos(np.radians(yaw_deg))
    return np.stack([cp * cy, cp * sy, sp], -1)


def _camera_axes(pitch_deg: FloatArray, yaw_deg: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Forward, right, up unit vectors (UE axes) for roll 0."""
    p, y = np.radians(pitch_deg), np.radians(yaw_deg)
    fwd = np.stack([dm.cos(p) * dm.cos(y), dm.cos(p) * dm.sin(y), dm.sin(p)], -1)
    right = np.stack([-dm.sin(y), dm.cos(y), np.zeros_like(y)], -1)
    up = np.stack([-dm.sin(p) * dm.cos(y), -dm.sin(p) * dm.sin(y), dm.cos(p)], -1)
    return fwd, right, up


def _segment_min_distance(p0: FloatArray, v: FloatArray) -> FloatArray:
    """Minimum |p0 + t v| over t in [0, 1] (distance of a segment to the origin)."""
    vv = np.sum(v * v, -1)
    t = np.clip(-np.sum(p0 * v, -1) / np.where(vv > 0, vv, 1.0), 0.0, 1.0)
    return dm.norm3(p0 + t[..., None] * v)


def _pick(feasible: NDArray[np.bool_], u: FloatArray) -> NDArray[np.int64]:
    """Uniform choice among the True columns of each row of ``feasible`` using ``u`` in [0, 1)."""
    counts = feasible.sum(-1)
    k = np.minimum((u * counts).astype(np.int64), np.maximum(counts - 1, 0))
    csum = np.cumsum(feasible, -1)
    return np.argmax(csum > k[:, None], axis=-1)


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
            rec["axis"] = {"forward": "+x", "backward": "-x", "right": "+y", "left": "-y",
                           "up": "+z", "down": "-z"}[str(p["direction"][n])]
        elif kind == "random":
            rec["length_m"] = float(p["length"][n])
            rec["n_points"] = int(p["n_points"][n])
            wp = p["waypoints"][n]
            rec["waypoints_cm"] = [[float(x) for x in w * CM_PER_M + ground_cm] for w in wp]
            rec["candidate"] = int(p["candidate"][n])
            rec["fallback"] = bool(p["fallback"][n])
        return rec


def sample_camera_block(
    u: FloatArray, radius_m: FloatArray, aim_height_m: FloatArray, frames: int
) -> CameraBlockResult:
    """Sample N cameras from ``u`` ``(N, N_UNIFORMS)``; radii and aim heights ``(N,)``."""
    n = u.shape[0]
    kind = np.minimum((u[:, _U_TYPE] * len(TRAJECTORY_TYPES)).astype(np.int64), len(TRAJECTORY_TYPES) - 1)
    aim = np.zeros((n, 3))
    aim[:, 2] = aim_height_m

    # --- start on the hemisphere ----------------------------------------------------------------
    dist = radius_m * (START_FRACTION + (1.0 - START_FRACTION) * u[:, _U_DIST])
    az = 360.0 * u[:, _U_AZ]
    # Elevation range: height >= MIN_HEIGHT_M and |pitch to the aim point| <= MAX_PITCH_DEG - 5 margin.
    grid = np.radians(np.linspace(0.0, MAX_PITCH_DEG, 91))
    z = dist[:, None] * dm.sin(grid)
    hor = dist[:, None] * dm.cos(grid)
    # |pitch| <= MAX_PITCH_DEG - 5 without trigonometry per grid point: |dz| <= tan(limit) * horizontal
    ok = (z >= MIN_HEIGHT_M) & (np.abs(aim_height_m[:, None] - z) <= np.tan(np.radians(MAX_PITCH_DEG - 5.0)) * hor)
    ok[:, -1] |= ~ok.any(-1)  # guarantee a non-empty range (never hit with the supported radii)
    lo = grid[np.argmax(ok, -1)]
    hi = grid[ok.shape[1] - 1 - np.argmax(ok[:, ::-1], -1)]
    elev = lo + (hi - lo) * u[:, _U_ELEV]
    p0 = np.stack([dist * dm.cos(elev) * dm.cos(np.radians(az)),
                   dist * dm.cos(elev) * dm.sin(np.radians(az)),
                   dist * dm.sin(elev)], -1)
    pitch0, yaw0 = _look_at(p0, aim)

    # --- speed -----------------------------------------------------------------------------------
    moving = kind != TRAJECTORY_TYPES.index("static")
    variable = moving & (u[:, _U_SPEED] < 0.5)
    a = np.where(variable, _lerp(A_RANGE, u[:, _U_A]) * np.where(u[:, _U_ASIGN] < 0.5, -1.0, 1.0), np.nan)
    s = progress(frames, a)  # (N, F)

    pos = np.repeat(p0[:, None, :], frames, axis=1)
    fwd0 = _look_dir(p0, aim)
    fwd = np.repeat(fwd0[:, None, :], frames, axis=1)
    angle = np.full(n, np.nan)
    length = np.full(n, np.nan)
    direction = np.array([""] * n, dtype=object)
    mag = u[:, _U_MAG]

    # pan: yaw about the world vertical, + = right
    m = kind == TRAJECTORY_TYPES.index("pan")
    if m.any():
        angle[m] = _lerp(PAN_RANGE_DEG, mag[m])
        sign = np.where(u[m, _U_DIR] < 0.5, 1.0, -1.0)
        direction[m] = np.where(sign > 0, "right", "left")
        fwd[m] = _forward_from_angles(pitch0[m, None], yaw0[m, None] + (sign * angle[m])[:, None] * s[m])

    # tilt: pitch about the camera's right axis, + = up; only directions that stay within +-45 deg
    m = kind == TRAJECTORY_TYPES.index("tilt")
    if m.any():
        angle[m] = _lerp(TILT_RANGE_DEG, mag[m])
        feas = np.stack([pitch0[m] + angle[m] <= MAX_PITCH_DEG, pitch0[m] - angle[m] >= -MAX_PITCH_DEG], -1)
        sign = np.where(_pick(feas, u[m, _U_DIR]) == 0, 1.0, -1.0)
        direction[m] = np.where(sign > 0, "up", "down")
        fwd[m] = _forward_from_angles(pitch0[m, None] + (sign * angle[m])[:, None] * s[m], yaw0[m, None])

    # translation along the camera's own axes
    m = kind == TRAJECTORY_TYPES.index("translation")
    if m.any():
        length[m] = dist[m] * _lerp(LENGTH_FRACTION, mag[m])
        ax_f, ax_r, ax_u = _camera_axes(pitch0[m], yaw0[m])
        dirs = np.stack([ax_f, -ax_f, ax_r, -ax_r, ax_u, -ax_u], 1)  # (M, 6, 3)
        disp = dirs * length[m][:, None, None]
        start = p0[m][:, None, :]
        end_z = start[..., 2] + disp[..., 2]
        feas = (_segment_min_distance(np.broadcast_to(start, disp.shape), disp) > MIN_DISTANCE_M + 1e-6) & (
            end_z >= MIN_HEIGHT_M
        )
        k = _pick(feas, u[m, _U_DIR])
        direction[m] = np.asarray(TRANSLATION_DIRECTIONS, dtype=object)[k]
        d = disp[np.arange(len(k)), k]
        pos[m] = p0[m, None, :] + d[:, None, :] * s[m][..., None]

    # arc about the vertical axis through the character, facing it; + = camera moves left
    m = kind == TRAJECTORY_TYPES.index("arc")
    if m.any():
        angle[m] = _lerp(ARC_RANGE_DEG, mag[m])
        sign = np.where(u[m, _U_DIR] < 0.5, 1.0, -1.0)
        direction[m] = np.where(sign > 0, "left", "right")
        phi = np.radians(az[m, None] + (sign * angle[m])[:, None] * s[m])
        r_h = dm.hypot(p0[m, 0], p0[m, 1])[:, None]
        pos[m] = np.stack([r_h * dm.cos(phi), r_h * dm.sin(phi), np.broadcast_to(p0[m, None, 2], phi.shape)], -1)
        fwd[m] = _look_dir(pos[m], aim[m, None, :])

    # random: smoothed polyline through 1-3 sampled points, facing the character
    m = kind == TRAJECTORY_TYPES.index("random")
    n_pts = np.zeros(n, dtype=np.int64)
    waypoints: list[FloatArray] = [np.zeros((0, 3))] * n
    cand = np.full(n, -1, dtype=np.int64)
    fallback = np.zeros(n, dtype=bool)
    if m.any():
        idx = np.flatnonzero(m)
        length[idx] = dist[idx] * _lerp(LENGTH_FRACTION, mag[idx])
        n_pts[idx] = 1 + np.minimum((u[idx, _U_NPTS] * 3).astype(np.int64), 2)
        rp, rfwd, rwp, rcand, rfb = _random_paths(
            u[idx], p0[idx], aim[idx], length[idx], n_pts[idx], s[idx]
        )
        pos[idx], fwd[idx] = rp, rfwd
        cand[idx], fallback[idx] = rcand, rfb
        for j, i in enumerate(idx):
            waypoints[i] = rwp[j]

    return CameraBlockResult(
        kind=kind, pos_m=pos, fwd=fwd, rotator0=np.stack([pitch0, yaw0, np.zeros(n)], -1), a=a,
        start={"distance": dist, "azimuth": az, "elevation": np.degrees(elev)},
        params={"angle": angle, "length": length, "direction": direction, "n_points": n_pts,
                "waypoints": waypoints, "candidate": cand, "fallback": fallback},
    )


@functools.cache
def _spline_weights(k: int) -> FloatArray:
    """Interpolating spline (degree min(3, k), uniform parameter) through k+1 points, sampled at _DENSE
    parameters, as a fixed ``(_DENSE, k+1)`` linear map of the points (a spline is linear in its data)."""
    spline = make_interp_spline(np.linspace(0.0, 1.0, k + 1), np.eye(k + 1), k=min(3, k), axis=0)
    w = np.asarray(spline(np.linspace(0.0, 1.0, _DENSE)), dtype=np.float64)
    w.setflags(write=False)
    return w


def _random_paths(
    u: FloatArray, p0: FloatArray, aim: FloatArray, length: FloatArray, n_pts: NDArray[np.int64], s: FloatArray
) -> tuple[FloatArray, FloatArray, list[FloatArray], NDArray[np.int64], NDArray[np.bool_]]:
    """Random-type cameras: try RANDOM_CANDIDATES candidate paths each, keep the first feasible one."""
    m, frames = u.shape[0], s.shape[1]
    dense_t = np.linspace(0.0, 1.0, _DENSE)
    # (m, cand, dense, 3) dense curve samples and (m, cand, 4, 3) control points
    dense = np.zeros((m, RANDOM_CANDIDATES, _DENSE, 3))
    ctrl = np.zeros((m, RANDOM_CANDIDATES, 4, 3))
    for c in range(RANDOM_CANDIDATES):
        block = u[:, _U_RANDOM + 9 * c: _U_RANDOM + 9 * (c + 1)].reshape(m, 3, 3)
        seg_az = 2 * np.pi * block[..., 0]
        seg_el = np.radians(_lerp((-35.0, 35.0), block[..., 1]))
        w = 0.2 + 0.8 * block[..., 2]
        w = np.where(np.arange(3)[None, :] < n_pts[:, None], w, 0.0)
        w = w / w.sum(-1, keepdims=True)
        seg = np.stack([dm.cos(seg_el) * dm.cos(seg_az), dm.cos(seg_el) * dm.sin(seg_az), dm.sin(seg_el)], -1)
        seg = seg * (w * length[:, None])[..., None]
        ctrl[:, c, 0] = p0
        ctrl[:, c, 1:] = p0[:, None, :] + np.cumsum(seg, axis=1)
    for k in (1, 2, 3):
        sel = n_pts == k
        if sel.any():
            # dense = W_k @ control points, element by element (einsum, no BLAS): bit-stable whatever the batch
            dense[sel] = np.einsum("dj,mcjx->mcdx", _spline_weights(k), ctrl[sel][:, :, : k + 1])
    # scale about the start so that the curve's arc length is exactly `length`
    seglen = dm.norm3(np.diff(dense, axis=2))
    arclen = np.concatenate([np.zeros(seglen.shape[:2] + (1,)), np.cumsum(seglen, -1)], -1)
    total = arclen[..., -1]
    scale = length[:, None] / np.where(total > 0, total, 1.0)
    dense = p0[:, None, None, :] + (dense - p0[:, None, None, :]) * scale[..., None, None]
    ctrl = p0[:, None, None, :] + (ctrl - p0[:, None, None, :]) * scale[..., None, None]
    arclen = arclen * scale[..., None]
    # feasibility over the dense samples
    rel = dense - aim[:, None, None, :]
    tan_max = np.tan(np.radians(MAX_PITCH_DEG - 1.0))
    feas = (
        (dm.norm3(dense).min(-1) > MIN_DISTANCE_M + 0.05)
        & (dense[..., 2].min(-1) >= MIN_HEIGHT_M)
        & np.all(np.abs(rel[..., 2]) <= tan_max * dm.hypot(rel[..., 0], rel[..., 1]), axis=-1)
    )
    any_ok = feas.any(-1)
    choice = np.where(any_ok, np.argmax(feas, -1), 0)
    rows = np.arange(m)
    curve = dense[rows, choice]  # (m, DENSE, 3)
    arc = arclen[rows, choice]  # (m, DENSE)
    wps = ctrl[rows, choice]
    # Fallback (no feasible candidate): a straight horizontal move along the camera's right axis,
    # which only ever increases the distance to the character and keeps height and pitch.
    fb = ~any_ok
    if fb.any():
        _, yaw0 = _look_at(p0[fb], aim[fb])
        right = np.stack([-dm.sin(np.radians(yaw0)), dm.cos(np.radians(yaw0)), np.zeros_like(yaw0)], -1)
        curve[fb] = p0[fb, None, :] + right[:, None, :] * (length[fb, None, None] * dense_t[None, :, None])
        arc[fb] = length[fb, None] * dense_t[None, :]
        wps[fb] = p0[fb, None, :] + right[:, None, :] * length[fb, None, None] * np.array([0, 1, 1, 1.0])[None, :, None]
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
    fwd = _look_dir(pos, aim[:, None, :])
    wp_list = [wps[i, 1: int(n_pts[i]) + 1] for i in range(m)]
    return pos, fwd, wp_list, np.where(any_ok, choice, -1), fb
