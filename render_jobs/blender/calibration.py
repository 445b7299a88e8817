"""Built-in calibration assets for the acceptance tests (plain data, no ``bpy``).

``builtin:calibration`` (environment)
    A black world with no ground and small emissive spheres at :data:`MARKERS_CM` (UE world cm,
    relative to the character placement). Cameras of the sampler aim at ~1 m above the placement,
    so the markers surround that point.
``builtin:beacon`` (character) + ``builtin:orbit`` (animation)
    One emissive sphere that moves along :func:`beacon_path_cm`, a known path, so that every camera
    can be checked to show the same time instant in the same frame.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from render_jobs.schema import RenderJob

#: Marker centres in UE cm relative to the placement (a 3D spread around the aim point, z up).
MARKERS_CM: NDArray[np.float64] = np.array([
    [0.0, 0.0, 100.0],
    [60.0, 0.0, 100.0],
    [0.0, 60.0, 140.0],
    [-60.0, 0.0, 60.0],
    [0.0, -60.0, 80.0],
    [40.0, 40.0, 30.0],
    [-40.0, 40.0, 170.0],
    [-40.0, -40.0, 130.0],
    [40.0, -40.0, 160.0],
])

#: Marker colours (linear RGB, emissive), distinct so that detection can tell them apart.
MARKER_COLOURS: NDArray[np.float64] = np.array([
    [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0.5, 0], [0.5, 0, 1],
], dtype=np.float64)

MARKER_RADIUS_CM = 2.5
BEACON_RADIUS_CM = 6.0


def beacon_path_cm(t_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Beacon centre (UE cm, relative to the placement, before the placement yaw) at times ``t_s``.

    A Lissajous loop around the aim point: fast enough that a one-frame offset moves it by
    several pixels in every camera.
    """
    t = np.asarray(t_s, dtype=np.float64)
    return np.stack([40.0 * np.sin(2 * np.pi * 0.71 * t), 40.0 * np.sin(2 * np.pi * 0.93 * t + 0.4),
                     100.0 + 25.0 * np.sin(2 * np.pi * 0.57 * t)], axis=-1)


def job_from_poses(poses_ue: NDArray[np.float64], *, focal_mm: float | list[float] = 24.0, aperture: float = 5.0,
                   environment: str = "builtin:calibration", character: str = "builtin:beacon",
                   animation: str = "builtin:orbit", location_cm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                   yaw_deg: float = 0.0, height_m: float = 1.8, seed: int = 0, scene_index: int = 1,
                   layout_seed: int = 0,
                   **settings: object) -> RenderJob:
    """A RenderJob from camera poses ``(C, F, 4, 4)`` (UE cm) for tests and benchmarks.

    ``focal_mm`` may be one value or one per camera; ``settings`` are :class:`RenderSettings` fields.
    """
    from exporters.camera_json import cam_name
    from render_jobs.schema import (
        AnimationRef,
        CameraTrack,
        CharacterRef,
        EnvironmentRef,
        Placement,
        RenderSettings,
    )

    poses = np.asarray(poses_ue, dtype=np.float64)
    n_cams, n_frames = poses.shape[:2]
    focals = [float(f) for f in np.broadcast_to(np.asarray(focal_mm, dtype=np.float64), (n_cams,))]
    from multicam.conventions import CM_PER_M, default_aim_height_m

    aim = [float(location_cm[0]), float(location_cm[1]),
           float(location_cm[2]) + float(default_aim_height_m(height_m)) * CM_PER_M]
    tracks = [CameraTrack(name=cam_name(i), focal_mm=focals[i], aperture=aperture, poses_ue=poses[i].tolist(),
                          focus_points_cm=[list(aim) for _ in range(n_frames)])
              for i in range(n_cams)]
    st = RenderSettings.model_validate({**settings, "frames": n_frames})
    return RenderJob(job_id=f"scene{scene_index}", scene_index=scene_index, seed=seed,
                     environment=EnvironmentRef(id=environment.split(":")[-1], asset=environment),
                     character=CharacterRef(id="character", asset=character, height_m=height_m),
                     animation=AnimationRef(id="animation", asset=animation, fps=st.fps),
                     placement=Placement(location_cm=location_cm, yaw_deg=yaw_deg), cameras=tracks, settings=st,
                     layout_seed=layout_seed,
                     output_dir=f"train/test/scene{scene_index}",
                     scene={"scene_index": scene_index, "seed": seed})
