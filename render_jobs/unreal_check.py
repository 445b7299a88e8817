"""``multicam unreal check``: render a tiny job with marker spheres in a real Unreal editor and check that every
marker's pixel centroid lands where the exported camera JSON projects it.

This is the first thing to run on a new Unreal install (docs/unreal.md). It goes through the same path as a
dataset job: the job file of ue_scripts/job_file.py, the editor script ue_scripts/render_job.py, the editor
launch of :class:`render_jobs.unreal_backend.UnrealBackend`, the poses the sequences actually evaluated written
as ``camera_extrinsics.json`` and read back by the dataset reader, and the projection of
:func:`multicam.conventions.project_points_ue` with the intrinsics of :func:`multicam.conventions.intrinsics_matrix`.
A wrong rotator convention, a frame offset between the sequence and the render queue, a lens the engine clamped
or an overscan left on each move the markers away from their projections, by far more than the tolerance.

The check job is fixed data (no random numbers): markers at known world points in the engine's empty map, lit by
one directional light, and cameras that move and turn between frames so that a one-frame offset shows.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, read_camera_json, write_camera_json
from multicam.conventions import (
    SENSOR_HEIGHT_MM,
    SENSOR_WIDTH_MM,
    intrinsics_matrix,
    project_points_ue,
    ue_location_rotator_to_matrix,
    ue_look_at_rotator,
)
from render_jobs.backend import RenderError
from render_jobs.unreal_backend import (
    UnrealBackend,
    asset_safe,
    camera_locations_rotators,
    evaluated_poses,
    frame_files,
    read_rgb_frame,
)
from ue_scripts.job_file import CameraSpec, UeJob, job_to_dict, rgb_frame_path

#: The engine's empty map (Engine/Content/Maps/Entry.umap), present in every install.
EMPTY_MAP = "/Engine/Maps/Entry"
#: Marker centres, UE world cm: spread in depth and height so that every camera sees them apart.
MARKERS_CM: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 100.0), (60.0, -90.0, 150.0), (-70.0, 70.0, 50.0))
MARKER_RADIUS_CM = 12.0
#: Pixel threshold (of 255) above the empty map's black background that counts as marker.
MARKER_THRESHOLD = 24


@dataclass(frozen=True)
class CheckSpec:
    """The check job: ``cameras`` cameras x ``frames`` frames at ``size_px`` square, with the given lens."""

    cameras: int = 2
    frames: int = 8
    size_px: int = 128
    fps: float = 15.0
    focal_mm: float = 35.0
    aperture: float = 10.0
    distance_cm: float = 600.0
    #: allowed distance between a marker's centroid and its projection, as a fraction of the width
    tolerance: float = 0.005
    map: str = EMPTY_MAP

    def __post_init__(self) -> None:
        if not 1 <= self.cameras <= 10:
            raise ValueError(f"cameras must be in [1, 10], got {self.cameras}")
        if not 2 <= self.frames <= 300:
            raise ValueError(f"frames must be in [2, 300], got {self.frames}")
        if not 64 <= self.size_px <= 4096:
            raise ValueError(f"size_px must be in [64, 4096], got {self.size_px}")


def marker_target_cm() -> NDArray[np.float64]:
    return np.asarray(MARKERS_CM, dtype=np.float64).mean(axis=0)


def check_camera_poses(spec: CheckSpec) -> NDArray[np.float64]:
    """UE poses ``(C, F, 4, 4)``: camera c starts at azimuth (35 + 110 c) mod 270 deg, 600 cm from the markers' centre,
    and moves sideways by a quarter of its distance over the clip while it turns to keep the centre in view."""
    target = marker_target_cm()
    t = np.linspace(0.0, 1.0, spec.frames)
    out = []
    for c in range(spec.cameras):
        # from azimuths in [270, 360) deg the three markers line up nearly behind one another: stay out of them
        az = np.radians((35.0 + 110.0 * c) % 270.0)
        radial = np.array([np.cos(az), np.sin(az), 0.0])
        side = np.array([-np.sin(az), np.cos(az), 0.0])
        eye = target + spec.distance_cm * radial + np.array([0.0, 0.0, 120.0]) \
            + (t[:, None] - 0.5) * 0.25 * spec.distance_cm * side
        # aim a little off the centre and let the aim drift, so that the camera turns as well as moves
        aim = target + (t[:, None] - 0.5) * np.array([0.0, 0.0, 40.0])
        out.append(ue_location_rotator_to_matrix(eye, ue_look_at_rotator(eye, aim)))
    return np.stack(out)


def check_job(spec: CheckSpec, work_dir: Path, job_id: str = "multicam_check") -> UeJob:
    """The job file of the check (the same definition a dataset job uses)."""
    cams = []
    for c, poses in enumerate(check_camera_poses(spec)):
        loc, rot = camera_locations_rotators(poses)
        cams.append(CameraSpec(name=f"cam{c + 1:02d}", focal_mm=spec.focal_mm, aperture=spec.aperture,
                               sensor_width_mm=SENSOR_WIDTH_MM, sensor_height_mm=SENSOR_HEIGHT_MM,
                               locations=loc.tolist(), rotators=rot.tolist()))
    return UeJob(
        job_id=job_id, map=spec.map, character_mesh="", animation="", animation_start_frame=0,
        animation_fps=spec.fps, character_location_cm=[0.0, 0.0, 0.0], character_yaw_deg=0.0, focus_height_cm=0.0,
        frames=spec.frames, fps=spec.fps, width=spec.size_px, height=spec.size_px, spatial_samples=4,
        warmup_frames=0, depth_of_field=False, image_format="png", interpolation="linear",
        content_folder=f"/Game/MultiCamTemp/{asset_safe(job_id)}", frames_dir=str(work_dir / "frames"),
        result_path=str(work_dir / "result.json"), cameras=cams,
        markers_cm=[list(p) for p in MARKERS_CM], marker_radius_cm=MARKER_RADIUS_CM, add_light=True,
        depth_material="", mask_material="", mask_stencil_value=1,
    )


def marker_centroids(image: NDArray[np.uint8], threshold: int = MARKER_THRESHOLD) -> NDArray[np.float64]:
    """Centroids ``(N, 2)`` of the bright blobs of an RGB frame, in the continuous pixel convention of
    :func:`multicam.conventions.intrinsics_matrix` (pixel i covers [i, i + 1))."""
    import cv2

    mask = (image.max(axis=2) > threshold).astype(np.uint8)
    n, _, stats, cent = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 3]
    return np.asarray(cent[keep], dtype=np.float64).reshape(-1, 2) + 0.5


@dataclass
class CameraResult:
    name: str
    #: per frame and marker: pixel distance centroid - projection (nan where the marker was not found)
    errors_px: NDArray[np.float64]
    #: blobs found that no marker explains, per frame
    extra_blobs: list[int]

    @property
    def max_error_px(self) -> float:
        return float(np.nanmax(self.errors_px)) if np.isfinite(self.errors_px).any() else float("nan")

    @property
    def missing(self) -> int:
        return int(np.isnan(self.errors_px).sum())


@dataclass
class CheckReport:
    spec: CheckSpec
    cameras: list[CameraResult] = field(default_factory=list)
    engine_version: str | None = None

    @property
    def tolerance_px(self) -> float:
        return self.spec.tolerance * self.spec.size_px

    @property
    def ok(self) -> bool:
        return bool(self.cameras) and all(c.missing == 0 and not any(c.extra_blobs)
                                          and c.max_error_px <= self.tolerance_px for c in self.cameras)

    def lines(self) -> list[str]:
        s = self.spec
        out = [f"Unreal install check: {len(self.cameras)} cameras x {s.frames} frames at {s.size_px} px, "
               f"{len(MARKERS_CM)} marker spheres, tolerance {self.tolerance_px:.2f} px "
               f"({100 * s.tolerance:g} % of the width); engine {self.engine_version or '?'}"]
        for c in self.cameras:
            worst = int(np.nanargmax(np.nanmax(c.errors_px, axis=1))) if np.isfinite(c.errors_px).any() else -1
            verdict = "ok" if c.missing == 0 and not any(c.extra_blobs) and c.max_error_px <= self.tolerance_px \
                else "FAIL"
            out.append(f"  {c.name}: max error {c.max_error_px:.3f} px (frame {worst}), markers missing {c.missing}, "
                       f"unexplained blobs {sum(c.extra_blobs)}: {verdict}")
        out.append("PASS: the exported cameras match what Unreal rendered" if self.ok else
                   "FAIL: what Unreal rendered does not match the exported cameras (see docs/unreal.md)")
        return out


def compare_markers(poses_ue: NDArray[np.float64], frames: list[list[NDArray[np.uint8]]], names: list[str],
                    spec: CheckSpec) -> list[CameraResult]:
    """Match each frame's blobs to the markers' projections through ``poses_ue`` ``(F, C, 4, 4)``."""
    k = intrinsics_matrix(spec.focal_mm, spec.size_px, spec.size_px)
    uv, depth = project_points_ue(np.asarray(MARKERS_CM), poses_ue, k)  # (F, C, M, 2), (F, C, M)
    out = []
    for c, name in enumerate(names):
        errs = np.full((spec.frames, len(MARKERS_CM)), np.nan)
        extra = []
        for f in range(spec.frames):
            blobs = marker_centroids(frames[c][f])
            d = np.linalg.norm(blobs[:, None, :] - uv[f, c][None, :, :], axis=2)  # (B, M)
            used = set()
            for m in range(len(MARKERS_CM)):
                if depth[f, c, m] <= 0 or d.shape[0] == 0:
                    continue
                b = int(np.argmin(d[:, m]))
                # a blob belongs to its nearest marker only; markers sit far apart in every view (a test checks)
                if int(np.argmin(d[b])) == m:
                    errs[f, m] = d[b, m]
                    used.add(b)
            extra.append(d.shape[0] - len(used))
        out.append(CameraResult(name, errs, extra))
    return out


def run_check(backend: UnrealBackend, spec: CheckSpec, keep_dir: Path | None = None) -> CheckReport:
    """Render the check job with ``backend``'s editor and compare; ``keep_dir`` keeps the frames and the camera
    JSON (otherwise a temporary folder is removed)."""
    backend.check_install()
    work = Path(tempfile.mkdtemp(prefix="multicam-ue-check-")) if keep_dir is None else Path(keep_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        job = check_job(spec, work)
        result: dict[str, Any] = backend.run_job_file(job_to_dict(job), work)
        names = [c.name for c in job.cameras]
        poses = evaluated_poses(result, names, spec.frames)
        write_camera_json(work / CAMERA_FILE, poses, names)
        exported, read_names = read_camera_json(work / CAMERA_FILE)  # what a dataset user reads
        if read_names != names:
            raise RenderError(f"{work / CAMERA_FILE}: cameras {read_names}, expected {names}")
        size = spec.size_px
        frames = [[read_rgb_frame(p, size, size)
                   for p in frame_files([Path(rgb_frame_path(job, n, f)) for f in range(spec.frames)], n)]
                  for n in names]
        return CheckReport(spec, compare_markers(exported, frames, names, spec), result.get("engine_version"))
    finally:
        if keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)

