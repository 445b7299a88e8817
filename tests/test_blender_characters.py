"""The built-in mannequins and animations, evaluated in Blender (no rendering): placement and UE yaw,
proportions, and that each animation does what it says on the skeleton."""

from __future__ import annotations

import numpy as np
import pytest

from multicam.conventions import RH_FROM_UE, ue_rotator_to_axes, ue_to_rh_points, ue_yaw_to_rh_yaw
from render_jobs.blender.motions import MOTIONS, euler_to_matrix, matrix_to_quaternion, motion
from render_jobs.blender.rig import BODY_STYLES, skeleton

FPS = 15.0


def test_ue_yaw_to_rh_yaw_turns_the_forward_axis_like_ue() -> None:
    yaw = np.array([-170.0, -30.0, 0.0, 45.0, 90.0, 200.0])
    fwd_ue = ue_rotator_to_axes(np.stack([np.zeros_like(yaw), yaw, np.zeros_like(yaw)], -1))[:, 0]
    a = ue_yaw_to_rh_yaw(yaw)
    fwd_rh = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], -1)
    np.testing.assert_allclose(fwd_ue @ RH_FROM_UE, fwd_rh, atol=1e-12)


def test_quaternions_match_rotation_matrices() -> None:
    rng = np.random.default_rng(0)
    m = euler_to_matrix(rng.uniform(-np.pi, np.pi, (200, 3)))
    q = matrix_to_quaternion(m)
    w, x, y, z = q.T
    back = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)
    np.testing.assert_allclose(back, m, atol=1e-9)


def test_motions_are_defined_for_every_frame_and_bone() -> None:
    bones = set(skeleton(1.8, BODY_STYLES["mannequin_slim"]))
    for name in MOTIONS:
        mo = motion(name, 81, FPS, 1.8)
        assert mo.root_offset.shape == (81, 3) and mo.hips_offset.shape == (81, 3) and mo.root_yaw.shape == (81,)
        assert set(mo.rotations) <= bones
        assert all(r.shape == (81, 3) and np.all(np.isfinite(r)) for r in mo.rotations.values())
    with pytest.raises(KeyError, match="available"):
        motion("moonwalk", 81, FPS, 1.8)


bpy = pytest.importorskip("bpy")


def _build(asset: str, anim: str, yaw: float = 0.0, height: float = 1.8, loc=(150.0, -200.0, 0.0)):  # type: ignore[no-untyped-def]
    from render_jobs.blender.characters import build_character
    from render_jobs.schema import AnimationRef, CharacterRef, Placement

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    rig = build_character(CharacterRef(id="c", asset=asset, height_m=height), AnimationRef(id="a", asset=anim),
                          Placement(location_cm=loc, yaw_deg=yaw), scene.collection, 81, FPS)
    return scene, rig


def _bone_world(rig, bone: str, end: str = "tail") -> np.ndarray:  # type: ignore[no-untyped-def]
    pb = rig.armature.pose.bones[bone]
    return np.array(rig.armature.matrix_world @ getattr(pb, end))


def _mesh_points(rig) -> np.ndarray:  # type: ignore[no-untyped-def]
    dg = bpy.context.evaluated_depsgraph_get()
    pts = []
    for ob in rig.meshes:
        ev = ob.evaluated_get(dg)
        m = np.array(ev.matrix_world)
        v = np.array([tuple(p.co) for p in ev.data.vertices])
        pts.append(v @ m[:3, :3].T + m[:3, 3])
    return np.concatenate(pts)


@pytest.mark.blender
@pytest.mark.parametrize("yaw", [0.0, 30.0, 135.0, -100.0])
def test_placement_location_and_ue_yaw(yaw: float) -> None:
    loc = (150.0, -200.0, 0.0)
    scene, rig = _build("builtin:mannequin_slim", "builtin:idle", yaw=yaw, loc=loc)
    scene.frame_set(0)
    pts = _mesh_points(rig)
    ground = ue_to_rh_points(np.array(loc))
    assert np.hypot(*(_bone_world(rig, "hips", "head") - ground)[:2]) < 0.01
    assert abs(pts[:, 2].min() - ground[2]) < 0.03
    # the eyes are in front of the head centre: the character faces UE yaw
    eyes = [np.array(ob.matrix_world.translation) for ob in rig.meshes if "eye" in ob.name]
    head = next(np.array(ob.matrix_world.translation) for ob in rig.meshes if ob.name.endswith("_head"))
    facing = (np.mean(eyes, 0) - head)[:2]
    want = (ue_rotator_to_axes(np.array([0.0, yaw, 0.0]))[0] @ RH_FROM_UE)[:2]
    cos = facing @ want / np.linalg.norm(facing)
    assert cos > np.cos(np.radians(3.0)), (facing, want)


@pytest.mark.blender
@pytest.mark.parametrize("style,height", [("mannequin_slim", 1.8), ("mannequin_stocky", 1.66),
                                          ("mannequin_athletic", 1.9)])
def test_characters_have_their_height_and_differ_in_build(style: str, height: float) -> None:
    scene, rig = _build(f"builtin:{style}", "builtin:idle", height=height)
    scene.frame_set(0)
    pts = _mesh_points(rig)
    assert abs((pts[:, 2].max() - pts[:, 2].min()) - height) < 0.06 * height
    width = np.ptp(pts[:, 1]) / height  # shoulder-to-shoulder over height (yaw 0: y is lateral)
    assert 0.2 < width < 0.45
    assert len(rig.armature.data.bones) == 17


@pytest.mark.blender
def test_walk_wave_jump_dance_move_the_skeleton() -> None:
    scene, rig = _build("builtin:mannequin_athletic", "builtin:walk", loc=(0.0, 0.0, 0.0))
    hips = []
    for f in range(0, 81, 5):
        scene.frame_set(f)
        hips.append(_bone_world(rig, "hips", "head"))
    hips = np.array(hips)
    r = np.hypot(hips[:, 0], hips[:, 1])
    assert np.all((r > 0.8) & (r < 1.2))  # walks a 1 m circle around the placement
    assert np.sum(np.linalg.norm(np.diff(hips[:, :2], axis=0), axis=1)) > 3.0

    scene, rig = _build("builtin:mannequin_slim", "builtin:wave")
    scene.frame_set(30)
    assert _bone_world(rig, "hand.R")[2] > _bone_world(rig, "head")[2]  # right hand above the head
    assert _bone_world(rig, "hand.L")[2] < _bone_world(rig, "hips")[2]

    scene, rig = _build("builtin:mannequin_stocky", "builtin:jump", height=1.66)
    toes = []
    for f in range(81):
        scene.frame_set(f)
        toes.append(min(_bone_world(rig, "foot.L")[2], _bone_world(rig, "foot.R")[2]))
    assert max(toes) > 0.2 and min(toes) < 0.05  # leaves the ground and lands

    scene, rig = _build("builtin:mannequin_slim", "builtin:dance")
    scene.frame_set(0)
    a0 = _bone_world(rig, "hand.L")
    scene.frame_set(7)
    assert np.linalg.norm(_bone_world(rig, "hand.L") - a0) > 0.15
