"""Render one MultiCam job inside the Unreal Editor (UE 5.3-5.6): synchronized camera videos via MRQ.

Run by ``render_jobs.unreal_backend`` as::

    UnrealEditor-Cmd <project.uproject> -ExecutePythonScript=<this file> -unattended -nosplash
        -RenderOffscreen ...        (job file path in the environment variable MULTICAM_UE_JOB)

Standard library + ``unreal`` only (no numpy, no project imports): the editor's Python has neither.
The script decides nothing: the job file (written by ``render_jobs.unreal_backend.ue_job_dict``)
holds every number already converted to what the engine wants, in particular each camera's UE
location (cm) and rotator (pitch, yaw, roll in degrees, unwrapped over time) per frame.

What it does:

1. load the map; spawn the character (SkeletalMeshActor) at the anchor with the job's yaw;
   spawn one CineCameraActor per camera (focal length, aperture, 23.76 x 23.76 mm filmback,
   focus tracking the character or depth of field disabled);
2. per camera, create a LevelSequence under ``content_folder`` (deleted afterwards): display rate =
   job fps, playback range [0, frames), the character's skeletal animation track with the job's
   animation and start offset, the camera's transform track keyed on every frame with linear (or
   constant) interpolation, and one camera cut over the whole range bound to that camera. All
   sequences share the same animation time line, so the videos are synchronized by construction;
3. read back the transform each sequence evaluates at every frame (channel evaluation) and record
   it with the engine's own matrix (``Transform.to_matrix``), so the camera file is what rendered;
4. queue one Movie Render Queue job per camera (deferred pass, spatial samples, warm-up frames,
   PNG or EXR named ``<camNN>/<frame>``) and run it with the PIE executor (unattended); a job with depth/mask
   passes adds post-process material passes and a multilayer EXR output (:func:`configure_passes`; the
   character renders custom depth with a stencil value for the mask);
5. when the executor finishes: check every frame exists, write the result JSON, delete the
   temporary assets and actors, quit the editor. Failures write ``{"status": "error", ...}`` and
   exit with code 3 (:data:`EXIT_FAILED`) so the launcher sees them even without the result file.

Session mode (``MULTICAM_UE_INBOX`` set): the editor stays up and runs job requests dropped into
that folder one after another (see :class:`Session`), saving the editor start-up per job.

API differences between the versions we support, handled or noted where used:

* transform channels are doubles since UE 5.0 (large world coordinates):
  ``get_channels_by_type(MovieSceneScriptingDoubleChannel)``; 4.27 had float channels;
* ``MovieSceneSequence.add_track`` (5.2+) replaced ``add_master_track`` (removed in 5.4);
* ``SkinnedMeshComponent.set_skinned_asset_and_update`` (5.1+) replaced ``set_skeletal_mesh``;
* ``add_key(..., time_unit=...)`` takes ``MovieSceneTimeUnit`` (5.3+) instead of
  ``SequenceTimeUnit``; we rely on the default (display rate) and never pass it. Its
  ``interpolation=`` argument and ``evaluate_keys(range, frame_rate)`` are on the 5.4 Python API page
  of ``MovieSceneScriptingDoubleChannel`` and in the 5.6 stub; older versions need
  ``set_interpolation_mode`` per key (not supported here);
* MRQ's primary configuration class is ``MoviePipelinePrimaryConfig`` (5.2+; "MasterConfig" before);
* ``MoviePipelineCameraSetting.render_all_cameras`` exists from 5.1 but renders only cameras of the
  same sequence alongside the cut's camera; we use one camera cut per camera instead (portable).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, TypeVar

import unreal

# Run by the editor as a script (-ExecutePythonScript=.../ue_scripts/render_job.py), the package holding the job
# file's one definition is importable from the folder above this one (the launcher also sets UE_PYTHONPATH to it).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, _PACKAGE_ROOT)
from ue_scripts.job_file import (  # noqa: E402
    CameraSpec,
    JobError,
    UeJob,
    frame_file_format,
    has_passes,
    load_job,
    parse_job,
    pass_frame_path,
    rgb_frame_path,
)

_S = TypeVar("_S", bound=unreal.EditorSubsystem)
_A = TypeVar("_A", bound=unreal.Object)

JOB_ENV = "MULTICAM_UE_JOB"
EXIT_FAILED = 3
RESULT_SCHEMA = 1

#: Transform section channel names (UE 5.x) -> our component index: location x, y, z, then
#: rotation as (roll, pitch, yaw) which are the channels Rotation.X, .Y, .Z.
_LOCATION = ("Location.X", "Location.Y", "Location.Z")
_ROTATION = ("Rotation.X", "Rotation.Y", "Rotation.Z")  # roll, pitch, yaw
_SCALE = ("Scale.X", "Scale.Y", "Scale.Z")


# The job file: one definition (ue_scripts/job_file.py), shared with the launcher
# ------------------------------------------------------------------------------------------------

def write_json_atomic(path: str, obj: dict[str, Any]) -> None:
    tmp = f"{path}.part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def frame_rate(fps: float) -> unreal.FrameRate:
    """15.0 -> 15/1; 29.97 -> 29970/1000 (FrameRate is a rational)."""
    if abs(fps - round(fps)) < 1e-9:
        return unreal.FrameRate(numerator=int(round(fps)), denominator=1)
    return unreal.FrameRate(numerator=int(round(fps * 1000)), denominator=1000)


def package_path(path: str) -> str:
    """``/Game/Maps/Town.Town`` or ``/Game/Maps/Town`` -> ``/Game/Maps/Town`` (what load_level takes)."""
    return path.split(".", 1)[0]


def object_path(path: str) -> str:
    """``/Game/Maps/Town`` -> ``/Game/Maps/Town.Town`` (a soft object path, as MRQ jobs store maps)."""
    pkg = package_path(path)
    return path if "." in path else f"{pkg}.{pkg.rsplit('/', 1)[-1]}"


#: Sequencer tick resolution we set explicitly so that frame offsets in ticks are exact.
TICKS_PER_SECOND = 24000


# ------------------------------------------------------------------------------------------------
# Building the scene
# ------------------------------------------------------------------------------------------------


def _editor_subsystem(kind: type[_S]) -> _S:
    sub = unreal.get_editor_subsystem(kind)
    if sub is None:
        raise JobError(f"editor subsystem {kind.__name__} is not available (is this the editor?)")
    return sub


def _load(path: str, kind: type[_A], what: str) -> _A:
    if not unreal.EditorAssetLibrary.does_asset_exist(path):
        raise JobError(f"{what} asset not found: {path!r}")
    asset = unreal.EditorAssetLibrary.load_asset(path)
    if not isinstance(asset, kind):
        raise JobError(f"{what} {path!r} is a {type(asset).__name__}, expected {kind.__name__}")
    return asset


def _vector(v: list[float]) -> unreal.Vector:
    return unreal.Vector(x=v[0], y=v[1], z=v[2])


def _rotator(pyr: list[float]) -> unreal.Rotator:
    # unreal.Rotator's positional order is (roll, pitch, yaw): always pass keywords.
    return unreal.Rotator(roll=pyr[2], pitch=pyr[0], yaw=pyr[1])


@dataclass
class Built:
    """Everything created in the editor for one job (for rendering, reading back and clean-up)."""

    character: unreal.SkeletalMeshActor | None
    cameras: dict[str, unreal.CineCameraActor]
    sequences: dict[str, unreal.LevelSequence]
    channels: dict[str, dict[str, unreal.MovieSceneScriptingDoubleChannel]]
    #: marker spheres and the light of the install check (empty for dataset jobs)
    extras: list[unreal.Actor] = field(default_factory=list)


def spawn_character(job: UeJob, actors: unreal.EditorActorSubsystem) -> unreal.SkeletalMeshActor:
    mesh = _load(job.character_mesh, unreal.SkeletalMesh, "character skeletal mesh")
    actor = actors.spawn_actor_from_class(
        unreal.SkeletalMeshActor.static_class(), _vector(job.character_location_cm),
        unreal.Rotator(roll=0.0, pitch=0.0, yaw=job.character_yaw_deg),
    )
    if not isinstance(actor, unreal.SkeletalMeshActor):
        raise JobError("could not spawn the character SkeletalMeshActor")
    actor.set_actor_label(f"multicam_{job.job_id}_character")
    comp = actor.skeletal_mesh_component
    comp.set_skinned_asset_and_update(mesh)
    if job.mask_material:
        # The mask pass: the character writes its stencil value into the custom depth/stencil buffer, which the
        # mask material reads (SceneTexture:CustomStencil). Stencil writes need r.CustomDepth=3 ("Enabled with
        # Stencil"; SceneRendering / the renderer's r.CustomDepth help text), set in configure_passes.
        comp.set_render_custom_depth(True)
        comp.set_custom_depth_stencil_value(job.mask_stencil_value)
    return actor


#: The engine's basic sphere: 100 cm across at scale 1.
SPHERE_MESH = "/Engine/BasicShapes/Sphere.Sphere"
SPHERE_RADIUS_CM = 50.0


def spawn_markers(job: UeJob, actors: unreal.EditorActorSubsystem) -> list[unreal.Actor]:
    """The install check's marker spheres at the job's world points (and a light, for an empty map)."""
    out: list[unreal.Actor] = []
    if job.markers_cm:
        mesh = _load(SPHERE_MESH, unreal.StaticMesh, "marker sphere mesh")
        scale = job.marker_radius_cm / SPHERE_RADIUS_CM
        for i, p in enumerate(job.markers_cm):
            actor = actors.spawn_actor_from_class(unreal.StaticMeshActor.static_class(), _vector(p), unreal.Rotator())
            if not isinstance(actor, unreal.StaticMeshActor):
                raise JobError("could not spawn a marker StaticMeshActor")
            actor.set_actor_label(f"multicam_{job.job_id}_marker{i}")
            actor.static_mesh_component.set_static_mesh(mesh)
            actor.set_actor_scale3d(unreal.Vector(x=scale, y=scale, z=scale))
            out.append(actor)
    if job.add_light:
        light = actors.spawn_actor_from_class(unreal.DirectionalLight.static_class(), unreal.Vector(),
                                              unreal.Rotator(roll=0.0, pitch=-60.0, yaw=30.0))
        light.set_actor_label(f"multicam_{job.job_id}_light")
        out.append(light)
    return out


def spawn_camera(job: UeJob, cam: CameraSpec, character: unreal.Actor | None,
                 actors: unreal.EditorActorSubsystem) -> unreal.CineCameraActor:
    actor = actors.spawn_actor_from_class(
        unreal.CineCameraActor.static_class(), _vector(cam.locations[0]), _rotator(cam.rotators[0])
    )
    if not isinstance(actor, unreal.CineCameraActor):
        raise JobError(f"could not spawn CineCameraActor for {cam.name}")
    actor.set_actor_label(f"multicam_{job.job_id}_{cam.name}")
    comp = actor.get_cine_camera_component()
    comp.filmback = unreal.CameraFilmbackSettings(
        sensor_width=cam.sensor_width_mm, sensor_height=cam.sensor_height_mm
    )
    # UCineCameraComponent::RecalcDerivedData clamps the focal length and aperture to the lens's limits
    # (the default lens preset would turn f/2.4 into its own minimum f-stop), so the lens is set to exactly the
    # job's values first: 18-50 mm and f/2.4-f/10 always survive.
    comp.lens_settings = unreal.CameraLensSettings(
        min_focal_length=cam.focal_mm, max_focal_length=cam.focal_mm, min_f_stop=cam.aperture, max_f_stop=cam.aperture
    )
    comp.current_focal_length = cam.focal_mm
    comp.current_aperture = cam.aperture
    if job.depth_of_field and character is not None:
        comp.focus_settings = unreal.CameraFocusSettings(
            focus_method=unreal.CameraFocusMethod.TRACKING,
            tracking_focus_settings=unreal.CameraTrackingFocusSettings(
                actor_to_track=character, relative_offset=unreal.Vector(x=0.0, y=0.0, z=job.focus_height_cm)
            ),
        )
    else:
        comp.focus_settings = unreal.CameraFocusSettings(focus_method=unreal.CameraFocusMethod.DISABLE)
    return actor


def create_sequence(job: UeJob, name: str) -> unreal.LevelSequence:
    tools = unreal.AssetToolsHelpers.get_asset_tools()
    asset = tools.create_asset(name, job.content_folder, unreal.LevelSequence.static_class(),
                               unreal.LevelSequenceFactoryNew())
    if not isinstance(asset, unreal.LevelSequence):
        raise JobError(f"could not create LevelSequence {job.content_folder}/{name}")
    asset.set_tick_resolution(unreal.FrameRate(numerator=TICKS_PER_SECOND, denominator=1))
    asset.set_display_rate(frame_rate(job.fps))
    asset.set_playback_start(0)
    asset.set_playback_end(job.frames)  # exclusive: frames 0 .. frames-1
    return asset


def add_animation(job: UeJob, seq: unreal.LevelSequence, character: unreal.SkeletalMeshActor,
                  anim: unreal.AnimSequence) -> None:
    binding = seq.add_possessable(character)
    track = binding.add_track(unreal.MovieSceneSkeletalAnimationTrack.static_class())
    section = track.add_section()
    if not isinstance(section, unreal.MovieSceneSkeletalAnimationSection):
        raise JobError("skeletal animation track did not create an animation section")
    params = section.params  # a struct: modify a copy and assign it back
    params.animation = anim
    # Offsets are FrameNumbers in tick resolution; start_frame is at the animation's own fps.
    offset_ticks = int(round(job.animation_start_frame / job.animation_fps * TICKS_PER_SECOND))
    params.first_loop_start_frame_offset = unreal.FrameNumber(value=offset_ticks)
    section.params = params
    section.set_range(0, job.frames)


def transform_channels(section: unreal.MovieSceneSection) -> dict[str, unreal.MovieSceneScriptingDoubleChannel]:
    """The 9 double channels of a 3D transform section, by name (``Location.X`` ... ``Scale.Z``)."""
    out: dict[str, unreal.MovieSceneScriptingDoubleChannel] = {}
    for ch in section.get_channels_by_type(unreal.MovieSceneScriptingDoubleChannel.static_class()):
        if isinstance(ch, unreal.MovieSceneScriptingDoubleChannel):
            out[str(ch.channel_name)] = ch
    missing = [n for n in (*_LOCATION, *_ROTATION, *_SCALE) if n not in out]
    if missing:
        raise JobError(f"transform section lacks channels {missing}; found {sorted(out)}")
    return out


def add_camera_track(job: UeJob, seq: unreal.LevelSequence, cam: CameraSpec,
                     actor: unreal.CineCameraActor) -> dict[str, unreal.MovieSceneScriptingDoubleChannel]:
    binding = seq.add_possessable(actor)
    track = binding.add_track(unreal.MovieScene3DTransformTrack.static_class())
    section = track.add_section()
    section.set_range(0, job.frames)
    channels = transform_channels(section)
    interp = (unreal.MovieSceneKeyInterpolation.LINEAR if job.interpolation == "linear"
              else unreal.MovieSceneKeyInterpolation.CONSTANT)
    for f in range(job.frames):
        t = unreal.FrameNumber(value=f)  # display-rate frame (the default time unit)
        loc, pyr = cam.locations[f], cam.rotators[f]
        for name, value in zip(_LOCATION, loc, strict=True):
            channels[name].add_key(t, value, interpolation=interp)
        for name, value in zip(_ROTATION, (pyr[2], pyr[0], pyr[1]), strict=True):
            channels[name].add_key(t, value, interpolation=interp)
    for name in _SCALE:
        channels[name].set_default(1.0)
    cut_track = seq.add_track(unreal.MovieSceneCameraCutTrack.static_class())
    cut = cut_track.add_section()
    if not isinstance(cut, unreal.MovieSceneCameraCutSection):
        raise JobError("camera cut track did not create a camera cut section")
    cut.set_range(0, job.frames)
    cut.set_camera_binding_id(seq.get_binding_id(binding))
    return channels


def load_map(map_path: str) -> None:
    """Load the job's map unless it is the one already open (sessions: no reload, no save prompt)."""
    world = _editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
    if world is not None and world.get_path_name() == object_path(map_path):
        return
    if not _editor_subsystem(unreal.LevelEditorSubsystem).load_level(package_path(map_path)):
        raise JobError(f"could not load map {map_path!r}")


def build(job: UeJob) -> Built:
    load_map(job.map)
    actors = _editor_subsystem(unreal.EditorActorSubsystem)
    anim = _load(job.animation, unreal.AnimSequence, "animation") if job.animation else None
    if unreal.EditorAssetLibrary.does_directory_exist(job.content_folder):
        unreal.EditorAssetLibrary.delete_directory(job.content_folder)
    character = spawn_character(job, actors) if job.character_mesh else None
    built = Built(character=character, cameras={}, sequences={}, channels={})
    built.extras = spawn_markers(job, actors)
    for cam in job.cameras:
        actor = spawn_camera(job, cam, character, actors)
        built.cameras[cam.name] = actor
        seq = create_sequence(job, f"{job.job_id}_{cam.name}")
        built.sequences[cam.name] = seq
        if character is not None and anim is not None:
            add_animation(job, seq, character, anim)
        built.channels[cam.name] = add_camera_track(job, seq, cam, actor)
    return built


# ------------------------------------------------------------------------------------------------
# Reading back what the sequences evaluate
# ------------------------------------------------------------------------------------------------


def _matrix_rows(m: unreal.Matrix) -> list[list[float]]:
    return [[p.x, p.y, p.z, p.w] for p in (m.x_plane, m.y_plane, m.z_plane, m.w_plane)]


def evaluated_poses(job: UeJob, built: Built) -> dict[str, dict[str, list[Any]]]:
    """Per camera: location, rotator (pitch, yaw, roll) and the engine's row-vector matrix per frame,
    evaluated from the keyed channels at every display-rate frame."""
    # The range must come from the sequence: make_range(start, duration) is in its display rate. A
    # range built with SequencerScriptingRange(...) keeps the struct's default internal rate
    # (60000 fps, not settable from Python) and evaluate_keys converts it to the tick resolution,
    # so [0, frames) would end a fraction of one display frame in (one value per channel).
    rate = frame_rate(job.fps)
    out: dict[str, dict[str, list[Any]]] = {}
    for name, channels in built.channels.items():
        rng = built.sequences[name].make_range(0, job.frames)
        values = {n: list(channels[n].evaluate_keys(rng, rate)) for n in (*_LOCATION, *_ROTATION)}
        for n, v in values.items():
            if len(v) != job.frames:
                raise JobError(f"{name}: channel {n} evaluated {len(v)} frames, expected {job.frames}")
        locs, rots, mats = [], [], []
        for f in range(job.frames):
            loc = [values[n][f] for n in _LOCATION]
            roll, pitch, yaw = (values[n][f] for n in _ROTATION)
            xform = unreal.Transform(location=_vector(loc), rotation=unreal.Rotator(roll=roll, pitch=pitch, yaw=yaw),
                                     scale=unreal.Vector(x=1.0, y=1.0, z=1.0))
            locs.append(loc)
            rots.append([pitch, yaw, roll])
            mats.append(_matrix_rows(xform.to_matrix()))
        out[name] = {"location_cm": locs, "rotator_deg": rots, "matrix": mats}
    return out


# ------------------------------------------------------------------------------------------------
# Movie Render Queue
# ------------------------------------------------------------------------------------------------


#: ``r.CustomDepth`` value that enables the custom depth buffer with stencil (the engine's help text: 0 off,
#: 1 on, 2 on demand, 3 on with stencil); MoviePipelineDeferredPasses.cpp sets the same for its stencil layers.
CUSTOM_DEPTH_WITH_STENCIL = 3


def configure_passes(job: UeJob, config: unreal.MoviePipelinePrimaryConfig) -> None:
    """Depth and mask as post-process material passes of the deferred pass, written as 32-bit float layers of one
    uncompressed multilayer EXR per frame (next to the PNG output of the RGB frames)."""
    deferred = unreal.MoviePipelineDeferredPassBase.cast(
        config.find_or_add_setting_by_class(unreal.MoviePipelineDeferredPassBase.static_class()))
    passes: list[unreal.MoviePipelinePostProcessPass] = []
    for path, what in ((job.depth_material, "depth pass material"), (job.mask_material, "mask pass material")):
        if path:
            pp = unreal.MoviePipelinePostProcessPass()
            pp.enabled = True
            pp.material = _load(path, unreal.MaterialInterface, what)
            passes.append(pp)
    # Replaces the constructor's list (WorldDepth and MotionVectors, both disabled). Struct arrays come back as
    # copies from Python, so the whole array is assigned.
    deferred.additional_post_process_materials = passes
    # 16-bit half would keep depth to ~0.5 cm at 10 m only; 32-bit float layers (UE 5.3-5.6 property; 5.7+ has
    # a per-pass flag instead).
    deferred.use32_bit_post_process_materials = True
    exr = unreal.MoviePipelineImageSequenceOutput_EXR.cast(
        config.find_or_add_setting_by_class(unreal.MoviePipelineImageSequenceOutput_EXR.static_class()))
    exr.multilayer = True  # every pass in one file per frame (MoviePipelineEXROutput.cpp)
    exr.compression = unreal.EXRCompressionFormat.NONE  # default PIZ; the launcher's reader takes uncompressed
    if job.mask_material:
        world = _editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        unreal.SystemLibrary.execute_console_command(world, f"r.CustomDepth {CUSTOM_DEPTH_WITH_STENCIL}")


def configure_queue(job: UeJob, built: Built,
                    queue: unreal.MoviePipelineQueue) -> list[unreal.MoviePipelineExecutorJob]:
    queue.delete_all_jobs()
    jobs = []
    for cam in job.cameras:
        seq = built.sequences[cam.name]
        mrq_job = queue.allocate_new_job(unreal.MoviePipelineExecutorJob.static_class())
        mrq_job.job_name = cam.name
        mrq_job.map = unreal.SoftObjectPath(object_path(job.map))
        mrq_job.sequence = unreal.SoftObjectPath(seq.get_path_name())
        config = mrq_job.get_configuration()

        out = unreal.MoviePipelineOutputSetting.cast(
            config.find_or_add_setting_by_class(unreal.MoviePipelineOutputSetting.static_class()))
        out.output_directory = unreal.DirectoryPath(job.frames_dir)
        out.file_name_format = frame_file_format(job, cam.name)
        out.output_resolution = unreal.IntPoint(x=job.width, y=job.height)
        out.use_custom_playback_range = True
        out.custom_start_frame = 0
        out.custom_end_frame = job.frames
        out.use_custom_frame_rate = True
        out.output_frame_rate = frame_rate(job.fps)
        out.zero_pad_frame_numbers = 4
        out.frame_number_offset = 0
        out.handle_frame_count = 0
        out.override_existing_output = True

        config.find_or_add_setting_by_class(unreal.MoviePipelineDeferredPassBase.static_class())
        image_cls = (unreal.MoviePipelineImageSequenceOutput_PNG if job.image_format == "png"
                     else unreal.MoviePipelineImageSequenceOutput_EXR)
        config.find_or_add_setting_by_class(image_cls.static_class())
        if has_passes(job):
            configure_passes(job, config)

        aa = unreal.MoviePipelineAntiAliasingSetting.cast(
            config.find_or_add_setting_by_class(unreal.MoviePipelineAntiAliasingSetting.static_class()))
        aa.spatial_sample_count = job.spatial_samples
        aa.temporal_sample_count = 1  # no motion blur accumulation: frames are exact poses
        aa.override_anti_aliasing = True
        aa.anti_aliasing_method = unreal.AntiAliasingMethod.AAM_NONE
        aa.engine_warm_up_count = job.warmup_frames
        aa.render_warm_up_count = job.warmup_frames
        aa.use_camera_cut_for_warm_up = False

        camera = unreal.MoviePipelineCameraSetting.cast(
            config.find_or_add_setting_by_class(unreal.MoviePipelineCameraSetting.static_class()))
        camera.render_all_cameras = False  # one camera cut (one camera) per MRQ job
        camera.override_camera_overscan = True  # else the camera's own overscan is used, not the value below
        camera.overscan_percentage = 0.0
        jobs.append(mrq_job)
    return jobs


def expected_frame_files(job: UeJob) -> dict[str, list[str]]:
    """Every file the launcher reads: the RGB frames and, with passes, the EXR of each frame."""
    out = {}
    for c in job.cameras:
        files = [rgb_frame_path(job, c.name, f) for f in range(job.frames)]
        if has_passes(job):
            files += [pass_frame_path(job, c.name, f) for f in range(job.frames)]
        out[c.name] = files
    return out


# ------------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------------


class Runner:
    """Holds the state across the asynchronous MRQ callbacks (and keeps the executor alive)."""

    def __init__(self, job: UeJob, session: bool = False) -> None:
        self.job = job
        #: In a session the editor stays up after the job (no quit, no hard exit on failure).
        self.session = session
        self.built: Built | None = None
        self.poses: dict[str, dict[str, list[Any]]] = {}
        self.errors: list[str] = []
        self.finished_jobs: dict[str, bool] = {}
        self.executor: unreal.MoviePipelinePIEExecutor | None = None
        self.done = False

    # -- results --------------------------------------------------------------------------------
    def result(self, status: str, error: str = "") -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "status": status,
            "error": error,
            "job_id": self.job.job_id,
            "engine_version": unreal.SystemLibrary.get_engine_version(),
            "frames_dir": self.job.frames_dir,
            "image_format": self.job.image_format,
            "frames": self.job.frames,
            "fps": self.job.fps,
            "width": self.job.width,
            "height": self.job.height,
            "mrq_jobs": self.finished_jobs,
            "engine_errors": self.errors,
            "cameras": {c.name: self.poses.get(c.name, {}) for c in self.job.cameras},
        }

    def cleanup(self) -> None:
        built, self.built = self.built, None
        if built is None:
            return
        try:
            actors = _editor_subsystem(unreal.EditorActorSubsystem)
            for actor in [built.character, *built.cameras.values(), *built.extras]:
                if actor is not None:
                    actors.destroy_actor(actor)
            if unreal.EditorAssetLibrary.does_directory_exist(self.job.content_folder):
                unreal.EditorAssetLibrary.delete_directory(self.job.content_folder)
        except Exception as exc:  # clean-up must never hide the job's own outcome
            unreal.log_warning(f"multicam: clean-up failed: {exc}")

    def finish(self, status: str, error: str = "") -> None:
        if self.done:
            return
        self.done = True
        if error:
            unreal.log_error(f"multicam: job {self.job.job_id} failed: {error}")
        write_json_atomic(self.job.result_path, self.result(status, error))
        self.cleanup()
        unreal.log(f"multicam: job {self.job.job_id} {status}; result {self.job.result_path}")
        if self.session:
            return
        if status != "ok" and os.environ.get("MULTICAM_UE_HARD_EXIT", "1") == "1":
            unreal.log_flush()
            os._exit(EXIT_FAILED)
        unreal.SystemLibrary.quit_editor()

    # -- MRQ callbacks --------------------------------------------------------------------------
    def on_job_finished(self, results: unreal.MoviePipelineOutputData) -> None:
        self.finished_jobs[results.job.job_name] = bool(results.success)

    def on_error(self, executor: unreal.MoviePipelineExecutorBase, pipeline: unreal.MoviePipeline,
                 is_fatal: bool, error_text: unreal.Text) -> None:
        self.errors.append(f"{'fatal: ' if is_fatal else ''}{error_text}")

    def on_finished(self, executor: unreal.MoviePipelineExecutorBase, success: bool) -> None:
        try:
            missing = [p for files in expected_frame_files(self.job).values() for p in files
                       if not os.path.isfile(p)]
            failed = sorted(n for n, ok in self.finished_jobs.items() if not ok)
            if not success or failed or missing:
                detail = "; ".join(self.errors[:5])
                self.finish("error", f"Movie Render Queue failed (success={success}, failed jobs={failed}, "
                                     f"{len(missing)} missing frames, first: {missing[:1]}) {detail}".strip())
            else:
                self.finish("ok")
        except Exception as exc:
            self.finish("error", f"{type(exc).__name__}: {exc}")

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            job = self.job
            for cam in job.cameras:
                os.makedirs(os.path.join(job.frames_dir, cam.name), exist_ok=True)
            self.built = build(job)
            self.poses = evaluated_poses(job, self.built)
            subsystem = _editor_subsystem(unreal.MoviePipelineQueueSubsystem)
            configure_queue(job, self.built, subsystem.get_queue())
            executor = unreal.MoviePipelinePIEExecutor()
            executor.on_individual_job_work_finished_delegate.add_callable_unique(self.on_job_finished)
            executor.on_executor_errored_delegate.add_callable_unique(self.on_error)
            executor.on_executor_finished_delegate.add_callable_unique(self.on_finished)
            self.executor = executor
            unreal.log(f"multicam: rendering {len(job.cameras)} cameras x {job.frames} frames")
            subsystem.render_queue_with_executor_instance(executor)
        except JobError as exc:
            self.finish("error", str(exc))
        except Exception as exc:
            self.finish("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


#: The running job (module-level so the executor and callbacks outlive ``main``).
RUNNER: Runner | None = None

INBOX_ENV = "MULTICAM_UE_INBOX"
PARENT_ENV = "MULTICAM_UE_PARENT_PID"


def _parent_alive() -> bool:
    """False once the launcher process that started this session has died (no orphan editors)."""
    pid = os.environ.get(PARENT_ENV, "")
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
QUIT_REQUEST = "quit.json"


class Session:
    """One editor for many jobs: on every editor tick, when no job is running, take the oldest
    ``*.json`` request from the inbox folder (renamed to ``*.taken`` so it runs once) and run it;
    ``quit.json`` quits the editor. The launcher waits for each job's result file."""

    def __init__(self, inbox: str) -> None:
        self.inbox = inbox
        self.runner: Runner | None = None
        self.handle: object | None = None

    def start(self) -> None:
        self.handle = unreal.register_slate_post_tick_callback(self.tick)
        unreal.log(f"multicam: session waiting for jobs in {self.inbox}")

    def tick(self, delta_seconds: float) -> None:
        if not _parent_alive():
            unreal.log_warning("multicam: the launcher is gone; session quitting")
            if self.handle is not None:
                unreal.unregister_slate_post_tick_callback(self.handle)
                self.handle = None
            unreal.SystemLibrary.quit_editor()
            return
        if self.runner is not None and not self.runner.done:
            return
        self.runner = None
        try:
            names = sorted(n for n in os.listdir(self.inbox) if n.endswith(".json") and not n.startswith("."))
        except OSError:
            return
        if not names:
            return
        if QUIT_REQUEST in names:
            os.remove(os.path.join(self.inbox, QUIT_REQUEST))
            if self.handle is not None:
                unreal.unregister_slate_post_tick_callback(self.handle)
            unreal.log("multicam: session quitting")
            unreal.SystemLibrary.quit_editor()
            return
        taken = os.path.join(self.inbox, names[0][: -len(".json")] + ".taken")
        os.replace(os.path.join(self.inbox, names[0]), taken)
        try:
            with open(taken, encoding="utf-8") as fh:
                data = json.load(fh)
            job = parse_job(data, taken)
        except (OSError, ValueError, JobError) as exc:
            unreal.log_error(f"multicam: bad job request {taken}: {exc}")
            return
        self.runner = Runner(job, session=True)
        self.runner.start()


SESSION: Session | None = None


def main(argv: list[str] | None = None) -> int:
    global RUNNER, SESSION
    inbox = os.environ.get(INBOX_ENV, "")
    if inbox and argv is None:
        SESSION = Session(inbox)
        SESSION.start()
        return 0
    # The launcher passes the job file in the environment; a path argument (for manual runs:
    # -ExecutePythonScript="render_job.py job.json") is used when the variable is absent.
    if argv is not None:
        path = argv[0] if argv else ""
    else:
        path = os.environ.get(JOB_ENV, "") or (sys.argv[1] if len(sys.argv) > 1 else "")
    if not path:
        unreal.log_error(f"multicam: no job file (pass it as argument or set {JOB_ENV})")
        return 2
    try:
        job = load_job(path)
    except (OSError, ValueError, JobError) as exc:
        unreal.log_error(f"multicam: cannot read job file {path}: {exc}")
        if os.environ.get("MULTICAM_UE_HARD_EXIT", "1") == "1":
            os._exit(2)
        return 2
    RUNNER = Runner(job)
    RUNNER.start()
    return 0


if __name__ == "__main__":
    main()
