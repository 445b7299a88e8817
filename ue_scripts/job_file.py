"""The Unreal job file: one definition, shared by the launcher and the editor script.

``render_jobs/unreal_backend.py`` builds a :class:`UeJob` from a RenderJob and writes :func:`job_to_dict` of it;
``ue_scripts/render_job.py`` (inside the editor) reads it back with :func:`parse_job`. The JSON keys are the field
names below, every field is required (no defaults that could disagree with the plan), and every number is already
what the engine wants (UE cm, rotators in degrees, frames at the job's fps).

Standard library only: the editor's Python has no numpy and none of the project's packages.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any


class JobError(RuntimeError):
    """A problem with the job or the project the user can act on (bad asset path, ...)."""


@dataclass
class CameraSpec:
    name: str
    focal_mm: float
    aperture: float
    sensor_width_mm: float
    sensor_height_mm: float
    #: per frame [x, y, z] in UE cm
    locations: list[list[float]]
    #: per frame [pitch, yaw, roll] in degrees (unwrapped: no jumps of 360 between frames)
    rotators: list[list[float]]


@dataclass
class UeJob:
    job_id: str
    #: the map's object path (``/Game/Maps/Town.Town``)
    map: str
    #: the character's skeletal mesh and animation; both "" for a job without a character (the install check)
    character_mesh: str
    animation: str
    #: animation frames at ``animation_fps`` to skip at render frame 0
    animation_start_frame: int
    animation_fps: float
    character_location_cm: list[float]
    character_yaw_deg: float
    #: the plan's focus point as the script replays it: tracking focus on the character, this high above it
    focus_height_cm: float
    frames: int
    fps: float
    width: int
    height: int
    spatial_samples: int
    warmup_frames: int
    depth_of_field: bool
    image_format: str
    interpolation: str
    content_folder: str
    frames_dir: str
    result_path: str
    cameras: list[CameraSpec]
    #: spheres (/Engine/BasicShapes/Sphere) at these world points, UE cm (the install check; [] for dataset jobs)
    markers_cm: list[list[float]]
    marker_radius_cm: float
    #: spawn one directional light (the install check renders in an empty map, which has none)
    add_light: bool
    #: Extra passes (the Blender backend's ``extra_passes``) as Movie Render Queue post-process material passes,
    #: written with the RGB frames into one multilayer EXR per frame (:func:`pass_frame_path`). The scene depth
    #: material's object path, "" for no depth pass (normally the engine's, :data:`ENGINE_DEPTH_MATERIAL`)
    depth_material: str
    #: the post-process material that outputs the custom stencil buffer, "" for no mask pass (a project asset:
    #: docs/unreal.md, "Depth and mask passes")
    mask_material: str
    #: the character's custom depth stencil value (what the mask material's output is compared with)
    mask_stencil_value: int


#: MoviePipelineDeferredPasses.cpp, ``UMoviePipelineDeferredPassBase::DefaultDepthAsset``: the engine's scene depth
#: post-process material (MovieRenderPipeline plugin content), offered (disabled) in every deferred pass.
ENGINE_DEPTH_MATERIAL = "/MovieRenderPipeline/Materials/MovieRenderQueue_WorldDepth.MovieRenderQueue_WorldDepth"
#: The main render pass' name (MoviePipelineDeferredPasses.cpp: ``PassIdentifier = FMoviePipelinePassIdentifier(
#: "FinalImage")``); Movie Render Queue's ``{render_pass}`` file name token resolves to it for the RGB frames.
FINAL_IMAGE_PASS = "FinalImage"


def has_passes(job: UeJob) -> bool:
    return bool(job.depth_material or job.mask_material)


def frame_file_format(job: UeJob, cam_name: str) -> str:
    """Movie Render Queue ``file_name_format`` of one camera (MRQ appends ``.{ext}``).

    Without passes: ``cam01/{frame_number}`` -> ``cam01/0000.png``. With passes MRQ writes several images per frame
    and the name must hold ``{render_pass}`` (MoviePipelineImageSequenceOutput.cpp: ValidateOutputFormatString adds
    it otherwise). The PNG output writes each pass to its own file, ``{render_pass}`` = the pass name; the multilayer
    EXR output writes every pass into one file with ``{render_pass}`` = "" (MoviePipelineEXROutput.cpp,
    ``FormatOverrides.Add("render_pass", "")``). ``cam01{render_pass}/{frame_number}`` therefore puts the RGB PNGs in
    ``cam01FinalImage/0000.png`` and the EXRs in ``cam01/0000.exr``."""
    if not has_passes(job):
        return f"{cam_name}/{{frame_number}}"
    return f"{cam_name}{{render_pass}}/{{frame_number}}"


def rgb_frame_path(job: UeJob, cam_name: str, frame: int) -> str:
    folder = f"{cam_name}{FINAL_IMAGE_PASS}" if has_passes(job) else cam_name
    return os.path.join(job.frames_dir, folder, f"{frame:04d}.{job.image_format}")


def pass_frame_path(job: UeJob, cam_name: str, frame: int) -> str:
    """The multilayer EXR holding the job's passes (and the RGB again) for one camera and frame."""
    return os.path.join(job.frames_dir, cam_name, f"{frame:04d}.exr")


def material_name(object_path: str) -> str:
    """``/Game/MultiCam/PP_Mask.PP_Mask`` -> ``PP_Mask`` (the name MRQ builds the pass name from)."""
    return object_path.rsplit("/", 1)[-1].split(".")[-1]


_SCALARS: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool}


def job_to_dict(job: UeJob) -> dict[str, Any]:
    """The JSON object of the job file (keys = the field names)."""
    return asdict(job)


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise JobError(f"{where}: missing field {key!r}")
    return d[key]


def _scalar(value: Any, type_name: str, where: str, key: str) -> Any:
    conv = _SCALARS[type_name]
    try:
        return conv(value)
    except (TypeError, ValueError):
        raise JobError(f"{where}: field {key!r} must be {type_name}, got {value!r}") from None


def parse_job(data: dict[str, Any], where: str = "job") -> UeJob:
    """Validate a job dict; errors name the field. Every field of :class:`UeJob` is required."""
    values: dict[str, Any] = {}
    for f in fields(UeJob):
        raw = _need(data, f.name, where)
        if f.name == "cameras":
            continue
        if f.name == "character_location_cm":
            values[f.name] = [float(v) for v in raw]
        elif f.name == "markers_cm":
            values[f.name] = [[float(v) for v in p] for p in raw]
            if any(len(p) != 3 for p in values[f.name]):
                raise JobError(f"{where}: field 'markers_cm' must hold [x, y, z] points")
        else:
            values[f.name] = _scalar(raw, str(f.type), where, f.name)
    frames = values["frames"]
    cams = []
    for i, c in enumerate(_need(data, "cameras", where)):
        cw = f"{where}: cameras[{i}]"
        cam: dict[str, Any] = {}
        for f in fields(CameraSpec):
            raw = _need(c, f.name, cw)
            if f.name in ("locations", "rotators"):
                cam[f.name] = [[float(v) for v in p] for p in raw]
            else:
                cam[f.name] = _scalar(raw, str(f.type), cw, f.name)
        if len(cam["locations"]) != frames or len(cam["rotators"]) != frames:
            raise JobError(f"{cw}: {len(cam['locations'])} locations / {len(cam['rotators'])} rotators, "
                           f"expected {frames}")
        cams.append(CameraSpec(**cam))
    if not cams:
        raise JobError(f"{where}: cameras must not be empty")
    values["image_format"] = values["image_format"].lower()
    if values["image_format"] not in ("png", "exr"):
        raise JobError(f"{where}: image_format must be png or exr, got {values['image_format']!r}")
    values["interpolation"] = values["interpolation"].lower()
    if values["interpolation"] not in ("linear", "constant"):
        raise JobError(f"{where}: interpolation must be linear or constant, got {values['interpolation']!r}")
    values["content_folder"] = values["content_folder"].rstrip("/")
    if bool(values["character_mesh"]) != bool(values["animation"]):
        raise JobError(f"{where}: character_mesh and animation must both be set or both be empty")
    if values["depth_of_field"] and not values["character_mesh"]:
        raise JobError(f"{where}: depth_of_field focuses on the character; a job without one must turn it off")
    if values["mask_material"] and not values["character_mesh"]:
        raise JobError(f"{where}: the mask pass masks the character; a job without one must not ask for it")
    if (values["depth_material"] or values["mask_material"]) and values["image_format"] != "png":
        raise JobError(f"{where}: depth/mask passes need image_format png (the passes come in EXR files)")
    if values["markers_cm"] and values["marker_radius_cm"] <= 0:
        raise JobError(f"{where}: marker_radius_cm must be > 0 when markers_cm is set")
    return UeJob(cameras=cams, **values)


def load_job(path: str) -> UeJob:
    with open(path, encoding="utf-8") as fh:
        return parse_job(json.load(fh), path)
