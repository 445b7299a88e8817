"""Built-in animations of the mannequin skeleton as plain numbers (no ``bpy``).

A :class:`Motion` holds, per render frame, a rotation for each animated bone and the root's
offset and heading in the character frame (metres, x forward, y left, z up). Bone rotations are
(about x, about y, about z) angles in radians, composed ``Rz @ Ry @ Rx`` and applied about the
bone's head in the *character* axes relative to the rest pose (arms hanging down, legs straight);
:mod:`render_jobs.blender.characters` converts them to Blender pose-bone quaternions.

Sign cheat sheet (right-handed, x forward, y left, z up): for a limb hanging down a negative
rotation about y swings it forward; for the right arm a negative rotation about x raises it
sideways; a positive rotation about z turns left.

Animations are functions of time ``t = start_frame / anim_fps + i / render_fps`` so they play at
the right speed whatever the render frame rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass
class Motion:
    #: bone -> (F, 3) angles (rad) about the character's x, y, z axes, composed Rz @ Ry @ Rx.
    rotations: dict[str, FloatArray]
    #: (F, 3) offset of the whole character (feet included) in the placement frame, metres.
    root_offset: FloatArray
    #: (F,) heading of the whole character about z (radians, + = turn left) on top of the placement yaw.
    root_yaw: FloatArray
    #: (F, 3) offset of the hips bone (the body above the legs) in the character frame, metres.
    hips_offset: FloatArray


def _zeros(n: int) -> FloatArray:
    return np.zeros((n, 3))


def _rot(n: int, x: FloatArray | float = 0.0, y: FloatArray | float = 0.0, z: FloatArray | float = 0.0) -> FloatArray:
    out = _zeros(n)
    out[:, 0], out[:, 1], out[:, 2] = x, y, z
    return out


def walk(t: FloatArray, height_m: float) -> Motion:
    """Walk a circle of radius 1 m around the placement point (counter-clockwise, ~1 m/s)."""
    n = t.size
    stride_period = 1.1 * np.sqrt(height_m / 1.8)
    ph = 2 * np.pi * t / stride_period
    s = np.sin(ph)
    radius, speed = 1.0, 0.95 * np.sqrt(height_m / 1.8)
    ang = speed * t / radius
    offset = np.stack([radius * np.sin(ang), -radius * np.cos(ang), np.zeros(n)], -1)
    hips = np.stack([np.zeros(n), np.zeros(n), 0.02 * height_m * (np.abs(np.cos(ph)) - 1)], -1)
    rot = {
        "thigh.L": _rot(n, y=-0.45 * s), "thigh.R": _rot(n, y=0.45 * s),
        "shin.L": _rot(n, y=0.55 * np.clip(np.sin(ph - 1.2), 0, None) + 0.1),
        "shin.R": _rot(n, y=0.55 * np.clip(np.sin(ph + np.pi - 1.2), 0, None) + 0.1),
        "foot.L": _rot(n, y=-0.15 * s), "foot.R": _rot(n, y=0.15 * s),
        "upper_arm.L": _rot(n, x=0.08, y=0.38 * s), "upper_arm.R": _rot(n, x=-0.08, y=-0.38 * s),
        "forearm.L": _rot(n, y=-0.25 - 0.15 * np.clip(-s, 0, None)),
        "forearm.R": _rot(n, y=-0.25 - 0.15 * np.clip(s, 0, None)),
        "spine": _rot(n, z=0.08 * s, y=-0.05), "head": _rot(n, z=-0.06 * s),
        "hips": _rot(n, z=-0.08 * s, x=0.04 * np.cos(ph)),
    }
    return Motion(rot, offset, ang, hips)


def wave(t: FloatArray, height_m: float) -> Motion:
    """Stand and wave the right hand above the head, with a little weight shift."""
    n = t.size
    raise_ = np.clip(t / 0.6, 0, 1)  # raise the arm over the first 0.6 s
    raise_ = raise_ * raise_ * (3 - 2 * raise_)
    w = np.sin(2 * np.pi * 1.6 * t)
    sway = np.sin(2 * np.pi * 0.35 * t)
    rot = {
        "upper_arm.R": _rot(n, x=-2.5 * raise_, y=-0.2 * raise_),
        "forearm.R": _rot(n, x=(-0.35 + 0.45 * w) * raise_),
        "hand.R": _rot(n, x=0.2 * w * raise_),
        "upper_arm.L": _rot(n, x=0.1, y=0.05 * sway),
        "forearm.L": _rot(n, y=-0.2),
        "head": _rot(n, x=0.1 * sway, z=0.25 * np.sin(2 * np.pi * 0.2 * t)),
        "spine": _rot(n, x=0.04 * sway),
        "thigh.L": _rot(n, x=0.04 * sway), "thigh.R": _rot(n, x=0.04 * sway),
    }
    hips = np.stack([np.zeros(n), -0.02 * height_m * sway, np.zeros(n)], -1)
    return Motion(rot, np.zeros((n, 3)), 0.6 * np.sin(2 * np.pi * 0.12 * t), hips)


def jump(t: FloatArray, height_m: float) -> Motion:
    """Jump in place every 1.6 s: crouch, take off with an arm swing, ~0.5 s in the air, land."""
    n = t.size
    period = 1.6
    u = np.mod(t, period) / period  # 0..1 within a jump cycle
    # crouch 0-0.3, air 0.3-0.62, landing crouch 0.62-0.85, stand 0.85-1
    crouch = np.where(u < 0.3, np.sin(np.pi * u / 0.3 * 0.5) ** 2, 0.0)
    crouch = np.where((u >= 0.62) & (u < 0.85), np.sin(np.pi * (u - 0.62) / 0.23) ** 2, crouch)
    crouch = np.where((u >= 0.25) & (u < 0.3), crouch * (0.3 - u) / 0.05, crouch)
    air = np.clip((u - 0.3) / 0.32, 0, 1)
    in_air = (u >= 0.3) & (u < 0.62)
    z = np.where(in_air, 4 * 0.22 * height_m * air * (1 - air), 0.0)
    arms = np.where(in_air, -2.4 * np.sin(np.pi * air), 0.6 * crouch)
    rot = {
        "thigh.L": _rot(n, y=-1.0 * crouch - 0.25 * in_air), "thigh.R": _rot(n, y=-1.0 * crouch - 0.25 * in_air),
        "shin.L": _rot(n, y=1.7 * crouch + 0.4 * in_air), "shin.R": _rot(n, y=1.7 * crouch + 0.4 * in_air),
        "foot.L": _rot(n, y=-0.7 * crouch + 0.35 * in_air), "foot.R": _rot(n, y=-0.7 * crouch + 0.35 * in_air),
        "spine": _rot(n, y=0.45 * crouch), "head": _rot(n, y=-0.3 * crouch),
        "upper_arm.L": _rot(n, x=0.15, y=arms), "upper_arm.R": _rot(n, x=-0.15, y=arms),
        "forearm.L": _rot(n, y=-0.4), "forearm.R": _rot(n, y=-0.4),
    }
    offset = np.stack([np.zeros(n), np.zeros(n), z], -1)
    hips = np.stack([-0.05 * height_m * crouch, np.zeros(n), -0.165 * height_m * crouch], -1)
    return Motion(rot, offset, np.zeros(n), hips)


def dance(t: FloatArray, height_m: float) -> Motion:
    """Bounce on the beat (2 Hz), sway the hips, pump the arms and turn around slowly."""
    n = t.size
    beat = 2 * np.pi * 2.0 * t
    half = 2 * np.pi * 1.0 * t
    bounce = np.abs(np.sin(beat / 2))
    rot = {
        "hips": _rot(n, x=0.12 * np.sin(half), z=0.2 * np.sin(half)),
        "spine": _rot(n, x=-0.15 * np.sin(half), z=-0.25 * np.sin(half)),
        "chest": _rot(n, x=-0.05 * np.sin(half)),
        "head": _rot(n, x=0.2 * np.sin(beat / 2), y=-0.1 * bounce),
        "upper_arm.L": _rot(n, x=1.3 + 0.8 * np.sin(half), y=-0.6 - 0.5 * np.sin(beat)),
        "forearm.L": _rot(n, y=-1.2 - 0.4 * np.sin(beat)),
        "upper_arm.R": _rot(n, x=-1.3 + 0.8 * np.sin(half), y=-0.6 + 0.5 * np.sin(beat)),
        "forearm.R": _rot(n, y=-1.2 + 0.4 * np.sin(beat)),
        "thigh.L": _rot(n, y=-0.35 * bounce * (np.sin(half) > 0), x=0.1),
        "thigh.R": _rot(n, y=-0.35 * bounce * (np.sin(half) <= 0), x=-0.1),
        "shin.L": _rot(n, y=0.6 * bounce * (np.sin(half) > 0) + 0.15 * bounce),
        "shin.R": _rot(n, y=0.6 * bounce * (np.sin(half) <= 0) + 0.15 * bounce),
    }
    hips = np.stack([np.zeros(n), 0.04 * height_m * np.sin(half), -0.035 * height_m * bounce], -1)
    return Motion(rot, np.zeros((n, 3)), 2 * np.pi * t / 10.0, hips)


def idle(t: FloatArray, height_m: float) -> Motion:
    """Stand still (rest pose) - a reference pose for tests."""
    n = t.size
    return Motion({}, np.zeros((n, 3)), np.zeros(n), np.zeros((n, 3)))


#: Built-in animations (``builtin:<name>`` in a catalog).
MOTIONS: dict[str, Callable[[FloatArray, float], Motion]] = {
    "walk": walk, "wave": wave, "jump": jump, "dance": dance, "idle": idle,
}


def motion(name: str, frames: int, render_fps: float, height_m: float, start_frame: int = 0,
           anim_fps: float = 15.0) -> Motion:
    """Evaluate a built-in animation at the ``frames`` render frames."""
    try:
        fn = MOTIONS[name]
    except KeyError:
        raise KeyError(f"unknown built-in animation {name!r}; available: {', '.join(sorted(MOTIONS))}") from None
    t = start_frame / anim_fps + np.arange(frames) / render_fps
    return fn(t, height_m)


def euler_to_matrix(angles: FloatArray) -> FloatArray:
    """(..., 3) angles about x, y, z -> (..., 3, 3) ``Rz @ Ry @ Rx`` (column-vector convention)."""
    a = np.asarray(angles, dtype=np.float64)
    cx, sx = np.cos(a[..., 0]), np.sin(a[..., 0])
    cy, sy = np.cos(a[..., 1]), np.sin(a[..., 1])
    cz, sz = np.cos(a[..., 2]), np.sin(a[..., 2])
    out = np.empty(a.shape[:-1] + (3, 3))
    out[..., 0, 0] = cz * cy
    out[..., 0, 1] = cz * sy * sx - sz * cx
    out[..., 0, 2] = cz * sy * cx + sz * sx
    out[..., 1, 0] = sz * cy
    out[..., 1, 1] = sz * sy * sx + cz * cx
    out[..., 1, 2] = sz * sy * cx - cz * sx
    out[..., 2, 0] = -sy
    out[..., 2, 1] = cy * sx
    out[..., 2, 2] = cy * cx
    return out


def matrix_to_quaternion(m: FloatArray) -> FloatArray:
    """(..., 3, 3) rotation matrices -> (..., 4) quaternions (w, x, y, z), w >= 0 (vectorised)."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    q = np.empty(m.shape[:-2] + (4,))
    q[..., 0] = np.sqrt(np.clip(1 + tr, 0, None)) / 2
    q[..., 1] = np.sqrt(np.clip(1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 0, None)) / 2
    q[..., 2] = np.sqrt(np.clip(1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 0, None)) / 2
    q[..., 3] = np.sqrt(np.clip(1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], 0, None)) / 2
    q[..., 1] = np.copysign(q[..., 1], m[..., 2, 1] - m[..., 1, 2])
    q[..., 2] = np.copysign(q[..., 2], m[..., 0, 2] - m[..., 2, 0])
    q[..., 3] = np.copysign(q[..., 3], m[..., 1, 0] - m[..., 0, 1])
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
