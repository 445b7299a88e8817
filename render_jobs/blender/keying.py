"""Fast keyframing: whole arrays per channel through ``foreach_set`` (no per-key operator calls)."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from numpy.typing import ArrayLike


def ensure_action(owner: Any, name: str) -> bpy.types.Action:
    ad = owner.animation_data or owner.animation_data_create()
    if ad.action is None:
        ad.action = bpy.data.actions.new(name)
    return ad.action


def key_channels(owner: Any, data_path: str, values: ArrayLike, frames: ArrayLike | None = None) -> None:
    """Key ``owner.<data_path>[k]`` to ``values[:, k]`` at ``frames`` (default 0..F-1), linear."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    fr = np.arange(v.shape[0], dtype=np.float64) if frames is None else np.asarray(frames, dtype=np.float64)
    action = ensure_action(owner, f"{owner.name}_action")
    for k in range(v.shape[1]):
        fc = action.fcurve_ensure_for_datablock(owner, data_path, index=k)
        fc.keyframe_points.clear()
        fc.keyframe_points.add(len(fr))
        fc.keyframe_points.foreach_set("co", np.stack([fr, v[:, k]], -1).astype(np.float32).ravel())
        fc.keyframe_points.foreach_set("interpolation", np.full(len(fr), _LINEAR, dtype=np.int32))
        fc.update()


def _linear_enum() -> int:
    items = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items
    return int(items["LINEAR"].value)


_LINEAR = _linear_enum()
