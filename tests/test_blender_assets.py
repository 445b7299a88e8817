"""User assets from files (a glTF written by the test itself) and the optional depth/mask passes."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from exporters.camera_json import CAMERA_FILE, read_camera_json
from exporters.video import probe_video, read_video_frames
from multicam.conventions import intrinsics_matrix, project_points_ue, ue_location_rotator_to_matrix, ue_look_at_rotator
from render_jobs.blender.calibration import beacon_path_cm, job_from_poses
from render_jobs.execute import render_scene
from render_jobs.verify import verify_scene_dir

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def write_gltf_box(path: Path, slide_m: float = 1.0, duration_s: float = 2.0,
                   colour: tuple[float, float, float] = (1, 0, 0), scale: tuple[float, float, float] = (1, 1, 1),
                   translation: tuple[float, float, float] = (0, 0, 0)) -> None:
    """A 2 m emissive cube (glTF units, Y up) whose node slides +X by ``slide_m`` over ``duration_s``
    (no animation when ``slide_m`` is 0)."""
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32)
    idx = np.array([0, 1, 3, 0, 3, 2, 4, 6, 7, 4, 7, 5, 0, 4, 5, 0, 5, 1, 2, 3, 7, 2, 7, 6, 0, 2, 6, 0, 6, 4,
                    1, 5, 7, 1, 7, 3], np.uint16)
    times = np.array([0.0, duration_s], np.float32)
    trans = np.array([translation, np.add(translation, (slide_m, 0, 0))], np.float32)
    blobs = [v.tobytes(), idx.tobytes() + b"\0\0", times.tobytes(), trans.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    data = b"".join(blobs)
    views = [{"buffer": 0, "byteOffset": int(offsets[i]), "byteLength": len(blobs[i])} for i in range(4)]
    views[1]["byteLength"] = idx.nbytes
    gltf = {
        "asset": {"version": "2.0"},
        "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "box", "mesh": 0, "scale": list(scale), "translation": list(translation)}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*colour, 1]}, "emissiveFactor": list(colour)}],
        "buffers": [{"byteLength": len(data),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
        "bufferViews": views,
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 8, "type": "VEC3", "min": [-1, -1, -1], "max": [1, 1, 1]},
            {"bufferView": 1, "componentType": 5123, "count": int(idx.size), "type": "SCALAR"},
            {"bufferView": 2, "componentType": 5126, "count": 2, "type": "SCALAR", "min": [0.0], "max": [duration_s]},
            {"bufferView": 3, "componentType": 5126, "count": 2, "type": "VEC3"},
        ],
        "animations": [{"name": "slide", "channels": [{"sampler": 0, "target": {"node": 0, "path": "translation"}}],
                        "samplers": [{"input": 2, "output": 3, "interpolation": "LINEAR"}]}],
    }
    if slide_m == 0:
        del gltf["animations"]
    path.write_text(json.dumps(gltf))
    assert struct.calcsize("<f") == 4


def _red_centroid(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    m = (r > 80) & (r > 2 * g) & (r > 2 * b)
    assert m.sum() >= 4, "the red box is not in view"
    ys, xs = np.nonzero(m)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def test_gltf_character_and_animation_from_a_catalog_file(tmp_path: Path) -> None:
    from render_jobs.blender_backend import BlenderBackend

    asset, ground = tmp_path / "box.gltf", tmp_path / "ground.gltf"
    write_gltf_box(asset)
    write_gltf_box(ground, slide_m=0.0, colour=(0, 0.6, 0), scale=(4, 0.05, 4), translation=(0, -0.05, 0))
    frames, w, height = 16, 128, 0.5
    eye = np.array([0.0, -500.0, 25.0])  # UE cm; looks along +Y_ue at the box, +X_ue is image right
    target = np.array([0.0, 0.0, 25.0])
    pose = ue_location_rotator_to_matrix(eye, ue_look_at_rotator(eye, target))
    poses = np.broadcast_to(pose, (2, frames, 4, 4)).copy()
    poses[1, :, 3, 2] += 40.0  # a second, higher camera
    job = job_from_poses(poses, focal_mm=35.0, environment=str(ground), character=str(asset),
                         animation=str(asset), height_m=height, width=w, height=w, samples=4, denoise=False,
                         depth_of_field=False)
    out = tmp_path / "scene"
    out.mkdir()
    render_scene(BlenderBackend(device="CPU"), job, out)
    assert verify_scene_dir(job, out) == []
    rec = json.loads((out / "scene.json").read_text())
    assert rec["character_build"]["file"] == str(asset)
    assert rec["character_build"]["scale"] == pytest.approx(height / 2.0, rel=1e-3)
    cams, _ = read_camera_json(out / CAMERA_FILE)
    k = intrinsics_matrix(35.0, w, w)
    video = read_video_frames(out / "videos" / "cam01.mp4")
    seen = np.array([_red_centroid(f) for f in video])
    g = video[0].astype(int)
    assert ((g[..., 1] > 60) & (g[..., 1] > 2 * g[..., 0])).sum() > 0.03 * w * w  # the glTF ground is there
    # glTF: 1 m per 2 s in file units, x0.25 scale -> 0.125 m/s along +X; rendered at 15 fps
    t = np.arange(frames) / job.settings.fps
    centre = np.stack([12.5 * t, np.zeros(frames), np.full(frames, 25.0)], -1)  # UE cm
    uv, _ = project_points_ue(centre, cams[:, 0], k)
    want = uv[np.arange(frames), np.arange(frames)] if uv.ndim == 3 else uv
    np.testing.assert_allclose(seen - seen[0], want - want[0], atol=0.02 * w)
    assert seen[0, 0] - seen[-1, 0] > 0.03 * w  # it really moved (+X_ue is image left for this camera)


@pytest.mark.parametrize("views_per_call", [0, 1])  # both cameras in one render call, or one call each
def test_depth_and_mask_passes(tmp_path: Path, views_per_call: int) -> None:
    from render_jobs.blender_backend import BlenderBackend

    frames, w = 3, 96
    # two cameras at other distances and sides: each camera's passes are its own (one render call renders both)
    eyes = [np.array([-300.0, 0.0, 100.0]), np.array([0.0, 450.0, 160.0])]
    poses = np.stack([np.broadcast_to(ue_location_rotator_to_matrix(e, ue_look_at_rotator(
        e, np.array([0.0, 0.0, 100.0]))), (frames, 4, 4)) for e in eyes])
    job = job_from_poses(poses, focal_mm=50.0, environment="builtin:void", character="builtin:beacon",
                         width=w, height=w, samples=4, denoise=False, extra_passes=["depth", "mask"])
    out = tmp_path / "scene"
    out.mkdir()
    render_scene(BlenderBackend(device="CPU", views_per_call=views_per_call), job, out)
    assert verify_scene_dir(job, out) == []
    cams, names = read_camera_json(out / CAMERA_FILE)
    k = intrinsics_matrix(50.0, w, w)
    centre = beacon_path_cm(np.arange(frames) / job.settings.fps)
    medians = []
    for ci, name in enumerate(names):
        info = probe_video(out / "masks" / f"{name}.mp4")
        assert (info.frames, info.width, info.height) == (frames, w, w)
        masks = read_video_frames(out / "masks" / f"{name}.mp4")[..., 0] > 127
        for f in range(frames):
            uv, depth = project_points_ue(centre[f : f + 1], cams[f, ci], k)
            ys, xs = np.nonzero(masks[f])
            assert masks[f].sum() >= 3
            np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], uv[0], atol=1.0)
            d = cv2.imread(str(out / "depth" / name / f"{f:05d}.png"), cv2.IMREAD_UNCHANGED)
            assert d.dtype == np.uint16 and d.shape == (w, w)
            assert np.all(d[~masks[f]] == 0)  # nothing but the beacon: no depth elsewhere
            front = d[masks[f]].astype(float) / 1000.0
            # planar depth of the sphere's front surface: centre depth minus at most its radius
            assert np.median(front) == pytest.approx(depth[0] - 0.05, abs=0.05)
            medians.append(np.median(front))
    assert max(medians) - min(medians) > 1.0  # the two cameras' depths differ (3 m vs 4.5 m away)


def test_blend_environment_file(tmp_path: Path) -> None:
    import bpy

    from render_jobs.blender_backend import BlenderBackend

    # a .blend holding one blue emissive slab, written without touching the open scene
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = bpy.data.meshes.new("slab")
    mesh.from_pydata([(-3, -3, 0), (3, -3, 0), (3, 3, 0), (-3, 3, 0)], [], [(0, 1, 2, 3)])
    mat = bpy.data.materials.new("blue")
    em = mat.node_tree.nodes.new("ShaderNodeEmission")
    em.inputs["Color"].default_value = (0.0, 0.0, 1.0, 1.0)
    out_node = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    mat.node_tree.links.new(em.outputs[0], out_node.inputs["Surface"])
    mesh.materials.append(mat)
    slab = bpy.data.objects.new("slab", mesh)
    path = tmp_path / "env.blend"
    bpy.data.libraries.write(str(path), {slab}, fake_user=True)
    assert path.is_file()

    eye = np.array([-400.0, 0.0, 300.0])
    pose = ue_location_rotator_to_matrix(eye, ue_look_at_rotator(eye, np.zeros(3)))
    job = job_from_poses(np.broadcast_to(pose, (1, 2, 4, 4)).copy(), environment=str(path),
                         character="builtin:mannequin_slim", animation="builtin:wave", width=64, height=64,
                         samples=2, denoise=False)
    out = tmp_path / "scene"
    out.mkdir()
    render_scene(BlenderBackend(device="CPU"), job, out)
    assert verify_scene_dir(job, out) == []
    frame = read_video_frames(out / "videos" / "cam01.mp4")[0].astype(int)
    blue = (frame[..., 2] > 100) & (frame[..., 2] > 2 * frame[..., 0])
    assert blue.mean() > 0.3  # the slab from the .blend file fills the lower view


def test_fbx_character_with_armature_and_animation(tmp_path: Path) -> None:
    """An FBX written by Blender's own exporter (like a Mixamo export): a rigged, animated box."""
    import bpy

    from render_jobs.blender.keying import key_channels
    from render_jobs.blender_backend import BlenderBackend

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 15
    arm = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bone = arm.data.edit_bones.new("root")
    bone.head, bone.tail = (0, 0, 0), (0, 0, 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    mesh = bpy.data.meshes.new("box")
    mesh.from_pydata([(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (0, 1)], [],
                     [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    mat = bpy.data.materials.new("red")
    mat.node_tree.nodes["Principled BSDF"].inputs["Emission Color"].default_value = (1, 0, 0, 1)
    mat.node_tree.nodes["Principled BSDF"].inputs["Emission Strength"].default_value = 3.0
    mesh.materials.append(mat)
    box_ob = bpy.data.objects.new("box", mesh)
    scene.collection.objects.link(box_ob)
    box_ob.parent = arm  # skinned to the bone, as in a Mixamo export
    box_ob.vertex_groups.new(name="root").add(list(range(8)), 1.0, "REPLACE")
    box_ob.modifiers.new("rig", "ARMATURE").object = arm
    arm.pose.bones["root"].rotation_mode = "XYZ"
    key_channels(arm, 'pose.bones["root"].location', [[0, 0, 0], [0, 0, 0], [0, 1.5, 0]], frames=[0, 1, 30])
    path = tmp_path / "rigged_box.fbx"
    res = bpy.ops.export_scene.fbx(filepath=str(path), object_types={"ARMATURE", "MESH"}, bake_anim=True,
                                   add_leaf_bones=False)
    assert "FINISHED" in res and path.is_file()

    frames, w = 12, 96
    eye = np.array([0.0, -600.0, 60.0])
    pose = ue_location_rotator_to_matrix(eye, ue_look_at_rotator(eye, np.array([0.0, 0.0, 60.0])))
    job = job_from_poses(np.broadcast_to(pose, (1, frames, 4, 4)).copy(), focal_mm=24.0,
                         environment="builtin:void", character=str(path), animation=str(path), height_m=1.2,
                         width=w, height=w, samples=2, denoise=False, depth_of_field=False, extra_passes=["mask"])
    out = tmp_path / "scene"
    out.mkdir()
    render_scene(BlenderBackend(device="CPU"), job, out)
    assert verify_scene_dir(job, out) == []
    rec = json.loads((out / "scene.json").read_text())
    assert rec["character_build"]["objects"] >= 2  # armature + mesh came in
    # the void has no light: follow the character through its mask video
    masks = read_video_frames(out / "masks" / "cam01.mp4")[..., 0] > 127
    assert all(m.sum() > 20 for m in masks)
    top = np.array([np.nonzero(m)[0].min() for m in masks])
    assert top[0] - top[-1] > 5  # the FBX bone animation lifts the box on screen (image y grows downward)
