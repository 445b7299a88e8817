"""Characters: the built-in rigged mannequins and the calibration beacon, placed and animated.

A character hangs under a *placement* empty (the job's ``placement``: UE cm location and UE yaw,
converted by :mod:`multicam.conventions`). Mannequins are an armature (:mod:`.rig`) with body parts
parented to its bones, so a pose moves them rigidly like a jointed mannequin; built-in animations
(:mod:`.motions`) are keyed on the pose bones for every render frame. User characters and
animations from files are handled by :mod:`.user_assets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from multicam.conventions import CM_PER_M, ue_to_rh_points, ue_yaw_to_rh_yaw
from render_jobs.blender import materials as M
from render_jobs.blender.calibration import BEACON_RADIUS_CM, beacon_path_cm
from render_jobs.blender.keying import key_channels
from render_jobs.blender.meshes import capsule, sphere
from render_jobs.blender.motions import Motion, euler_to_matrix, matrix_to_quaternion, motion
from render_jobs.blender.rig import BONE_PARENTS, CONNECTED, BodyStyle, body_style, skeleton
from render_jobs.schema import AnimationRef, CharacterRef, Placement


@dataclass
class CharacterRig:
    placement: bpy.types.Object
    #: Mesh objects of the character (for the mask pass).
    meshes: list[bpy.types.Object]
    armature: bpy.types.Object | None = None
    #: Object that carries the root motion (armature, or the top object of a user character).
    mover: bpy.types.Object | None = None
    record: dict[str, Any] = field(default_factory=dict)


def make_placement(placement: Placement, coll: bpy.types.Collection) -> bpy.types.Object:
    ob = bpy.data.objects.new("placement", None)
    ob.location = tuple(ue_to_rh_points(np.asarray(placement.location_cm, dtype=np.float64)))
    ob.rotation_euler = (0.0, 0.0, float(ue_yaw_to_rh_yaw(placement.yaw_deg)))
    coll.objects.link(ob)
    return ob


def _attach(obj: bpy.types.Object, arm: bpy.types.Object, bone: str, char_matrix: Matrix) -> None:
    """Parent ``obj`` to ``bone`` so that in the rest pose it sits at ``char_matrix`` (armature space)."""
    b = arm.data.bones[bone]
    tail = b.matrix_local @ Matrix.Translation((0.0, b.length, 0.0))
    obj.parent = arm
    obj.parent_type = "BONE"
    obj.parent_bone = bone
    obj.matrix_parent_inverse = Matrix.Identity(4)
    obj.matrix_basis = tail.inverted() @ char_matrix


def _segment_matrix(head: np.ndarray, tail: np.ndarray) -> Matrix:
    """Matrix whose +y runs from head to tail (capsules are built along +y), +x as close to the
    character's forward as possible and +z = x cross y (the character's right for upright parts)."""
    y = (tail - head) / np.linalg.norm(tail - head)
    ref = np.array([1.0, 0.0, 0.0]) if abs(y[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    x = ref - y * np.dot(ref, y)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, head
    return Matrix(m.tolist())


def build_mannequin(style: BodyStyle, height_m: float, parent: bpy.types.Object,
                    coll: bpy.types.Collection) -> CharacterRig:
    h = float(height_m)
    bones = skeleton(h, style)
    arm_data = bpy.data.armatures.new(f"{style.name}_rig")
    arm = bpy.data.objects.new(f"{style.name}_armature", arm_data)
    coll.objects.link(arm)
    arm.parent = parent
    view_layer = bpy.context.view_layer
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for name, par in BONE_PARENTS.items():
        eb = arm_data.edit_bones.new(name)
        eb.head, eb.tail = Vector(bones[name][0]), Vector(bones[name][1])
        eb.roll = 0.0
        if par is not None:
            eb.parent = arm_data.edit_bones[par]
            eb.use_connect = name in CONNECTED
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"

    mats = {k: M.plain(f"{style.name}_{k}", getattr(style, k), roughness=r, noise=0.2)
            for k, r in (("skin", 0.5), ("shirt", 0.8), ("pants", 0.85), ("shoes", 0.4))}
    eye_mat = M.plain(f"{style.name}_eyes", (0.02, 0.02, 0.02), roughness=0.2, noise=0.0)
    meshes: list[bpy.types.Object] = []
    lr, tr = style.limb_radius * h, style.torso_radius * h

    def part(bone: str, radius: float, mat_key: str, scale: tuple[float, float, float] = (1, 1, 1),
             head: np.ndarray | None = None, tail: np.ndarray | None = None) -> None:
        hd = bones[bone][0] if head is None else head
        tl = bones[bone][1] if tail is None else tail
        length = float(np.linalg.norm(tl - hd))
        ob = capsule(f"{style.name}_{bone}", radius, length + radius, coll, mats[mat_key], scale=scale)
        m = _segment_matrix(hd, tl) @ Matrix.Translation((0.0, -radius / 2, 0.0))
        _attach(ob, arm, bone, m)
        meshes.append(ob)

    for side in ("L", "R"):
        part(f"thigh.{side}", lr * 1.45, "pants")
        part(f"shin.{side}", lr * 1.15, "pants")
        part(f"foot.{side}", lr * 0.95, "shoes", scale=(0.75, 1.0, 1.15))
        part(f"upper_arm.{side}", lr * 1.05, "shirt")
        part(f"forearm.{side}", lr * 0.85, "skin")
        part(f"hand.{side}", lr * 0.8, "skin", scale=(1.0, 1.0, 0.6))
    sx, sy, _ = style.torso_scale
    hip_w = style.hip_half_width * h
    hip_z = bones["hips"][0][2]
    # pelvis: a sideways capsule across both hip joints
    part("hips", lr * 1.6, "pants", scale=(sx * 1.3, 1.0, 1.0),
         head=np.array([0.0, hip_w + lr * 0.8, hip_z + 0.01 * h]),
         tail=np.array([0.0, -hip_w - lr * 0.8, hip_z + 0.01 * h]))
    part("spine", tr * 0.85, "shirt", scale=(sx, 1.0, sy * max(1.0, (hip_w + lr) / (0.85 * tr))))
    chest_w = max(1.0, (style.shoulder_half_width * h - 0.6 * lr) / tr)
    part("chest", tr, "shirt", scale=(sx, 1.0, sy * chest_w))
    part("neck", lr * 1.2, "skin")
    head_c = (bones["head"][0] + bones["head"][1]) / 2 + np.array([0.0, 0.0, 0.01 * h])
    hr = style.head_radius * h
    head = sphere(f"{style.name}_head", hr, (0, 0, 0), coll, mats["skin"], subdiv=3, scale=(1.0, 0.9, 1.15))
    _attach(head, arm, "head", Matrix.Translation(Vector(head_c)))
    meshes.append(head)
    for s in (1.0, -1.0):  # eyes: show which way the character faces
        eye = sphere(f"{style.name}_eye", 0.16 * hr, (0, 0, 0), coll, eye_mat, subdiv=2)
        _attach(eye, arm, "head", Matrix.Translation(Vector(head_c + np.array([0.85 * hr, s * 0.35 * hr, 0.15 * hr]))))
        meshes.append(eye)
    return CharacterRig(placement=parent, meshes=meshes, armature=arm, mover=arm,
                        record={"style": style.name, "height_m": h, "bones": len(BONE_PARENTS)})


def apply_motion(rig: CharacterRig, mo: Motion) -> None:
    """Key a :class:`Motion` on the rig: pose-bone quaternions, hips location, root offset/yaw."""
    arm = rig.armature
    assert arm is not None and rig.mover is not None
    n = mo.root_offset.shape[0]
    for name, angles in mo.rotations.items():
        b = arm.data.bones[name]
        rest = np.array(b.matrix_local.to_3x3())
        local = np.einsum("ji,fjk,kl->fil", rest, euler_to_matrix(angles), rest)
        key_channels(arm, f'pose.bones["{name}"].rotation_quaternion', matrix_to_quaternion(local))
    rest_h = np.array(arm.data.bones["hips"].matrix_local.to_3x3())
    key_channels(arm, 'pose.bones["hips"].location', mo.hips_offset @ rest_h)
    key_channels(rig.mover, "location", mo.root_offset)
    rot = np.zeros((n, 3))
    rot[:, 2] = mo.root_yaw
    key_channels(rig.mover, "rotation_euler", rot)


def build_beacon(parent: bpy.types.Object, coll: bpy.types.Collection, times_s: np.ndarray) -> CharacterRig:
    """An emissive sphere moving along :func:`beacon_path_cm` (relative to the placement)."""
    ob = sphere("beacon", BEACON_RADIUS_CM / CM_PER_M, (0, 0, 0), coll, M.emissive("beacon", (1.0, 1.0, 1.0), 6.0),
                subdiv=3)
    ob.parent = parent
    key_channels(ob, "location", ue_to_rh_points(beacon_path_cm(times_s)))
    return CharacterRig(placement=parent, meshes=[ob], mover=ob, record={"beacon": True})


def build_character(char: CharacterRef, anim: AnimationRef, placement: Placement, coll: bpy.types.Collection,
                    frames: int, render_fps: float) -> CharacterRig:
    """Build, place and animate the job's character; returns the rig (meshes for masks). Cameras focus on the
    job's planned focus points, not on anything of the rig."""
    from render_jobs.blender import user_assets

    parent = make_placement(placement, coll)
    times = anim.start_frame / anim.fps + np.arange(frames) / render_fps
    if char.asset == "builtin:none":  # calibration scenes: nothing but the environment
        return CharacterRig(placement=parent, meshes=[], record={"asset": char.asset})
    if char.asset == "builtin:beacon":
        rig = build_beacon(parent, coll, times)
    elif char.asset.startswith("builtin:"):
        rig = build_mannequin(body_style(char.asset.split(":", 1)[1]), char.height_m, parent, coll)
    else:
        rig = user_assets.import_character(char.asset, char.height_m, parent, coll)
    rig.record.update({"asset": char.asset, "animation": anim.asset})
    if char.asset == "builtin:beacon":
        return rig
    if anim.asset.startswith("builtin:"):
        if rig.armature is None or rig.armature.data.bones.get("hips") is None:
            raise ValueError(f"built-in animation {anim.asset} needs the built-in mannequin skeleton; "
                             f"character {char.id} ({char.asset}) has none")
        apply_motion(rig, motion(anim.asset.split(":", 1)[1], frames, render_fps, char.height_m,
                                 anim.start_frame, anim.fps))
    else:
        user_assets.apply_file_animation(rig, anim, frames, render_fps)
    return rig


__all__ = ["CharacterRig", "build_character", "apply_motion", "Quaternion"]
