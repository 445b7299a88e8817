"""Body and prop clearance: how far camera positions stay from the character's body and the scene's props.

The body is a vertical capsule: the segment from the character's ground point up to its head height
(``height_m``, from the catalog), swollen by ``BODY_RADIUS_M``. A camera keeps clear when every position it
takes, at a frame *and between frames* (the straight segment joining consecutive frames), is more than
``BODY_RADIUS_M`` from that segment. Positions here are metres relative to the ground point, UE axes
(Z up); everything is vectorised over leading axes.

Props (benches, lamps, plants of the Blender environments) are vertical columns: a prop at ``xy`` with radius
``r`` keeps clear of a camera when every horizontal position the camera takes is more than
``PROP_CAMERA_GAP_M + r`` from ``xy``. The environments place a prop only where the planned cameras' frames keep
this gap; :func:`clear_of_props` checks a camera path at its frames and on the segments between them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: Radius of the body capsule (m): no camera comes closer to the segment ground point -> head.
BODY_RADIUS_M = 0.5
#: Horizontal gap (m) between a camera and a prop's footprint (its radius around its centre).
PROP_CAMERA_GAP_M = 1.2


def point_body_distance(p_m: ArrayLike, height_m: ArrayLike) -> FloatArray:
    """Distance ``(...)`` of points ``(..., 3)`` (relative to the ground point) to the body axis segment
    from ``(0, 0, 0)`` to ``(0, 0, height_m)``; the capsule's surface is at ``BODY_RADIUS_M``."""
    p = np.asarray(p_m, dtype=np.float64)
    h = np.asarray(height_m, dtype=np.float64)
    dz = p[..., 2] - np.clip(p[..., 2], 0.0, h)
    return np.sqrt(p[..., 0] * p[..., 0] + p[..., 1] * p[..., 1] + dz * dz)


def segment_body_distance(a_m: ArrayLike, b_m: ArrayLike, height_m: ArrayLike) -> FloatArray:
    """Smallest distance ``(...)`` between segments ``a -> b`` ``(..., 3)`` (relative to the ground point) and
    the body axis ``(0, 0, 0) -> (0, 0, height_m)``: closest points of two segments (Ericson, *Real-Time
    Collision Detection*, 5.1.9), the second one vertical. ``a == b`` gives :func:`point_body_distance`."""
    a = np.asarray(a_m, dtype=np.float64)
    b = np.asarray(b_m, dtype=np.float64)
    h = np.asarray(height_m, dtype=np.float64)
    d = b - a
    aa = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]  # |d1|^2
    e = h * h  # |d2|^2, d2 = (0, 0, h)
    f = h * a[..., 2]  # d2 . r with r = a - ground
    c = d[..., 0] * a[..., 0] + d[..., 1] * a[..., 1] + d[..., 2] * a[..., 2]  # d1 . r
    bb = d[..., 2] * h  # d1 . d2
    denom = aa * e - bb * bb
    moving = aa > 1e-18
    safe_a = np.where(moving, aa, 1.0)
    s = np.where(moving & (denom > 1e-18 * np.maximum(aa * e, 1e-300)),
                 np.clip((bb * f - c * e) / np.where(denom > 0, denom, 1.0), 0.0, 1.0), 0.0)
    t = (bb * s + f) / e
    s = np.where(t < 0.0, np.where(moving, np.clip(-c / safe_a, 0.0, 1.0), 0.0), s)
    s = np.where(t > 1.0, np.where(moving, np.clip((bb - c) / safe_a, 0.0, 1.0), 0.0), s)
    p = a + s[..., None] * d
    return point_body_distance(p, h)


def path_body_distance(pos_m: ArrayLike, height_m: ArrayLike) -> FloatArray:
    """Smallest distance ``(...)`` of camera paths ``(..., F, 3)`` to the body axis over every frame and every
    segment between consecutive frames (``height_m`` broadcast over the leading axes)."""
    p = np.asarray(pos_m, dtype=np.float64)
    h = np.asarray(height_m, dtype=np.float64)[..., None]
    if p.shape[-2] == 1:
        return point_body_distance(p[..., 0, :], h[..., 0])
    return np.asarray(segment_body_distance(p[..., :-1, :], p[..., 1:, :], h).min(-1))


def clear_of_body(pos_m: ArrayLike, height_m: ArrayLike, margin_m: float = 0.0) -> NDArray[np.bool_]:
    """``(...)`` True where the whole path ``(..., F, 3)`` stays more than ``BODY_RADIUS_M + margin_m`` from the
    body axis."""
    return path_body_distance(pos_m, height_m) > BODY_RADIUS_M + margin_m


def path_prop_distance(pos_m: ArrayLike, props_xy_m: ArrayLike) -> FloatArray:
    """Smallest horizontal distance ``(..., P)`` of camera paths ``(..., F, 2 or 3)`` (x, y used) to prop centres
    ``(P, 2)``, over every frame and every segment between consecutive frames (same frame of reference and
    units, metres)."""
    p = np.asarray(pos_m, dtype=np.float64)[..., :2]
    q = np.asarray(props_xy_m, dtype=np.float64).reshape(-1, 2)
    a = p[..., :-1, None, :] if p.shape[-2] > 1 else p[..., None, :]  # (..., S, 1, 2)
    d = (p[..., 1:, None, :] - a) if p.shape[-2] > 1 else np.zeros_like(a)
    rel = q - a  # (..., S, P, 2)
    dd = np.sum(d * d, -1)
    t = np.clip(np.sum(rel * d, -1) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
    gap = rel - t[..., None] * d
    return np.asarray(np.sqrt(np.sum(gap * gap, -1)).min(-2))


def clear_of_props(pos_m: ArrayLike, props_xy_m: ArrayLike, props_radius_m: ArrayLike) -> NDArray[np.bool_]:
    """``(..., P)`` True where the path ``(..., F, 2 or 3)`` stays more than ``PROP_CAMERA_GAP_M + radius`` from
    prop ``p`` (see :func:`path_prop_distance`)."""
    return path_prop_distance(pos_m, props_xy_m) > PROP_CAMERA_GAP_M + np.asarray(props_radius_m, dtype=np.float64)


def clear_radius_problem(pos_m: ArrayLike, clear_radius_m: float | None) -> str | None:
    """Why a camera path ``(F, 2 or 3)`` (relative to the character's ground point) leaves the horizontal circle
    of ``clear_radius_m`` that the scene keeps free of tall things (buildings, trees, walls), or None. Between two
    frames a path is a segment, farthest at an end: the frames decide."""
    if clear_radius_m is None:
        return None
    p = np.asarray(pos_m, dtype=np.float64)
    far = float(np.hypot(p[..., 0], p[..., 1]).max())
    if far < clear_radius_m:
        return None
    return (f"goes {far:.2f} m from the character horizontally, beyond the {clear_radius_m:.2f} m kept free of tall "
            "things (environment_build.clear_radius_m)")


def prop_problem(pos_m: ArrayLike, props_xy_m: ArrayLike, props_radius_m: ArrayLike) -> str | None:
    """Why one camera path ``(F, 2 or 3)`` breaks :func:`clear_of_props`, naming the first prop it comes too close
    to (its index in ``props_xy_m``), or None."""
    radius = np.asarray(props_radius_m, dtype=np.float64).reshape(-1)
    if not radius.size:
        return None
    d = path_prop_distance(pos_m, props_xy_m)
    bad = np.flatnonzero(~(d > PROP_CAMERA_GAP_M + radius))
    if not len(bad):
        return None
    k = int(bad[0])
    return (f"passes {d[k]:.2f} m from prop {k} (environment_build.obstacles[{k}]; needs > "
            f"{PROP_CAMERA_GAP_M + radius[k]:.2f} m: {PROP_CAMERA_GAP_M} m + its radius)")
