"""RenderJob: everything a renderer backend needs to render one scene, as plain typed data.

A backend replays a RenderJob; it decides nothing. One job = one scene: one environment, one
character with one animation, and N cameras (10 in MultiCamVideo) rendered over the same
animation time line, so the videos are synchronised by construction.

Poses are UE row-vector matrices (see :mod:`multicam.conventions`) in UE world centimetres, one
per frame per camera, exactly what ``cameras/camera_extrinsics.json`` will hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1


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
    height_m: float = Field(1.8, gt=0)
    skeleton: str = "mannequin"


class AnimationRef(AssetRef):
    skeleton: str = "mannequin"
    fps: float = Field(15.0, gt=0)
    length_frames: int = Field(81, ge=1)
    loopable: bool = True
    #: First animation frame (at the animation's fps) shown at render frame 0.
    start_frame: int = Field(0, ge=0)


class Placement(_Model):
    """Character placement: ground point in UE cm and yaw in degrees (UE rotator yaw)."""

    location_cm: tuple[float, float, float]
    yaw_deg: float = 0.0


class CameraTrack(_Model):
    name: str = Field(pattern=r"^cam\d{2,}$")
    focal_mm: float = Field(gt=0)
    aperture: float = Field(gt=0)
    sensor_width_mm: float = 23.76
    sensor_height_mm: float = 23.76
    #: (frames, 4, 4) UE row-vector matrices, cm.
    poses_ue: list[list[list[float]]]
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

    def poses_array(self) -> NDArray[np.float64]:
        return np.asarray(self.poses_ue, dtype=np.float64)


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
    settings: RenderSettings = Field(default_factory=RenderSettings)
    #: Output folder relative to the dataset root, e.g. ``train/f18_aperture10/scene1``.
    output_dir: str
    #: The whole scene record (what ``scene.json`` holds), as sampled.
    scene: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RenderJob:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate camera names: {names}")
        for c in self.cameras:
            if len(c.poses_ue) != self.settings.frames:
                raise ValueError(
                    f"camera {c.name} has {len(c.poses_ue)} poses, settings.frames is {self.settings.frames}"
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
