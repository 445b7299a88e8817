"""ReCamMaster's camera conditioning: one 12-number relative pose per latent frame.

The convention (ReCamMaster's public data loader, stated in issue 6):

* take frames ``0, stride, 2*stride, ... < num_frames`` of the camera file (21 frames for 81/4);
* convert each UE row-vector matrix with :func:`multicam.conventions.ue_to_recammaster_c2w`
  (transpose, columns (right, -up, forward), translation / 100, world left in UE axes);
* the embedding of frame ``k`` is the first 3 rows of ``inv(c2w_cond[frame 0]) @ c2w_tgt[frame k]``,
  flattened row-major to 12 numbers.

At inference the reference is the target trajectory's own frame 0 (``cond == tgt``).
No frame math lives here: it is all in :mod:`multicam.conventions`.
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import ArrayLike, NDArray

from exporters.camera_json import CameraFileError, read_camera_json
from multicam.conventions import invert_rigid, ue_to_recammaster_c2w

NUM_CAMERA_TYPES = 10


def latent_frame_indices(num_frames: int = 81, stride: int = 4) -> NDArray[np.int64]:
    """Video frames that carry a latent frame's camera: ``0, stride, ... < num_frames``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return np.arange(0, num_frames, stride, dtype=np.int64)


def relative_pose_embedding_from_poses(
    cond_poses_ue: ArrayLike,
    tgt_poses_ue: ArrayLike,
    num_frames: int = 81,
    stride: int = 4,
) -> NDArray[np.float32]:
    """Embedding ``(ceil(num_frames / stride), 12)`` from UE poses ``(F, 4, 4)`` of two cameras."""
    cond = np.asarray(cond_poses_ue, dtype=np.float64)
    tgt = np.asarray(tgt_poses_ue, dtype=np.float64)
    for name, p in (("cond", cond), ("tgt", tgt)):
        if p.ndim != 3 or p.shape[1:] != (4, 4):
            raise ValueError(f"{name} poses must have shape (frames, 4, 4), got {p.shape}")
        if p.shape[0] < num_frames:
            raise ValueError(f"{name} poses have {p.shape[0]} frames, need num_frames={num_frames}")
    idx = latent_frame_indices(num_frames, stride)
    ref_w2c = invert_rigid(ue_to_recammaster_c2w(cond[0]))
    rel = ref_w2c @ ue_to_recammaster_c2w(tgt[idx])  # (T, 4, 4)
    return rel[:, :3, :].reshape(len(idx), 12).astype(np.float32)


def relative_pose_embedding(
    camera_json_path: str | os.PathLike[str],
    cond_cam: str,
    tgt_cam: str,
    num_frames: int = 81,
    stride: int = 4,
) -> NDArray[np.float32]:
    """ReCamMaster camera embedding ``(21, 12)`` float32 of ``tgt_cam`` relative to ``cond_cam``.

    ``camera_json_path`` is a MultiCamVideo ``cameras/camera_extrinsics.json``; the cameras are named
    like ``cam01``. See the module docstring for the convention.
    """
    poses, names = read_camera_json(camera_json_path)
    for cam in (cond_cam, tgt_cam):
        if cam not in names:
            raise CameraFileError(f"{camera_json_path}: no camera {cam!r}; the file has {', '.join(names)}")
    if poses.shape[0] < num_frames:
        raise CameraFileError(
            f"{camera_json_path}: has {poses.shape[0]} frames, num_frames={num_frames} needs at least that many"
        )
    return relative_pose_embedding_from_poses(
        poses[:, names.index(cond_cam)], poses[:, names.index(tgt_cam)], num_frames, stride
    )


def preset_embedding(
    cam_type: int, num_frames: int = 81, stride: int = 4, distance_m: float = 4.0
) -> NDArray[np.float32]:
    """Embedding of ReCamMaster preset trajectory ``cam_type`` (1..10), from :mod:`trajectory.presets`."""
    if not 1 <= cam_type <= NUM_CAMERA_TYPES:
        raise ValueError(f"cam_type must be in 1..{NUM_CAMERA_TYPES}, got {cam_type}")
    from trajectory.presets import preset_poses

    poses = np.asarray(preset_poses(distance_m=distance_m, frames=num_frames), dtype=np.float64)
    track = poses[cam_type - 1]
    return relative_pose_embedding_from_poses(track, track, num_frames, stride)
