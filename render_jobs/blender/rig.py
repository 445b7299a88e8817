"""The mannequin skeleton and body styles as plain data (no ``bpy``).

One skeleton (``mannequin``) serves every built-in character; characters differ by height, build
(limb/torso thickness, shoulder and hip width) and colours. Coordinates are the character frame:
metres, x forward, y left, z up, origin at the ground point between the feet. A character placed
with UE yaw 0 faces UE +X (see :func:`multicam.conventions.ue_yaw_to_rh_yaw`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: Bone name -> parent (None for the root). Order = creation order (parents first).
BONE_PARENTS: dict[str, str | None] = {
    "hips": None,
    "spine": "hips",
    "chest": "spine",
    "neck": "chest",
    "head": "neck",
    "upper_arm.L": "chest",
    "forearm.L": "upper_arm.L",
    "hand.L": "forearm.L",
    "upper_arm.R": "chest",
    "forearm.R": "upper_arm.R",
    "hand.R": "forearm.R",
    "thigh.L": "hips",
    "shin.L": "thigh.L",
    "foot.L": "shin.L",
    "thigh.R": "hips",
    "shin.R": "thigh.R",
    "foot.R": "shin.R",
}

#: Bones whose head sits on their parent's tail (the others hang off the parent at an offset).
CONNECTED = {"spine", "chest", "neck", "head", "forearm.L", "hand.L", "forearm.R", "hand.R",
             "shin.L", "foot.L", "shin.R", "foot.R"}


@dataclass(frozen=True)
class BodyStyle:
    """Proportions (fractions of height unless noted) and colours (linear RGB) of a mannequin."""

    name: str
    shoulder_half_width: float = 0.115
    hip_half_width: float = 0.055
    limb_radius: float = 0.028
    torso_radius: float = 0.085
    head_radius: float = 0.062
    skin: tuple[float, float, float] = (0.80, 0.62, 0.50)
    shirt: tuple[float, float, float] = (0.10, 0.25, 0.70)
    pants: tuple[float, float, float] = (0.20, 0.20, 0.22)
    shoes: tuple[float, float, float] = (0.05, 0.05, 0.05)
    #: Extra (x, y, z) scale of the torso cross-section (stocky builds are wider).
    torso_scale: tuple[float, float, float] = (0.75, 1.0, 1.0)
    extras: dict[str, float] = field(default_factory=dict)


#: The built-in character styles (``builtin:<name>`` in a catalog).
BODY_STYLES: dict[str, BodyStyle] = {
    "mannequin_slim": BodyStyle("mannequin_slim"),
    "mannequin_stocky": BodyStyle(
        "mannequin_stocky", shoulder_half_width=0.135, hip_half_width=0.07, limb_radius=0.037,
        torso_radius=0.105, head_radius=0.066, skin=(0.45, 0.28, 0.18), shirt=(0.75, 0.12, 0.06),
        pants=(0.12, 0.12, 0.35), shoes=(0.35, 0.20, 0.08), torso_scale=(0.9, 1.05, 1.0)),
    "mannequin_athletic": BodyStyle(
        "mannequin_athletic", shoulder_half_width=0.125, hip_half_width=0.06, limb_radius=0.031,
        torso_radius=0.09, head_radius=0.060, skin=(0.95, 0.78, 0.66), shirt=(0.95, 0.75, 0.08),
        pants=(0.05, 0.35, 0.18), shoes=(0.85, 0.85, 0.85), torso_scale=(0.7, 1.05, 1.0)),
}


def body_style(name: str) -> BodyStyle:
    try:
        return BODY_STYLES[name]
    except KeyError:
        raise KeyError(f"unknown built-in character {name!r}; available: {', '.join(sorted(BODY_STYLES))}") from None


def skeleton(height_m: float, style: BodyStyle) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Rest pose: bone -> (head, tail) in the character frame (metres). Arms hang down."""
    h = float(height_m)
    sw, hw = style.shoulder_half_width * h, style.hip_half_width * h
    hip_z, knee_z, ankle_z = 0.53 * h, 0.285 * h, 0.045 * h
    chest_z, neck_z, head_z, top_z = 0.70 * h, 0.82 * h, 0.87 * h, 1.0 * h
    shoulder_z = 0.815 * h
    elbow_z, wrist_z, finger_z = shoulder_z - 0.186 * h, shoulder_z - 0.332 * h, shoulder_z - 0.44 * h
    foot_len = 0.15 * h
    b: dict[str, tuple[list[float], list[float]]] = {
        "hips": ([0, 0, hip_z], [0, 0, hip_z + 0.05 * h]),
        "spine": ([0, 0, hip_z + 0.05 * h], [0, 0, chest_z]),
        "chest": ([0, 0, chest_z], [0, 0, neck_z]),
        "neck": ([0, 0, neck_z], [0, 0, head_z]),
        "head": ([0, 0, head_z], [0, 0, top_z]),
    }
    for side, s in (("L", 1.0), ("R", -1.0)):
        b[f"upper_arm.{side}"] = ([0, s * sw, shoulder_z], [0, s * (sw + 0.01 * h), elbow_z])
        b[f"forearm.{side}"] = ([0, s * (sw + 0.01 * h), elbow_z], [0.01 * h, s * (sw + 0.012 * h), wrist_z])
        b[f"hand.{side}"] = ([0.01 * h, s * (sw + 0.012 * h), wrist_z], [0.015 * h, s * (sw + 0.012 * h), finger_z])
        b[f"thigh.{side}"] = ([0, s * hw, hip_z], [0.005 * h, s * hw, knee_z])
        b[f"shin.{side}"] = ([0.005 * h, s * hw, knee_z], [0, s * hw, ankle_z])
        b[f"foot.{side}"] = ([0, s * hw, ankle_z], [foot_len * 0.75, s * hw, 0.012 * h])
    return {k: (np.asarray(v[0], float), np.asarray(v[1], float)) for k, v in b.items()}
