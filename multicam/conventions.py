"""The one place that knows camera and world conventions.

Every frame conversion and every intrinsics computation in MultiCam goes through this module.
Nothing else in the code base (trajectory sampler, exporters, Blender backend, ``recam``) repeats
this math; the Unreal scripts in ``ue_scripts/`` never convert at all, they replay UE poses.

Frames
------
UE world (``ue``)
    Unreal Engine: left-handed, X forward, Y right, Z up, centimetres.
UE camera / pose (``ue_matrix``)
    UE's row-vector 4x4 transform as stored by MultiCamVideo: row 0 = camera forward (X) axis in
    world, row 1 = right (Y), row 2 = up (Z), row 3 = location in cm with a trailing 1.
    ``p_world_row = p_local_row @ M``.
UE rotator
    (pitch, yaw, roll) in degrees. Positive yaw turns the view from +X toward +Y (to the right seen
    from above), positive pitch looks up, positive roll rotates about the forward axis clockwise as
    seen from behind the camera (UE's ``FRotationMatrix``).
Right-handed world (``rh``)
    Metres, Z up, made right-handed by the documented axis map ``RH_FROM_UE = diag(1, -1, 1)``:
    ``x_rh = x_ue / 100``, ``y_rh = -y_ue / 100``, ``z_rh = z_ue / 100``. This is also the Blender
    world (Blender is right-handed, Z up, metres).
OpenCV camera (``opencv``)
    x right, y down, z forward. ``c2w`` maps camera to the right-handed world (metres).
OpenGL / Blender camera (``opengl``)
    x right, y up, z backward (the camera looks down -z). ``c2w`` maps camera to the RH world;
    a Blender camera object's ``matrix_world`` is exactly this matrix.
ReCamMaster (``recammaster``)
    The convention of ReCamMaster's public code: the UE matrix transposed to a column-vector c2w,
    its columns reordered to (right, -up, forward) and the translation divided by 100, world left
    in UE axes (so the rotation block has determinant -1). Used by ``recam`` only.

All functions are vectorised: poses are arrays of shape ``(..., 4, 4)``, vectors ``(..., 3)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multicam import detmath

FloatArray = NDArray[np.float64]

CM_PER_M = 100.0
SENSOR_WIDTH_MM = 23.76
SENSOR_HEIGHT_MM = 23.76

#: The dataset's four camera sets: (focal length mm, aperture f-number), and their folder names.
CAMERA_SETS: tuple[tuple[float, float], ...] = ((18.0, 10.0), (24.0, 5.0), (35.0, 2.4), (50.0, 2.4))

#: Right-handed world axes expressed from UE world axes (a reflection of Y). Its own inverse.
RH_FROM_UE: FloatArray = np.diag([1.0, -1.0, 1.0])


def camera_set_folder(focal_mm: float, aperture: float) -> str:
    """``f18_aperture10``, ``f35_aperture2.4``: the dataset's folder name for a camera set."""
    return f"f{focal_mm:g}_aperture{aperture:g}"


# ----------------------------------------------------------------------------------------------
# UE matrix <-> (location, rotator)
# ----------------------------------------------------------------------------------------------


def ue_rotator_to_axes(rotator_deg: ArrayLike) -> FloatArray:
    """UE rotator(s) ``(..., 3)`` as (pitch, yaw, roll) degrees -> rows X, Y, Z ``(..., 3, 3)``.

    Matches UE's ``FRotationMatrix`` (row-vector convention): row 0 is the forward axis.
    """
    r = np.radians(np.asarray(rotator_deg, dtype=np.float64))
    sp, cp = detmath.sincos(r[..., 0])
    sy, cy = detmath.sincos(r[..., 1])
    sr, cr = detmath.sincos(r[..., 2])
    out = np.empty(r.shape[:-1] + (3, 3))
    out[..., 0, 0] = cp * cy
    out[..., 0, 1] = cp * sy
    out[..., 0, 2] = sp
    out[..., 1, 0] = sr * sp * cy - cr * sy
    out[..., 1, 1] = sr * sp * sy + cr * cy
    out[..., 1, 2] = -sr * cp
    out[..., 2, 0] = -(cr * sp * cy + sr * sy)
    out[..., 2, 1] = cy * sr - cr * sp * sy
    out[..., 2, 2] = cr * cp
    return out


def ue_location_rotator_to_matrix(location_cm: ArrayLike, rotator_deg: ArrayLike) -> FloatArray:
    """UE location (cm) and rotator (deg) -> UE row-vector 4x4 matrix ``(..., 4, 4)``."""
    loc = np.asarray(location_cm, dtype=np.float64)
    axes = ue_rotator_to_axes(rotator_deg)
    shape = np.broadcast_shapes(loc.shape[:-1], axes.shape[:-2])
    out = np.zeros(shape + (4, 4))
    out[..., :3, :3] = axes
    out[..., 3, :3] = loc
    out[..., 3, 3] = 1.0
    return out


def ue_location_pitch_yaw_to_matrix(
    location_cm: ArrayLike, pitch_deg: ArrayLike, yaw_deg: ArrayLike
) -> FloatArray:
    """Roll-free special case of :func:`ue_location_rotator_to_matrix` (same result, ~3x faster).

    Location ``(..., 3)`` cm, pitch and yaw ``(...)`` degrees -> ``(..., 4, 4)``. The sampler's hot path.
    """
    loc = np.asarray(location_cm, dtype=np.float64)
    p = np.radians(np.asarray(pitch_deg, dtype=np.float64))
    y = np.radians(np.asarray(yaw_deg, dtype=np.float64))
    (sp, cp), (sy, cy) = detmath.sincos(p), detmath.sincos(y)
    out = np.zeros(np.broadcast_shapes(loc.shape[:-1], p.shape, y.shape) + (4, 4))
    np.multiply(cp, cy, out=out[..., 0, 0])
    np.multiply(cp, sy, out=out[..., 0, 1])
    out[..., 0, 2] = sp
    np.negative(sy, out=out[..., 1, 0])
    out[..., 1, 1] = cy
    np.multiply(sp, cy, out=out[..., 2, 0])
    np.negative(out[..., 2, 0], out=out[..., 2, 0])
    np.multiply(sp, sy, out=out[..., 2, 1])
    np.negative(out[..., 2, 1], out=out[..., 2, 1])
    out[..., 2, 2] = cp
    out[..., 3, :3] = loc
    out[..., 3, 3] = 1.0
    return out


def ue_location_forward_to_matrix(location_cm: ArrayLike, forward: ArrayLike) -> FloatArray:
    """UE pose of a roll-free camera from its location (cm) and unit view direction ``(..., 3)``.

    Rows: forward, right = (-f_y, f_x, 0) / |f_xy| (horizontal), up = forward x right (as numbers).
    Equals :func:`ue_location_pitch_yaw_to_matrix` for the same direction; no trigonometry, so it is
    exact IEEE arithmetic (bit-reproducible). Undefined for a camera looking straight up or down.
    """
    f = np.asarray(forward, dtype=np.float64)
    loc = np.asarray(location_cm, dtype=np.float64)
    shape = np.broadcast_shapes(loc.shape, f.shape)[:-1]
    f = np.broadcast_to(f, shape + (3,)).reshape(-1, 3)
    loc = np.broadcast_to(loc, shape + (3,)).reshape(-1, 3)
    n = f.shape[0]
    out = np.empty((n, 16))
    # Cache-blocked: build each block component-major (contiguous writes), then one transposing copy
    # that stays in cache; ~3x faster than 16 strided passes over (N, 4, 4) at the sampler's sizes.
    cm = np.zeros((16, min(n, _BLOCK)))
    cm[15] = 1.0
    for s in range(0, n, _BLOCK):
        e = min(s + _BLOCK, n)
        fx, fy, fz = f[s:e, 0], f[s:e, 1], f[s:e, 2]
        h = np.sqrt(fx * fx + fy * fy)
        rx, ry = -fy / h, fx / h
        c = cm[:, : e - s]
        c[0], c[1], c[2] = fx, fy, fz
        c[4], c[5] = rx, ry
        # up = forward x right with right_z = 0
        c[8], c[9], c[10] = -fz * ry, fz * rx, fx * ry - fy * rx
        c[12:15] = loc[s:e].T
        out[s:e] = c.T
    return out.reshape(shape + (4, 4))


_BLOCK = 4096


def ue_matrix_to_location_rotator(matrix: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """UE row-vector matrix ``(..., 4, 4)`` -> (location cm ``(..., 3)``, rotator deg ``(..., 3)``).

    Same algorithm as UE's ``FMatrix::Rotator``; scale is ignored (axes are normalised).
    """
    m = np.asarray(matrix, dtype=np.float64)
    x = m[..., 0, :3] / np.linalg.norm(m[..., 0, :3], axis=-1, keepdims=True)
    y = m[..., 1, :3] / np.linalg.norm(m[..., 1, :3], axis=-1, keepdims=True)
    z = m[..., 2, :3] / np.linalg.norm(m[..., 2, :3], axis=-1, keepdims=True)
    pitch = np.degrees(np.arctan2(x[..., 2], np.hypot(x[..., 0], x[..., 1])))
    yaw = np.degrees(np.arctan2(x[..., 1], x[..., 0]))
    ref = ue_rotator_to_axes(np.stack([pitch, yaw, np.zeros_like(yaw)], axis=-1))
    sy_axis = ref[..., 1, :]
    roll = np.degrees(np.arctan2(np.sum(z * sy_axis, -1), np.sum(y * sy_axis, -1)))
    return m[..., 3, :3].copy(), np.stack([pitch, yaw, roll], axis=-1)


def ue_look_at_rotator(eye_cm: ArrayLike, target_cm: ArrayLike) -> FloatArray:
    """Rotator (pitch, yaw, 0) in degrees of a camera at ``eye_cm`` looking at ``target_cm`` (UE)."""
    d = np.asarray(target_cm, dtype=np.float64) - np.asarray(eye_cm, dtype=np.float64)
    yaw = np.degrees(np.arctan2(d[..., 1], d[..., 0]))
    pitch = np.degrees(np.arctan2(d[..., 2], np.hypot(d[..., 0], d[..., 1])))
    return np.stack([pitch, yaw, np.zeros_like(yaw)], axis=-1)


#: The character's aim point (where every sampled camera looks) above its ground point, as a fraction of its
#: height: ~1 m for a 1.8 m character, the body's centre.
AIM_HEIGHT_FRACTION = 0.55


def default_aim_height_m(height_m: ArrayLike) -> FloatArray:
    """Aim height (m above the ground point) of a character of ``height_m`` whose catalog entry gives none."""
    return AIM_HEIGHT_FRACTION * np.asarray(height_m, dtype=np.float64)


def ue_look_at_pitch_yaw(eye: ArrayLike, target: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(pitch, yaw) in degrees ``(...)`` of roll-free cameras at ``eye`` looking at ``target`` ``(..., 3)``
    (UE axes, any one length unit). Bit-reproducible (``multicam.detmath``); :func:`ue_look_at_rotator` is the
    same angle with NumPy's own kernels."""
    d = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    yaw = np.degrees(detmath.arctan2(d[..., 1], d[..., 0]))
    pitch = np.degrees(detmath.arctan2(d[..., 2], detmath.hypot(d[..., 0], d[..., 1])))
    return pitch, yaw


def ue_look_direction(eye: ArrayLike, target: ArrayLike) -> FloatArray:
    """Unit view directions ``(..., 3)`` from ``eye`` to ``target`` (UE axes); IEEE-exact arithmetic only."""
    d = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    return d / detmath.norm3(d)[..., None]


def ue_pitch_yaw_to_forward(pitch_deg: ArrayLike, yaw_deg: ArrayLike) -> FloatArray:
    """Forward (view) unit vectors ``(..., 3)`` of roll-free UE rotators (row 0 of :func:`ue_rotator_to_axes`)."""
    p, y = np.broadcast_arrays(np.asarray(pitch_deg, dtype=np.float64), np.asarray(yaw_deg, dtype=np.float64))
    (sp, cp), (sy, cy) = detmath.sincos(np.radians(p)), detmath.sincos(np.radians(y))
    return np.stack([cp * cy, cp * sy, sp], -1).reshape(p.shape + (3,))


def ue_pitch_yaw_to_axes(pitch_deg: ArrayLike, yaw_deg: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Forward, right, up unit vectors ``(..., 3)`` (UE world axes) of roll-free rotators: the rows of
    :func:`ue_rotator_to_axes` for roll 0, right horizontal."""
    p, y = np.radians(np.asarray(pitch_deg, dtype=np.float64)), np.radians(np.asarray(yaw_deg, dtype=np.float64))
    shape = np.broadcast_shapes(p.shape, y.shape) + (3,)
    fwd = np.stack([detmath.cos(p) * detmath.cos(y), detmath.cos(p) * detmath.sin(y), detmath.sin(p)], -1)
    right = np.stack([-detmath.sin(y), detmath.cos(y), np.zeros_like(detmath.sin(y))], -1)
    up = np.stack([-detmath.sin(p) * detmath.cos(y), -detmath.sin(p) * detmath.sin(y), detmath.cos(p)], -1)
    return fwd.reshape(shape), right.reshape(shape), up.reshape(shape)


# ----------------------------------------------------------------------------------------------
# Points
# ----------------------------------------------------------------------------------------------


def ue_to_rh_points(points_cm: ArrayLike) -> FloatArray:
    """UE world points (cm) -> right-handed world points (m). Also the Blender world."""
    return (np.asarray(points_cm, dtype=np.float64) @ RH_FROM_UE) / CM_PER_M


def rh_to_ue_points(points_m: ArrayLike) -> FloatArray:
    """Right-handed world points (m) -> UE world points (cm)."""
    return (np.asarray(points_m, dtype=np.float64) @ RH_FROM_UE) * CM_PER_M


# ----------------------------------------------------------------------------------------------
# UE pose <-> OpenCV / OpenGL camera-to-world
# ----------------------------------------------------------------------------------------------

# Columns of the camera axes in terms of UE camera axes (forward X, right Y, up Z), as signed
# selections: camera_axis_k = sign_k * ue_axis[index_k].
_OPENCV_FROM_UE_AXES = ((1, 1.0), (2, -1.0), (0, 1.0))  # x=right, y=-up (down), z=forward
_OPENGL_FROM_UE_AXES = ((1, 1.0), (2, 1.0), (0, -1.0))  # x=right, y=up, z=-forward (backward)


def _ue_to_c2w(matrix: ArrayLike, axes: tuple[tuple[int, float], ...]) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    out = np.zeros(m.shape[:-2] + (4, 4))
    for col, (row, sign) in enumerate(axes):
        out[..., :3, col] = sign * (m[..., row, :3] @ RH_FROM_UE)
    out[..., :3, 3] = ue_to_rh_points(m[..., 3, :3])
    out[..., 3, 3] = 1.0
    return out


def _c2w_to_ue(c2w: ArrayLike, axes: tuple[tuple[int, float], ...]) -> FloatArray:
    c = np.asarray(c2w, dtype=np.float64)
    out = np.zeros(c.shape[:-2] + (4, 4))
    for col, (row, sign) in enumerate(axes):
        out[..., row, :3] = sign * (c[..., :3, col] @ RH_FROM_UE)
    out[..., 3, :3] = rh_to_ue_points(c[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def ue_to_opencv_c2w(ue_matrix: ArrayLike) -> FloatArray:
    """UE row-vector pose(s) -> OpenCV camera-to-world (x right, y down, z forward), RH world, m."""
    return _ue_to_c2w(ue_matrix, _OPENCV_FROM_UE_AXES)


def opencv_c2w_to_ue(c2w: ArrayLike) -> FloatArray:
    """Inverse of :func:`ue_to_opencv_c2w`."""
    return _c2w_to_ue(c2w, _OPENCV_FROM_UE_AXES)


def ue_to_opencv_w2c(ue_matrix: ArrayLike) -> FloatArray:
    """UE pose(s) -> OpenCV world-to-camera (extrinsic ``[R|t]`` as 4x4), RH world in metres."""
    return invert_rigid(ue_to_opencv_c2w(ue_matrix))


def opencv_w2c_to_ue(w2c: ArrayLike) -> FloatArray:
    """Inverse of :func:`ue_to_opencv_w2c`."""
    return opencv_c2w_to_ue(invert_rigid(w2c))


def ue_to_opengl_c2w(ue_matrix: ArrayLike) -> FloatArray:
    """UE pose(s) -> OpenGL/Blender camera-to-world (x right, y up, z back); Blender ``matrix_world``."""
    return _ue_to_c2w(ue_matrix, _OPENGL_FROM_UE_AXES)


def opengl_c2w_to_ue(c2w: ArrayLike) -> FloatArray:
    """Inverse of :func:`ue_to_opengl_c2w` (e.g. a Blender camera's ``matrix_world`` -> UE pose)."""
    return _c2w_to_ue(c2w, _OPENGL_FROM_UE_AXES)


ue_to_blender_c2w = ue_to_opengl_c2w
blender_c2w_to_ue = opengl_c2w_to_ue


def opencv_to_opengl_c2w(c2w: ArrayLike) -> FloatArray:
    """Flip the camera's y and z axes: OpenCV c2w <-> OpenGL c2w (the map is its own inverse)."""
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[..., :3, 1:3] *= -1.0
    return out


opengl_to_opencv_c2w = opencv_to_opengl_c2w


def ue_to_recammaster_c2w(ue_matrix: ArrayLike) -> FloatArray:
    """UE pose(s) -> ReCamMaster's camera-to-world: transpose, columns (right, -up, forward), /100.

    The world stays in UE axes (no handedness fix), exactly as ReCamMaster's data loader does.
    """
    m = np.asarray(ue_matrix, dtype=np.float64)
    c2w = np.swapaxes(m, -1, -2).copy()  # columns: forward, right, up, location
    out = np.empty_like(c2w)
    out[..., :, 0] = c2w[..., :, 1]
    out[..., :, 1] = -c2w[..., :, 2]
    out[..., :, 2] = c2w[..., :, 0]
    out[..., :, 3] = c2w[..., :, 3]
    out[..., :3, 3] /= CM_PER_M
    out[..., 3, :] = (0.0, 0.0, 0.0, 1.0)
    return out


def invert_rigid(t: ArrayLike) -> FloatArray:
    """Inverse of rigid transforms ``(..., 4, 4)`` (rotation transposed, no general inverse)."""
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros_like(t)
    r_t = np.swapaxes(t[..., :3, :3], -1, -2)
    out[..., :3, :3] = r_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", r_t, t[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


# ----------------------------------------------------------------------------------------------
# Intrinsics
# ----------------------------------------------------------------------------------------------

SensorFit = Literal["horizontal", "vertical", "auto"]


def intrinsics_matrix(
    focal_mm: float | ArrayLike,
    width_px: int,
    height_px: int,
    sensor_width_mm: float = SENSOR_WIDTH_MM,
    sensor_height_mm: float = SENSOR_HEIGHT_MM,
    sensor_fit: SensorFit = "horizontal",
) -> FloatArray:
    """3x3 OpenCV K (square pixels, principal point at the image centre) ``(..., 3, 3)``.

    ``sensor_fit`` says which sensor side spans the image: ``horizontal`` (UE and MultiCamVideo:
    the filmback width maps to the image width), ``vertical``, or ``auto`` (the larger image side,
    as Blender does). Continuous pixel convention: cx = W / 2, the pixel (0, 0) covers
    [0, 1) x [0, 1), so its centre is at (0.5, 0.5); subtract 0.5 for OpenCV's integer centres.
    """
    if width_px <= 0 or height_px <= 0:
        raise ValueError(f"image size must be positive, got {width_px}x{height_px}")
    f = np.asarray(focal_mm, dtype=np.float64)
    if np.any(f <= 0):
        raise ValueError(f"focal_mm must be > 0, got {focal_mm!r}")
    if sensor_fit == "auto":
        sensor_fit = "horizontal" if width_px >= height_px else "vertical"
    if sensor_fit == "horizontal":
        fpx = f / sensor_width_mm * width_px
    elif sensor_fit == "vertical":
        fpx = f / sensor_height_mm * height_px
    else:
        raise ValueError(f"sensor_fit must be horizontal, vertical or auto, got {sensor_fit!r}")
    k = np.zeros(f.shape + (3, 3))
    k[..., 0, 0] = fpx
    k[..., 1, 1] = fpx
    k[..., 0, 2] = width_px / 2.0
    k[..., 1, 2] = height_px / 2.0
    k[..., 2, 2] = 1.0
    return k


def horizontal_fov_deg(focal_mm: float, sensor_width_mm: float = SENSOR_WIDTH_MM) -> float:
    """Horizontal field of view in degrees."""
    return float(np.degrees(2.0 * np.arctan(sensor_width_mm / (2.0 * focal_mm))))


def project_points_ue(
    points_cm: ArrayLike, ue_matrix: ArrayLike, k: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Project UE world points ``(..., N, 3)`` through UE poses ``(..., 4, 4)`` and K.

    Returns (pixel coordinates ``(..., N, 2)`` in the continuous convention of
    :func:`intrinsics_matrix`, depth along the optical axis in metres ``(..., N)``).
    """
    w2c = ue_to_opencv_w2c(ue_matrix)
    p = ue_to_rh_points(points_cm)
    pc = np.einsum("...ij,...nj->...ni", w2c[..., :3, :3], p) + w2c[..., None, :3, 3]
    kk = np.asarray(k, dtype=np.float64)
    uvw = np.einsum("...ij,...nj->...ni", kk, pc)
    depth = pc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[..., :2] / uvw[..., 2:3]
    return uv, depth


def ue_yaw_to_rh_yaw(yaw_deg: ArrayLike) -> FloatArray:
    """UE yaw in degrees (+ turns +X toward +Y_ue, clockwise seen from above) -> the right-handed
    (Blender) rotation about +Z in radians (+ = counter-clockwise), for objects placed by yaw.

    ``Rz(ue_yaw_to_rh_yaw(y)) @ [1, 0, 0]`` is the UE forward axis of rotator ``(0, y, 0)`` mapped by
    ``RH_FROM_UE``, i.e. the reflection turns a UE yaw into its negative.
    """
    return -np.radians(np.asarray(yaw_deg, dtype=np.float64))


def ue_engine_zero_signs(matrix: ArrayLike) -> FloatArray:
    """The same matrices ``(..., 4, 4)`` with each exact zero of the rotation block signed as Unreal prints it.

    Unreal writes a camera's pose as ``FTransform::ToMatrixWithScale`` (TransformNonVectorized.h) of the quaternion
    from ``FRotator::Quaternion`` (UnrealMath.cpp), so zeros come out signed by that arithmetic: the identity
    rotator prints ``[1 0 0 0] [-0 1 0 0] [0 -0 1 0]`` in the released files (``Y = -CR*SP*CY - SR*CP*SY`` is
    ``-0``). Values are unchanged: only the sign bit of entries that are zero here and in the engine's product
    follows the engine, so the files read byte for byte like the released ones.
    """
    m = np.array(matrix, dtype=np.float64, copy=True)
    _, rot = ue_matrix_to_location_rotator(m)
    half = np.radians(np.fmod(rot, 360.0)) / 2.0  # FMath::Fmod(angle, 360) * RADS_DIVIDED_BY_2
    sp, cp = np.sin(half[..., 0]), np.cos(half[..., 0])
    sy, cy = np.sin(half[..., 1]), np.cos(half[..., 1])
    sr, cr = np.sin(half[..., 2]), np.cos(half[..., 2])
    x = cr * sp * sy - sr * cp * cy
    y = -cr * sp * cy - sr * cp * sy
    z = cr * cp * sy - sr * sp * cy
    w = cr * cp * cy + sr * sp * sy
    x2, y2, z2 = x + x, y + y, z + z
    xx2, yy2, zz2 = x * x2, y * y2, z * z2
    yz2, wx2, xy2, wz2, xz2, wy2 = y * z2, w * x2, x * y2, w * z2, x * z2, w * y2
    eng = np.empty(m.shape[:-2] + (3, 3))
    eng[..., 0, 0], eng[..., 1, 1], eng[..., 2, 2] = 1.0 - (yy2 + zz2), 1.0 - (xx2 + zz2), 1.0 - (xx2 + yy2)
    eng[..., 2, 1], eng[..., 1, 2] = yz2 - wx2, yz2 + wx2
    eng[..., 1, 0], eng[..., 0, 1] = xy2 - wz2, xy2 + wz2
    eng[..., 2, 0], eng[..., 0, 2] = xz2 + wy2, xz2 - wy2
    rot_block = m[..., :3, :3]
    zero = (rot_block == 0.0) & (eng == 0.0)
    rot_block[zero] = np.copysign(0.0, eng[zero])
    return m


# ----------------------------------------------------------------------------------------------
# Export helpers: clean rotations, quaternions, pixel conventions of other tools
# ----------------------------------------------------------------------------------------------


def nearest_rotation(r: ArrayLike) -> FloatArray:
    """The proper rotation(s) closest to ``r`` ``(..., 3, 3)`` in the Frobenius norm (SVD polar factor).

    The released camera files print 6 significant digits, so their rotations are orthonormal to ~1e-6 only; this
    makes them orthonormal to machine precision with det +1 (it changes the matrix by that ~1e-6). Raises
    ``ValueError`` when a matrix is a reflection (det < 0): no rotation is near it.
    """
    a = np.asarray(r, dtype=np.float64)
    if np.any(np.linalg.det(a) <= 0):
        raise ValueError("a matrix with det <= 0 (a reflection) has no nearest rotation")
    u, _, vt = np.linalg.svd(a)
    return u @ vt


def rotation_to_quaternion_wxyz(r: ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 3, 3)`` (column-vector convention, ``x' = R x``) -> unit quaternions
    ``(..., 4)`` as (w, x, y, z) with w >= 0 (Hamilton, COLMAP's ``QW QX QY QZ``). Shepperd's method: the
    largest of the four squared components is taken first, so no branch divides by a small number."""
    m = np.asarray(r, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cand = np.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    k = np.argmax(cand, -1)
    q = np.empty(m.shape[:-2] + (4,))
    # Each branch: 4 q_i q_j products from the matrix, normalised by the largest component.
    sw = np.sqrt(np.maximum(1.0 + tr, 0.0)) * 2.0
    sx = np.sqrt(np.maximum(1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 0.0)) * 2.0
    sy = np.sqrt(np.maximum(1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 0.0)) * 2.0
    sz = np.sqrt(np.maximum(1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], 0.0)) * 2.0
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s21, s02, s10 = m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        branches = (
            np.stack([0.25 * sw, d21 / sw, d02 / sw, d10 / sw], -1),
            np.stack([d21 / sx, 0.25 * sx, s10 / sx, s02 / sx], -1),
            np.stack([d02 / sy, s10 / sy, 0.25 * sy, s21 / sy], -1),
            np.stack([d10 / sz, s02 / sz, s21 / sz, 0.25 * sz], -1),
        )
    for i, b in enumerate(branches):
        sel = k == i
        q[sel] = b[sel]
    q *= np.where(q[..., :1] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quaternion_wxyz_to_rotation(q: ArrayLike) -> FloatArray:
    """Unit quaternions ``(..., 4)`` (w, x, y, z) -> rotation matrices ``(..., 3, 3)``; inverse of
    :func:`rotation_to_quaternion_wxyz`."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    out = np.empty(w.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
    out[..., 2, 0], out[..., 2, 1], out[..., 2, 2] = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
    return out


def k_to_integer_pixel_centres(k: ArrayLike) -> FloatArray:
    """K in this module's continuous pixel convention (pixel (0, 0) covers [0, 1)^2, cx = W/2) -> K for OpenCV's
    integer pixel centres (pixel (0, 0) is centred at (0, 0), cx = W/2 - 0.5): the principal point moves by -0.5.

    COLMAP, nerfstudio and RealEstate10K use the continuous convention (COLMAP: "the center of the upper left pixel
    is at (0.5, 0.5)"); ``cv2.projectPoints`` and pixel indexing ``img[v, u]`` use integer centres."""
    out = np.array(k, dtype=np.float64, copy=True)
    out[..., 0, 2] -= 0.5
    out[..., 1, 2] -= 0.5
    return out


def normalized_intrinsics(k: ArrayLike, width_px: int, height_px: int) -> FloatArray:
    """(fx / W, fy / H, cx / W, cy / H) ``(..., 4)`` of a continuous-convention K: RealEstate10K's and CameraCtrl's
    image-size-free intrinsics (cx = 0.5 is the image centre)."""
    kk = np.asarray(k, dtype=np.float64)
    return np.stack([kk[..., 0, 0] / width_px, kk[..., 1, 1] / height_px,
                     kk[..., 0, 2] / width_px, kk[..., 1, 2] / height_px], -1)


def ue_to_clean_opencv_c2w(ue_matrix: ArrayLike) -> FloatArray:
    """:func:`ue_to_opencv_c2w` with the rotation block projected on the nearest rotation (det +1 to machine
    precision): what every exporter writes. ``ValueError`` for a pose whose UE rotation is a reflection."""
    c2w = ue_to_opencv_c2w(ue_matrix)
    c2w[..., :3, :3] = nearest_rotation(c2w[..., :3, :3])
    return c2w
#: Depth maps (both backends' ``depth/camNN/00000.png``): planar depth (along the optical axis) in millimetres as
#: uint16; 0 = no surface (sky) or farther than :data:`DEPTH_PNG_MAX_M`.
DEPTH_PNG_MM_PER_M = 1000.0
DEPTH_PNG_MAX_M = 65.0


def planar_depth_m_to_png_mm(depth_m: ArrayLike) -> NDArray[np.uint16]:
    """Planar depth in metres -> the uint16 millimetres of a depth PNG (0 where not finite or >= 65 m)."""
    z = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(z) & (z > 0) & (z < DEPTH_PNG_MAX_M)
    return np.where(ok, np.round(np.where(ok, z, 0.0) * DEPTH_PNG_MM_PER_M), 0).astype(np.uint16)
