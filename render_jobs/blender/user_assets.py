"""User assets from files: characters and animations (glTF/GLB, FBX e.g. Mixamo exports) and
environments (.blend, glTF/GLB, FBX), referenced from a catalog by path.

* Environment: every object of the file is imported as is (``.blend``: all objects appended).
* Character: imported, then scaled uniformly so that its bounding box is ``height_m`` tall, its
  bottom centre put on the placement point; facing is the file's +X (UE forward). The first
  armature found (if any) receives animations.
* Animation: the file's first action is imported and assigned to the character's armature (bone
  names must match, e.g. Mixamo rig -> Mixamo animation) or, for characters without armature, to
  the top object. The importers place keys in render frames (file seconds x render fps); the clip
  is shifted so that ``start_frame`` (in frames at the catalog's ``fps``) is render frame 0 and
  looped (cycles modifier) when ``loopable``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import bpy
import numpy as np
from mathutils import Vector

if TYPE_CHECKING:
    from render_jobs.blender.characters import CharacterRig
from render_jobs.schema import AnimationRef

SUFFIXES = (".glb", ".gltf", ".fbx", ".blend")


class AssetFileError(ValueError):
    """A user asset that cannot be imported; the message names the file."""


def _enable(addon: str) -> None:
    import addon_utils

    loaded, enabled = addon_utils.check(addon)
    if not enabled:
        addon_utils.enable(addon, default_set=True)


def _import_file(path_str: str) -> list[bpy.types.Object]:
    """Import a file into the current scene; returns the new objects."""
    path = Path(path_str)
    if not path.is_file():
        raise AssetFileError(f"asset file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise AssetFileError(f"{path}: unsupported asset type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    before = set(bpy.data.objects)
    try:
        if suffix in (".glb", ".gltf"):
            _enable("io_scene_gltf2")
            res = bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".fbx":
            _enable("io_scene_fbx")
            res = bpy.ops.import_scene.fbx(filepath=str(path), automatic_bone_orientation=True)
        else:
            with bpy.data.libraries.load(str(path), link=False) as (src, dst):
                dst.objects = list(src.objects)
            for ob in dst.objects:
                if ob is not None and ob.type != "CAMERA":
                    bpy.context.scene.collection.objects.link(ob)
            res = {"FINISHED"}
    except RuntimeError as exc:
        raise AssetFileError(f"{path}: import failed: {exc}") from exc
    if "FINISHED" not in res:
        raise AssetFileError(f"{path}: import did not finish ({res})")
    new = [ob for ob in bpy.data.objects if ob not in before]
    # Imported cameras and lights of a character file would spoil the shot: keep lights only for envs.
    return new


def _move_to(objs: list[bpy.types.Object], coll: bpy.types.Collection) -> None:
    for ob in objs:
        for c in list(ob.users_collection):
            c.objects.unlink(ob)
        coll.objects.link(ob)


def import_environment(asset: str, coll: bpy.types.Collection) -> list[bpy.types.Object]:
    objs = _import_file(asset)
    cams = [o for o in objs if o.type == "CAMERA"]
    for o in cams:
        bpy.data.objects.remove(o)
    objs = [o for o in objs if o not in cams]
    _move_to(objs, coll)
    return objs


def _world_bbox(objs: list[bpy.types.Object]) -> tuple[np.ndarray, np.ndarray]:
    bpy.context.view_layer.update()
    pts = [ob.matrix_world @ Vector(c) for ob in objs if ob.type == "MESH" for c in ob.bound_box]
    if not pts:
        raise AssetFileError("character file has no mesh")
    a = np.array([tuple(p) for p in pts])
    return a.min(0), a.max(0)


def import_character(asset: str, height_m: float, parent: bpy.types.Object,
                     coll: bpy.types.Collection) -> CharacterRig:
    from render_jobs.blender.characters import CharacterRig

    objs = [o for o in _import_file(asset) if o.type not in ("CAMERA", "LIGHT")]
    for o in list(bpy.data.objects):
        if o.type in ("CAMERA", "LIGHT") and o.name not in coll.objects and o.users_collection == ():
            bpy.data.objects.remove(o)
    _move_to(objs, coll)
    top = [o for o in objs if o.parent is None]
    root = bpy.data.objects.new("character_root", None)
    coll.objects.link(root)
    for o in top:
        o.parent = root
    lo, hi = _world_bbox(objs)
    scale = float(height_m) / max(hi[2] - lo[2], 1e-6)
    root.scale = (scale, scale, scale)
    root.location = (-scale * (lo[0] + hi[0]) / 2, -scale * (lo[1] + hi[1]) / 2, -scale * lo[2])
    holder = bpy.data.objects.new("character_holder", None)
    coll.objects.link(holder)
    holder.parent = parent
    root.parent = holder
    meshes = [o for o in objs if o.type == "MESH"]
    arms = [o for o in objs if o.type == "ARMATURE"]
    return CharacterRig(placement=parent, meshes=meshes, armature=arms[0] if arms else None,
                        mover=arms[0] if arms else (top[0] if len(top) == 1 else root),
                        record={"scale": scale, "file": asset, "objects": len(objs)})


def apply_file_animation(rig: CharacterRig, anim: AnimationRef, frames: int, render_fps: float) -> None:
    """Assign the first action of ``anim.asset`` to the rig, re-timed to the render fps."""
    before = set(bpy.data.actions)
    objs = _import_file(anim.asset)
    new_actions = [a for a in bpy.data.actions if a not in before]
    for o in objs:
        bpy.data.objects.remove(o)
    if not new_actions:
        raise AssetFileError(f"{anim.asset}: the file has no animation (action)")
    action = new_actions[0]
    target = rig.armature if rig.armature is not None else rig.mover
    assert target is not None
    ad = target.animation_data or target.animation_data_create()
    ad.action = action
    if ad.action_slot is None and len(action.slots):
        ad.action_slot = action.slots[0]
    _retime(action, anim, render_fps)


def _action_fcurves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    curves: list[bpy.types.FCurve] = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                curves.extend(bag.fcurves)
    return curves


def _retime(action: bpy.types.Action, anim: AnimationRef, render_fps: float) -> None:
    """The importers convert file time (seconds) to scene frames at the render fps already; move the
    clip so that its first key (plus ``start_frame`` frames at the animation's fps) is render frame 0."""
    curves = _action_fcurves(action)
    if not curves:
        return
    start = min(fc.range()[0] for fc in curves) + anim.start_frame * render_fps / anim.fps
    for fc in curves:
        n = len(fc.keyframe_points)
        for attr in ("co", "handle_left", "handle_right"):
            buf = np.empty(2 * n, dtype=np.float32)
            fc.keyframe_points.foreach_get(attr, buf)
            buf[0::2] -= start
            fc.keyframe_points.foreach_set(attr, buf)
        if anim.loopable and not any(m.type == "CYCLES" for m in fc.modifiers):
            fc.modifiers.new("CYCLES")
        fc.update()
