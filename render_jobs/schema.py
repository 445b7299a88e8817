"""RenderJob: everything a renderer backend needs to render one scene, as plain typed data.

A backend replays a RenderJob; it decides nothing. One job = one scene: one environment, one
character with one animation, and N cameras (10 in MultiCamVideo) rendered over the same
animation time line, so the videos are synchronised by construction.

Poses are UE row-vector matrices (see :mod:`multicam.conventions`) in UE world centimetres, one
per frame per camera, exactly what ``cameras/camera_extrinsics.json`` will hold.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator, model_validator

from multicam.conventions import CAMERA_SETS, SENSOR_HEIGHT_MM, SENSOR_WIDTH_MM, camera_set_folder

SCHEMA_VERSION: Literal[1] = 1
MANIFEST_VERSION: Literal[1] = 1
_U64 = 2**64


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class AssetRef(_Model):
    """An asset by catalog id and engine-specific reference (UE object path, .blend/.glb path,
    or ``builtin:<name>`` for the procedural demo assets of the Blender backend)."""

    id: str
    asset: str


class EnvironmentRef(AssetRef):
    tags: list[str] = Field(default_factory=list)


class CharacterRef(AssetRef):
    height_m: float = Field(1.8, gt=0, allow_inf_nan=False)
    skeleton: str = "mannequin"


class AnimationRef(AssetRef):
    skeleton: str = "mannequin"
    fps: float = Field(15.0, gt=0, allow_inf_nan=False)
    length_frames: int = Field(81, ge=1)
    loopable: bool = True
    #: First animation frame (at the animation's fps) shown at render frame 0.
    start_frame: int = Field(0, ge=0)


class Placement(_Model):
    """Character placement: ground point in UE cm and yaw in degrees (UE rotator yaw)."""

    location_cm: tuple[FiniteFloat, FiniteFloat, FiniteFloat]
    yaw_deg: FiniteFloat = 0.0


class CameraTrack(_Model):
    name: str = Field(pattern=r"^cam\d{2,}$")
    focal_mm: float = Field(gt=0)
    aperture: float = Field(gt=0)
    sensor_width_mm: float = SENSOR_WIDTH_MM
    sensor_height_mm: float = SENSOR_HEIGHT_MM
    #: (frames, 4, 4) UE row-vector matrices, cm.
    poses_ue: list[list[list[float]]]
    #: (frames, 3) the world point (UE cm) this camera aims and focuses at, per frame: the planner's choice
    #: (the character's aim point), replayed by every backend.
    focus_points_cm: list[list[float]]
    #: The sampler's record for this camera (trajectory type, drawn parameters, speed profile).
    trajectory: dict[str, object] = Field(default_factory=dict)

    @field_validator("poses_ue")
    @classmethod
    def _check_poses(cls, v: list[list[list[float]]]) -> list[list[list[float]]]:
        a = np.asarray(v, dtype=np.float64)
        if a.ndim != 3 or a.shape[1:] != (4, 4):
            raise ValueError(f"poses_ue must be (frames, 4, 4), got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("poses_ue contains non-finite values")
        return v

    @field_validator("focus_points_cm")
    @classmethod
    def _check_focus(cls, v: list[list[float]]) -> list[list[float]]:
        a = np.asarray(v, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3 or not np.all(np.isfinite(a)):
            raise ValueError(f"focus_points_cm must be finite (frames, 3), got shape {a.shape}")
        return v

    def poses_array(self) -> NDArray[np.float64]:
        return np.asarray(self.poses_ue, dtype=np.float64)

    def focus_array_cm(self) -> NDArray[np.float64]:
        return np.asarray(self.focus_points_cm, dtype=np.float64)


class RenderSettings(_Model):
    width: int = Field(1280, ge=16, le=8192)
    height: int = Field(1280, ge=16, le=8192)
    frames: int = Field(81, ge=2)
    fps: float = Field(15.0, gt=0, le=240, allow_inf_nan=False)
    #: Path-tracing samples (Blender Cycles) or spatial anti-aliasing samples (UE MRQ).
    samples: int = Field(64, ge=1)
    #: Temporal samples / warm-up frames before frame 0 (UE MRQ; Blender ignores).
    warmup_frames: int = Field(8, ge=0)
    denoise: bool = True
    #: OpenImageDenoise's quality mode (Blender; UE ignores): ``fast`` costs about half of ``high`` per frame.
    denoise_quality: Literal["high", "balanced", "fast"] = "high"
    depth_of_field: bool = True
    #: ``auto`` picks OPTIX/CUDA/HIP/METAL when present, else CPU.
    device: str = "auto"
    #: Optional extra outputs: ``depth`` (metres, 16-bit PNG in mm per camera) and ``mask``.
    extra_passes: list[Literal["depth", "mask"]] = Field(default_factory=list)
    keep_frames: bool = False
    video_crf: int = Field(18, ge=0, le=51)

    @field_validator("width", "height")
    @classmethod
    def _even_for_yuv420p(cls, v: int) -> int:
        # H.264 in yuv420p (what ReCamMaster's loaders and browsers read) halves the chroma planes.
        if v % 2:
            raise ValueError(f"must be even (H.264 yuv420p video), got {v}")
        return v


class RenderJob(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    scene_index: int = Field(ge=1)
    seed: int
    environment: EnvironmentRef
    character: CharacterRef
    animation: AnimationRef
    placement: Placement
    cameras: list[CameraTrack] = Field(min_length=1)
    #: Seed of the environment's procedural prop layout (drawn by the planner; backends draw no numbers).
    layout_seed: int = Field(ge=0, lt=_U64)
    settings: RenderSettings = Field(default_factory=RenderSettings)
    #: Output folder relative to the dataset root, e.g. ``train/f18_aperture10/scene1``.
    output_dir: str
    #: The whole scene record (what ``scene.json`` holds), as sampled.
    scene: dict[str, object] = Field(default_factory=dict)
    #: Set when this job renders only ``cameras`` (new ones, ``multicam extend``) into a scene first rendered with
    #: other cameras: the scene's planned cameras, which its setup was built around (Blender keeps its props clear
    #: of their paths), so that the setup is the first render's exactly. Empty: the setup is built from ``cameras``.
    setup_cameras: list[CameraTrack] = Field(default_factory=list)

    def setup_tracks(self) -> list[CameraTrack]:
        """The cameras the scene's setup is built from (see :attr:`setup_cameras`)."""
        return self.setup_cameras or self.cameras

    @model_validator(mode="after")
    def _check(self) -> RenderJob:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate camera names: {names}")
        for c in [*self.cameras, *self.setup_cameras]:
            if len(c.poses_ue) != self.settings.frames or len(c.focus_points_cm) != self.settings.frames:
                raise ValueError(
                    f"camera {c.name} has {len(c.poses_ue)} poses and {len(c.focus_points_cm)} focus points, "
                    f"settings.frames is {self.settings.frames}"
                )
        return self

    def poses_array(self) -> NDArray[np.float64]:
        """All poses, frame-major ``(F, C, 4, 4)``, as the camera file stores them."""
        return np.stack([c.poses_array() for c in self.cameras], axis=1)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_file(cls, path: str | Path) -> RenderJob:
        return cls.model_validate(json.loads(Path(path).read_text()))


# ------------------------------------------------------------------------------------------------
# The plan's manifest: one typed, versioned entry per job (plan/manifest.jsonl, one JSON per line)
# ------------------------------------------------------------------------------------------------


def split_validation_error(err: dict[str, Any]) -> tuple[str, str]:
    """A pydantic error of a manifest entry -> (dotted field name, message). Cross-field checks of the models
    here start their message with ``<field>:`` so that the field is named even where pydantic's ``loc`` stops at
    the model."""
    loc = [str(p) for p in err.get("loc", ()) or ()]
    msg = str(err.get("msg", ""))
    body = msg.removeprefix("Value error, ")
    head, sep, rest = body.partition(": ")
    if sep and head.isidentifier():
        return ".".join([*loc, head]), rest
    return ".".join(loc) or "(entry)", msg


class ManifestEnvironment(EnvironmentRef):
    #: Index of the catalog anchor (character spot) and its stable id.
    anchor: int = Field(ge=0)
    anchor_id: str


#: The trajectory sampler's camera profiles (``trajectory/sampler.py``; docs/trajectories.md).
CameraProfile = Literal["released", "independent"]


class SamplerArgs(_Model):
    """The scene-level draws the planner made once (radius, camera set) and what the sampler needs besides."""

    allowed_radii_m: list[float] = Field(min_length=1)
    camera_set: int = Field(ge=0, lt=len(CAMERA_SETS))
    radius_m: float = Field(gt=0, allow_inf_nan=False)
    focal_mm: float = Field(gt=0, allow_inf_nan=False)
    aperture: float = Field(gt=0, allow_inf_nan=False)
    #: The plan's camera profile. The planner always writes it; a manifest without it predates profiles, when
    #: every camera drew its own start (``independent``).
    camera_profile: CameraProfile = "independent"
    #: The character's aim point above its ground point (m): the catalog's ``aim_height_m`` or the default
    #: fraction of its height (``multicam.conventions.default_aim_height_m``); None: that default.
    aim_height_m: float | None = Field(None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> SamplerArgs:
        if self.radius_m not in self.allowed_radii_m:
            raise ValueError(f"radius_m: {self.radius_m} is not one of allowed_radii_m {self.allowed_radii_m}")
        want = CAMERA_SETS[self.camera_set]
        if (self.focal_mm, self.aperture) != want:
            raise ValueError(f"camera_set: {self.camera_set} is {want[0]:g} mm f/{want[1]:g}, but focal_mm/aperture "
                             f"say {self.focal_mm:g} mm f/{self.aperture:g}")
        return self


class ManifestEntry(_Model):
    """One line of ``plan/manifest.jsonl``: every choice of one scene except the poses, which
    :func:`render_jobs.planner.materialize` derives from it (a pure function of the entry and the plan)."""

    manifest_version: Literal[1] = MANIFEST_VERSION
    job_id: str = Field(pattern=r"^s\d{6,}$")
    scene_index: int = Field(ge=1)
    seed: int = Field(ge=0, lt=_U64)
    #: Relative to the dataset root: ``train/f{focal}_aperture{a}/scene{k}``.
    output_dir: str = Field(pattern=r"^train/f[0-9.]+_aperture[0-9.]+/scene[1-9]\d*$")
    environment: ManifestEnvironment
    character: CharacterRef
    animation: AnimationRef
    placement: Placement
    sampler: SamplerArgs
    layout_seed: int = Field(ge=0, lt=_U64)
    #: Catalog descriptions (environment, character, animation) the scene's caption is composed from; None when
    #: the catalog has none. Caption text only: it changes no pixel.
    descriptions: dict[Literal["environment", "character", "animation"], str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ManifestEntry:
        if self.job_id != f"s{self.scene_index:06d}":
            raise ValueError(f"job_id: {self.job_id!r} does not belong to scene_index {self.scene_index} "
                             f"(expected s{self.scene_index:06d})")
        folder = camera_set_folder(self.sampler.focal_mm, self.sampler.aperture)
        if self.output_dir.split("/")[1] != folder:
            raise ValueError(f"output_dir: {self.output_dir!r} is not in the camera set's folder train/{folder}")
        return self

    def canonical_json(self) -> str:
        """The entry as one compact JSON line with sorted keys: what the content hash covers."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def content_sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def changed_fields(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two JSON-like values (``sampler.camera_set``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += changed_fields(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "(entry)"]


# ------------------------------------------------------------------------------------------------
# Extension jobs: new cameras for a rendered scene (``multicam extend``), kept in the job store
# ------------------------------------------------------------------------------------------------

EXTENSION_VERSION: Literal[1] = 1


class Obstacle(_Model):
    """A prop of a rendered scene that cameras keep clear of (``scene.json``'s ``environment_build.obstacles``, as
    the Blender environments record them): a vertical column at ``xy_cm`` (UE world, cm) of radius ``radius_m``;
    a camera keeps ``trajectory.clearance.PROP_CAMERA_GAP_M`` (1.2 m) horizontally from its footprint."""

    xy_cm: list[float] = Field(min_length=2, max_length=2)
    radius_m: float = Field(ge=0)


class ExtensionEntry(_Model):
    """One extension job: add ``cameras`` to the complete scene of plan entry ``entry``.

    Everything of the scene comes from the plan's entry (never re-guessed); the new cameras' poses come from
    :func:`render_jobs.planner.extension_tracks` of this entry: sampled with ``seed`` (the dataset seed unless
    ``multicam extend --seed``), or a preset / sampler type (``trajectory``), or the given track (``poses_ue``,
    from ``--trajectory-file``, stored here so that a resumed job does not depend on the file); each keeps clear
    of the body and of ``obstacles`` (a draw that does not is drawn again)."""

    extension_version: Literal[1] = EXTENSION_VERSION
    job_id: str = Field(pattern=r"^x\d{6,}-[0-9a-f]{10}$")
    entry: ManifestEntry
    #: The backend that rendered the scene (``scene.json``'s ``backend``): it renders the new cameras too.
    backend: str
    #: The scene's cameras before this extension (``scene.json``'s, in order) and the ones this job adds.
    base_cameras: list[str] = Field(min_length=1)
    cameras: list[str] = Field(min_length=1)
    seed: int = Field(ge=0, lt=_U64)
    trajectory: str | None = None
    #: ``--trajectory-file FILE --cam camNN``: where the track came from, and the track itself ((F, 4, 4) UE cm).
    source: str | None = None
    poses_ue: list[list[list[float]]] | None = None
    #: The scene's props (from its ``scene.json``): the new cameras keep clear of them, as the planned ones do.
    obstacles: list[Obstacle] = Field(default_factory=list)
    #: The horizontal radius (m) around the placement that the scene keeps free of tall things (``scene.json``'s
    #: ``environment_build.clear_radius_m``; None: not recorded): the new cameras stay inside it.
    clear_radius_m: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> ExtensionEntry:
        for n in self.cameras:
            if not re.fullmatch(r"cam\d{2,}", n):
                raise ValueError(f"cameras: {n!r} is not a camera name (camNN)")
        clash = sorted(set(self.cameras) & set(self.base_cameras))
        if clash:
            raise ValueError(f"cameras: {clash} are cameras the scene already has")
        if not self.job_id.startswith(f"x{self.entry.scene_index:06d}-"):
            raise ValueError(f"job_id: {self.job_id!r} does not belong to scene {self.entry.scene_index}")
        if self.poses_ue is not None and len(self.cameras) != 1:
            raise ValueError("poses_ue: a given track makes exactly one camera")
        return self

    @property
    def scene_index(self) -> int:
        return self.entry.scene_index

    @property
    def output_dir(self) -> str:
        return self.entry.output_dir

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def content_sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def extension_job_id(scene_index: int, request: dict[str, Any]) -> str:
    """The job id of an extension request (the scene, its cameras before, the new names, seed, trajectory):
    the same request gives the same id, so a killed run's job is found again."""
    key = hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"x{scene_index:06d}-{key[:10]}"
