"""One job in Blender: build the scene once, key the cameras, render every camera over the shared
time line, encode straight to mp4 and record the poses read back from Blender.

Order of work: frame-major, one render call per frame for every camera (up to :data:`PIXELS_PER_CALL`
pixels a call: :func:`camera_groups`): each camera is a view of Blender's multi-view rendering
(:func:`use_camera_views`), so the animated scene is evaluated and synced into Cycles once per call, only
the camera is re-synced per view, and Cycles' persistent data keeps the
scene (BVH, shaders) across frames. One call per camera instead cost ~0.07 CPU-s of fixed overhead per
camera-frame, more than a 64 px frame's path tracing. Each camera has its own open
:class:`exporters.video.Mp4Writer`.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import cv2
import numpy as np
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, write_camera_json
from exporters.video import Mp4Writer
from multicam.conventions import (
    CM_PER_M,
    DEPTH_PNG_MM_PER_M,
    opengl_c2w_to_ue,
    planar_depth_m_to_png_mm,
    ue_to_opengl_c2w,
    ue_to_rh_points,
)
from render_jobs.blender.characters import build_character
from render_jobs.blender.environments import EnvContext, build_environment
from render_jobs.blender.exr import read_exr_views
from render_jobs.blender.keying import key_channels
from render_jobs.blender.motions import matrix_to_quaternion
from render_jobs.schema import RenderJob, RenderSettings

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")
MASK_PASS_INDEX = 1
#: Depth PNGs store millimetres in uint16; 0 = no surface (sky) or beyond 65 m (multicam.conventions).
DEPTH_PNG_SCALE = DEPTH_PNG_MM_PER_M


@dataclass
class JobTimings:
    build_s: float = 0.0
    render_s: float = 0.0
    encode_s: float = 0.0
    passes_s: float = 0.0
    camera_frames: int = 0
    device: str = "CPU"
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        per = self.render_s / max(self.camera_frames, 1)
        return {"build_s": round(self.build_s, 3), "render_s": round(self.render_s, 3),
                "encode_s": round(self.encode_s, 3), "passes_s": round(self.passes_s, 3),
                "render_s_per_camera_frame": round(per, 4), "camera_frames": self.camera_frames,
                "device": self.device}


def pick_device(requested: str) -> str:
    """``auto`` -> the first GPU backend with a device (OptiX, CUDA, HIP, Metal, oneAPI), else ``CPU``.

    A named backend (``CUDA``...) or ``CPU`` is forced; an unavailable GPU backend raises ValueError.
    """
    req = requested.upper()
    if req == "CPU":
        return "CPU"
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
    except KeyError:
        return "CPU" if req == "AUTO" else _no_device(req)
    wanted = GPU_BACKENDS if req == "AUTO" else (req,)
    for backend in wanted:
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.refresh_devices()
        devs = [d for d in prefs.devices if d.type == backend]
        if devs:
            for d in prefs.devices:
                d.use = d.type == backend
            return backend
    if req == "AUTO":
        return "CPU"
    return _no_device(req)


def _no_device(req: str) -> str:
    raise ValueError(f"device {req!r} is not available; use auto, CPU or one of {', '.join(GPU_BACKENDS)}")


def configure_scene(scene: bpy.types.Scene, s: RenderSettings, device: str) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU" if device == "CPU" else "GPU"
    scene.cycles.samples = s.samples
    scene.cycles.use_adaptive_sampling = s.samples >= 32
    scene.cycles.use_denoising = s.denoise
    if s.denoise:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.denoising_prefilter = "FAST"
        scene.cycles.denoising_quality = s.denoise_quality.upper()
    # Budget light paths for CPU speed: two diffuse bounces keep interiors lit; the light tree
    # costs more than it saves with a sun + sky + a few lamps.
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 2
    scene.cycles.glossy_bounces = 1
    scene.cycles.transmission_bounces = 2
    scene.cycles.transparent_max_bounces = 4
    scene.cycles.volume_bounces = 0
    scene.cycles.use_light_tree = False
    # Fast GI: indirect light after the first bounce is approximated by ambient occlusion
    # (~1.3-2x faster on the CPU at equal noise; interiors get slightly darker corners).
    scene.cycles.use_fast_gi = True
    scene.cycles.fast_gi_method = "REPLACE"
    scene.cycles.ao_bounces_render = 1
    scene.cycles.sample_clamp_indirect = 8.0
    scene.cycles.caustics_reflective = False
    scene.cycles.caustics_refractive = False
    scene.cycles.seed = 0
    scene.render.resolution_x = s.width
    scene.render.resolution_y = s.height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    fps = round(s.fps)
    scene.render.fps = fps
    scene.render.fps_base = fps / s.fps
    scene.frame_start, scene.frame_end = 0, s.frames - 1
    scene.render.use_persistent_data = True
    scene.render.use_motion_blur = False
    scene.render.film_transparent = False
    scene.render.image_settings.media_type = "IMAGE"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.render.image_settings.compression = 0
    scene.view_settings.view_transform = "AgX"
    vl = scene.view_layers[0]
    vl.use_pass_z = "depth" in s.extra_passes
    vl.use_pass_object_index = "mask" in s.extra_passes


def clear_m_for(job: RenderJob) -> tuple[float, NDArray[np.float64]]:
    """Horizontal radius (m) that must stay free of tall objects, and every camera xy (m), of the cameras the
    scene's setup is built from (the planned ones also when the job renders only new cameras: the same props)."""
    poses = np.stack([c.poses_array() for c in job.setup_tracks()], axis=1)  # (F, C, 4, 4)
    cam_rh = ue_to_rh_points(poses[..., 3, :3]).reshape(-1, 3)
    center = ue_to_rh_points(np.asarray(job.placement.location_cm, dtype=np.float64))
    d = np.hypot(cam_rh[:, 0] - center[0], cam_rh[:, 1] - center[1])
    return float(max(d.max() + 2.0, 4.0)), cam_rh[:, :2]


def _check_new_cameras_clear(job: RenderJob, env_record: dict[str, Any]) -> None:
    """Cameras added to a scene (``multicam extend``) keep clear of the props laid out around its planned cameras
    (the coordinator already drew them clear of the props ``scene.json`` records; this also covers scenes rendered
    before props were recorded). Raises ValueError naming the camera and the prop."""
    from trajectory.clearance import clear_radius_problem, prop_problem

    obstacles = env_record.get("obstacles", [])
    xy = np.asarray([o["xy_cm"] for o in obstacles], dtype=np.float64).reshape(-1, 2) / CM_PER_M
    ground = np.asarray(job.placement.location_cm[:2], dtype=np.float64) / CM_PER_M
    for track in job.cameras:
        pos = track.poses_array()[:, 3, :2] / CM_PER_M
        why = (prop_problem(pos, xy, [o["radius_m"] for o in obstacles])
               or clear_radius_problem(pos - ground, env_record.get("clear_radius_m")))
        if why:
            raise ValueError(f"{track.name} {why}; draw it again with another --seed")


def add_cameras(job: RenderJob, scene: bpy.types.Scene, coll: bpy.types.Collection) -> list[bpy.types.Object]:
    """One Blender camera per track, keyed per frame from ``ue_to_opengl_c2w`` of the job's poses; each focuses
    on an empty keyed at the track's planned focus points (the plan's choice, replayed)."""
    cams = []
    s = job.settings
    for track in job.cameras:
        cd = bpy.data.cameras.new(track.name)
        cd.type = "PERSP"
        cd.lens_unit = "MILLIMETERS"
        cd.lens = track.focal_mm
        cd.sensor_fit = "HORIZONTAL"
        cd.sensor_width = track.sensor_width_mm
        cd.sensor_height = track.sensor_height_mm
        cd.shift_x = cd.shift_y = 0.0
        cd.clip_start, cd.clip_end = 0.05, 2000.0
        cd.dof.use_dof = s.depth_of_field
        focus = bpy.data.objects.new(f"{track.name}_focus", None)
        coll.objects.link(focus)
        key_channels(focus, "location", ue_to_rh_points(track.focus_array_cm()))
        cd.dof.focus_object = focus
        cd.dof.aperture_fstop = track.aperture
        ob = bpy.data.objects.new(track.name, cd)
        coll.objects.link(ob)
        ob.rotation_mode = "QUATERNION"
        c2w = ue_to_opengl_c2w(track.poses_array())  # (F, 4, 4) Blender matrix_world
        q = matrix_to_quaternion(c2w[:, :3, :3])
        flip = np.concatenate([[False], np.sum(q[1:] * q[:-1], -1) < 0])  # keep the sign continuous
        q[np.logical_xor.accumulate(flip)] *= -1
        key_channels(ob, "location", c2w[:, :3, 3])
        key_channels(ob, "rotation_quaternion", q)
        cams.append(ob)
    return cams


@contextlib.contextmanager
def quiet_stdout(enabled: bool = True) -> Iterator[None]:
    """Silence Blender's C-level per-frame log lines on stdout (fd 1) while rendering."""
    if not enabled:
        yield
        return
    from render_jobs.blender_backend import stdout_fd_to

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with stdout_fd_to(devnull):
            yield
    finally:
        os.close(devnull)


def _read_png(path: Path) -> NDArray[np.uint8]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"Blender did not write {path}")
    return np.ascontiguousarray(img[..., ::-1], dtype=np.uint8)


def render_job(job: RenderJob, out_dir: Path, device: str = "auto", progress: Any = None,
               save_blend: bool = False, threads: int = 0, quiet: bool = True,
               views_per_call: int = 0) -> tuple[JobTimings, dict[str, Any]]:
    """Render ``job`` into ``out_dir`` (videos, camera JSON, optional passes); return the timings and the
    renderer's record for scene.json (written by :mod:`render_jobs.execute`). ``views_per_call``: cameras per
    render call (0 = :func:`camera_groups`' choice)."""
    s = job.settings
    if s.width % 2 or s.height % 2:
        raise ValueError(f"settings.width/height must be even for yuv420p video, got {s.width}x{s.height}")
    tm = JobTimings()
    t0 = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    tm.device = pick_device(device if device != "auto" else s.device)
    configure_scene(scene, s, tm.device)
    if threads > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads
    coll = scene.collection
    rng = np.random.default_rng(job.layout_seed)  # the plan's layout seed: the backend draws nothing of its own
    clear_m, cam_xy = clear_m_for(job)
    center = ue_to_rh_points(np.asarray(job.placement.location_cm, dtype=np.float64))
    env_record = build_environment(job.environment.asset, EnvContext(center, clear_m, cam_xy, rng, coll))
    if job.setup_cameras:
        _check_new_cameras_clear(job, env_record)
    if scene.world is not None:
        # Fast GI's AO distance (m). An environment may set its own as the world's custom property
        # "multicam_ao_distance_m": indoors, where walls and ceiling are within 10 m of every point, a
        # 10 m AO turns the replaced deep bounces black under furniture.
        scene.world.light_settings.distance = float(scene.world.get("multicam_ao_distance_m", 10.0))
    rig = build_character(job.character, job.animation, job.placement, coll, s.frames, s.fps)
    for ob in rig.meshes:
        ob.pass_index = MASK_PASS_INDEX
    cams = add_cameras(job, scene, coll)
    scene.frame_set(0)
    if save_blend:
        bpy.ops.wm.save_as_mainfile(filepath=str(out_dir / "scene.blend"), copy=True)
    tm.build_s = time.perf_counter() - t0

    out_dir = Path(out_dir)
    names = [c.name for c in job.cameras]
    writers = [Mp4Writer(out_dir / "videos" / f"{n}.mp4", s.width, s.height, fps=s.fps, crf=s.video_crf)
               for n in names]
    masks = ([Mp4Writer(out_dir / "masks" / f"{n}.mp4", s.width, s.height, fps=s.fps, crf=s.video_crf)
              for n in names] if "mask" in s.extra_passes else [])
    passes = bool(s.extra_passes)
    readback = np.zeros((s.frames, len(cams), 4, 4))
    tmp = Path(tempfile.mkdtemp(prefix="mc_blender_"))
    pngs = use_camera_views(scene, cams, tmp / "frame.png")
    groups = camera_groups(len(cams), s.width * s.height, views_per_call)
    try:
        with quiet_stdout(quiet):
            for f in range(s.frames):
                scene.frame_set(f)
                readback[f] = [np.array(cam.matrix_world) for cam in cams]
                for group in groups:
                    for ci, cam in enumerate(cams):
                        scene.render.views[cam.name].use = ci in group
                    t = time.perf_counter()
                    bpy.ops.render.render(write_still=True)  # the group's cameras (a view each) -> pngs
                    tm.render_s += time.perf_counter() - t
                    if passes:
                        t = time.perf_counter()
                        _save_passes(scene, tmp / "passes.exr")
                        views = read_exr_views(tmp / "passes.exr")
                        for ci in group:
                            _write_passes(views[cams[ci].name], out_dir, names[ci], f, "depth" in s.extra_passes,
                                          masks[ci] if masks else None)
                        tm.passes_s += time.perf_counter() - t
                    t = time.perf_counter()
                    for ci in group:
                        writers[ci].write(_read_png(pngs[ci]))
                        if s.keep_frames:
                            dst = out_dir / "frames" / names[ci] / f"{f:05d}.png"
                            dst.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copyfile(pngs[ci], dst)
                    tm.encode_s += time.perf_counter() - t
                    tm.camera_frames += len(group)
                    if progress is not None:
                        progress(len(group))
        t = time.perf_counter()
        for w in writers + masks:
            w.close()
        tm.encode_s += time.perf_counter() - t
    except BaseException:
        for w in writers + masks:
            w.abort()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # What was rendered is what is recorded: Blender's matrix_world -> UE row-vector poses.
    write_camera_json(out_dir / CAMERA_FILE, opengl_c2w_to_ue(readback), names)
    record: dict[str, Any] = {
        "renderer": {"blender": bpy.app.version_string, "engine": "CYCLES", "device": tm.device,
                     "samples": s.samples, "denoise": s.denoise,
                     "denoise_quality": s.denoise_quality if s.denoise else None, "depth_of_field": s.depth_of_field,
                     "resolution": [s.width, s.height], "fps": s.fps, "frames": s.frames,
                     "sensor_fit": "horizontal", "view_transform": "AgX",
                     "extra_passes": list(s.extra_passes)},
        "environment_build": env_record,
        "character_build": rig.record,
        "timings": tm.record(),
    }
    if "depth" in s.extra_passes:
        record["renderer"]["depth"] = {"format": "png16", "unit": "mm", "scale": DEPTH_PNG_SCALE,
                                       "kind": "planar (distance along the optical axis)", "invalid": 0}
    return tm, record


#: Pixels one render call renders at most when the cameras per call are chosen (``views_per_call=0``): ten 256 px
#: cameras. Each view keeps its passes in memory until the call ends (~0.5 GB more at 640 px x 10 cameras), and
#: at large sizes the call's fixed cost (~0.07 CPU-s) is nothing next to the path tracing.
PIXELS_PER_CALL = 10 * 256 * 256


def camera_groups(n_cameras: int, pixels: int, views_per_call: int = 0) -> list[list[int]]:
    """Camera indices rendered together by one render call: ``views_per_call`` each (0: as many as fit
    :data:`PIXELS_PER_CALL`, at least one), in camera order."""
    k = views_per_call if views_per_call > 0 else max(1, PIXELS_PER_CALL // max(pixels, 1))
    return [list(range(i, min(i + k, n_cameras))) for i in range(0, n_cameras, k)]


def use_camera_views(scene: bpy.types.Scene, cams: list[bpy.types.Object], png: Path) -> list[Path]:
    """One render call renders every camera: Blender's multi-view ("MULTIVIEW" format) with one view per camera,
    whose suffix is the camera object's whole name (view i renders the object named prefix + suffix i, the prefix
    being the scene camera's name less its view's suffix: ""). Cycles syncs the scene once per call and only the
    camera per view, which removes most of the fixed cost of a call per camera. Returns the PNG file
    ``write_still`` writes per view (``frame<suffix>.png``); the passes EXR holds every view (:func:`_save_passes`)."""
    r = scene.render
    r.use_multiview = True
    r.views_format = "MULTIVIEW"
    for v in r.views:
        v.use = False
    for cam in cams:
        v = r.views.new(cam.name)
        v.camera_suffix = cam.name
        v.use = True
    r.image_settings.views_format = "INDIVIDUAL"
    scene.camera = cams[0]
    r.filepath = str(png)
    return [png.with_name(f"{png.stem}{c.name}{png.suffix}") for c in cams]


def _save_passes(scene: bpy.types.Scene, path: Path) -> None:
    st = scene.render.image_settings
    st.media_type = "MULTI_LAYER_IMAGE"
    st.file_format = "OPEN_EXR_MULTILAYER"
    st.exr_codec = "NONE"
    st.color_depth = "32"
    st.views_format = "MULTIVIEW"  # one multi-part file, a part per view (camera): read_exr_views
    try:
        # Blender 5.0's first save of a Render Result ignores MULTIVIEW (writes a file per view and reports an
        # error); the second writes the one file.
        path.unlink(missing_ok=True)
        for _ in range(2):
            with contextlib.suppress(RuntimeError):
                bpy.data.images["Render Result"].save_render(str(path), scene=scene)
            if path.is_file():
                break
        else:
            raise RuntimeError(f"Blender did not write the render passes to {path}")
    finally:
        st.views_format = "INDIVIDUAL"
        st.media_type = "IMAGE"
        st.file_format = "PNG"
        st.color_mode = "RGB"
        st.color_depth = "8"


def _find(channels: dict[str, NDArray[np.float32]], suffix: str) -> NDArray[np.float32]:
    for k, v in channels.items():
        if k.endswith(suffix):
            return v
    raise RuntimeError(f"render pass {suffix!r} missing from {sorted(channels)}")


def _write_passes(ch: dict[str, NDArray[np.float32]], out_dir: Path, cam: str, frame: int, depth: bool,
                  mask_writer: Mp4Writer | None) -> None:
    if depth:
        z = _find(ch, "Depth.Z")
        mm = planar_depth_m_to_png_mm(z)
        dst = out_dir / "depth" / cam / f"{frame:05d}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), mm)
    if mask_writer is not None:
        idx = _find(ch, "Object Index.X")
        m = np.where(np.abs(idx - MASK_PASS_INDEX) < 0.5, 255, 0).astype(np.uint8)
        mask_writer.write(np.repeat(m[..., None], 3, axis=2))


__all__ = ["render_job", "pick_device", "JobTimings", "math"]
