"""The ten validation trajectories of MultiCamVideo (``val/10basic_trajectories``, cam_type 1-10).

The camera starts level (pitch 0, roll 0) at ``(-distance, 0, SUBJECT_HEIGHT)`` looking along +X at a
subject centre ``(0, 0, SUBJECT_HEIGHT)`` (UE cm), and moves at constant speed over all frames:

==  =====================  ==================================================================
 1  pan right              yaw 0 -> +20 deg (positive yaw turns right)
 2  pan left               yaw 0 -> -20 deg
 3  tilt up                pitch 0 -> +10 deg
 4  tilt down              pitch 0 -> -10 deg
 5  zoom in                dolly forward 2 m along +X, orientation fixed
 6  zoom out               dolly back 2 m
 7  translate up           up 1 m, pitching down to keep the subject centred
 8  translate down         down 1 m, pitching up to keep the subject centred
 9  arc left               straight chord to the point 30 deg around the subject on the camera's
                           left (-Y), same distance, turning to face the subject
10  arc right              mirror of 9 (+Y)
==  =====================  ==================================================================
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from multicam.conventions import CM_PER_M, ue_location_pitch_yaw_to_matrix
from trajectory.speed import progress

PRESET_NAMES: tuple[str, ...] = (
    "pan_right", "pan_left", "tilt_up", "tilt_down", "zoom_in",
    "zoom_out", "translate_up", "translate_down", "arc_left", "arc_right",
)
SUBJECT_HEIGHT_CM = 100.0
PAN_DEG = 20.0
TILT_DEG = 10.0
DOLLY_M = 2.0
LIFT_M = 1.0
ARC_DEG = 30.0


def preset_poses(distance_m: float = 4.0, frames: int = 81) -> NDArray[np.float64]:
    """Poses ``(10, F, 4, 4)`` (UE row-vector, cm) for cam_type 1..10."""
    if not distance_m > 0:
        raise ValueError(f"distance_m must be > 0, got {distance_m}")
    if DOLLY_M >= distance_m:
        raise ValueError(f"distance_m must exceed the {DOLLY_M} m dolly of cam_type 5, got {distance_m}")
    s = progress(frames)  # constant speed
    d = distance_m * CM_PER_M
    subject = np.array([0.0, 0.0, SUBJECT_HEIGHT_CM])
    start = np.array([-d, 0.0, SUBJECT_HEIGHT_CM])
    loc = np.broadcast_to(start, (10, frames, 3)).copy()
    pitch = np.zeros((10, frames))
    yaw = np.zeros((10, frames))

    yaw[0] = PAN_DEG * s
    yaw[1] = -PAN_DEG * s
    pitch[2] = TILT_DEG * s
    pitch[3] = -TILT_DEG * s
    loc[4, :, 0] += DOLLY_M * CM_PER_M * s
    loc[5, :, 0] -= DOLLY_M * CM_PER_M * s
    loc[6, :, 2] += LIFT_M * CM_PER_M * s
    loc[7, :, 2] -= LIFT_M * CM_PER_M * s
    for k, side in ((8, -1.0), (9, 1.0)):  # left is the camera's -Y
        a = np.radians(ARC_DEG)
        end = subject + np.array([-d * np.cos(a), side * d * np.sin(a), 0.0])
        loc[k] = start + (end - start) * s[:, None]
    for k in (6, 7, 8, 9):  # keep the subject centred
        rel = subject - loc[k]
        yaw[k] = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
        pitch[k] = np.degrees(np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1])))
    return ue_location_pitch_yaw_to_matrix(loc, pitch, yaw)


def preset_track(cam_type: int, distance_m: float = 4.0, frames: int = 81) -> NDArray[np.float64]:
    """Poses ``(F, 4, 4)`` of one preset, ``cam_type`` in 1..10."""
    if not 1 <= cam_type <= 10:
        raise ValueError(f"cam_type must be in 1..10, got {cam_type}")
    return preset_poses(distance_m, frames)[cam_type - 1]
