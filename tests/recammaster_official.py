"""A test double of ReCamMaster's own data loaders: how its trainer discovers a dataset's files.

Transcribed from the public KwaiVGI/ReCamMaster repository, ``train_recammaster.py`` at commit
39c0dc2e7b0469789216adedfd0d220325633866 (the statements are copied; only torch/imageio calls are
replaced by what they check):

* ``TextVideoDataset.__init__`` (lines 21-24): ``pd.read_csv(metadata_path)``, video paths
  ``os.path.join(base_path, "train", file_name)``, captions ``metadata["text"]``; ``data_process`` (lines
  559-562) passes ``os.path.join(args.dataset_path, args.metadata_file_name)``, default ``metadata.csv``;
* ``TextVideoDataset.load_frames_using_imageio`` (lines 52-56): a video is skipped (``None``) unless it has
  at least ``max_num_frames`` (81) frames;
* ``LightningModelForDataProcess.test_step`` (line 145): the cached latents of a video are
  ``path + ".tensors.pth"``;
* ``TensorDataset.__init__`` (lines 174-179) and ``__getitem__`` (lines 221-247): the camera index is
  ``re.search(r'cam(\\d+)', path_tgt)`` over the whole path, the condition camera ``random.randint(1, 10)``
  swapped in with ``re.sub``, the camera file ``path_tgt.rsplit('/', 2)[0] + /cameras/camera_extrinsics.json``,
  read at ``cam_data[f"frame{idx}"][f"cam{view_idx:02d}"]`` for ``idx in range(81)[::4]`` and parsed by
  ``parse_matrix`` (lines 183-189).

It imports nothing of this project. ``pandas`` is used when importable (it is what the trainer uses), else
the ``csv`` module reads the same columns.
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Any

import cv2
import numpy as np

try:  # the trainer's reader; not a dependency of this project
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the environment
    pd = None

UPSTREAM = "KwaiVGI/ReCamMaster train_recammaster.py @ 39c0dc2e7b0469789216adedfd0d220325633866"


def read_metadata(base_path: str, metadata_file_name: str = "metadata.csv") -> tuple[list[str], list[str]]:
    """``TextVideoDataset.__init__`` lines 22-24 (FileNotFoundError when the file is missing, as upstream)."""
    metadata_path = os.path.join(base_path, metadata_file_name)
    if pd is not None:
        metadata = pd.read_csv(metadata_path)
        paths = [os.path.join(base_path, "train", file_name) for file_name in metadata["file_name"]]
        text = metadata["text"].to_list()
        return paths, text
    with open(metadata_path, newline="") as fh:  # same columns, same missing-file error
        rows = list(csv.DictReader(fh))
    return [os.path.join(base_path, "train", r["file_name"]) for r in rows], [r["text"] for r in rows]


def count_frames(file_path: str) -> int:
    """``imageio.get_reader(file_path).count_frames()``: frames decoded (imageio is not installed here)."""
    cap = cv2.VideoCapture(file_path)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def video_is_used(file_path: str, max_num_frames: int = 81, start_frame_id: int = 0, interval: int = 1,
                  num_frames: int = 81) -> bool:
    """``load_frames_using_imageio`` lines 53-56: False where upstream returns None (the video is skipped)."""
    n = count_frames(file_path)
    return not (n < max_num_frames or n - 1 < start_frame_id + (num_frames - 1) * interval)


def tensor_paths(paths: list[str]) -> list[str]:
    """``TensorDataset.__init__`` line 177 (after ``data_process`` wrote ``path + ".tensors.pth"``, line 145)."""
    return [i + ".tensors.pth" for i in paths if os.path.exists(i + ".tensors.pth")]


def parse_matrix(matrix_str: str) -> np.ndarray:
    """``TensorDataset.parse_matrix`` lines 183-189, verbatim."""
    rows = matrix_str.strip().split('] [')
    matrix = []
    for row in rows:
        row = row.replace('[', '').replace(']', '')
        matrix.append(list(map(float, row.split())))
    return np.array(matrix)


def get_item(path_tgt: str, cond_idx: int) -> dict[str, Any]:
    """``TensorDataset.__getitem__`` lines 221-247 for one target path and one drawn condition camera
    (upstream draws ``cond_idx = random.randint(1, 10)`` until it differs from the target's)."""
    match = re.search(r'cam(\d+)', path_tgt)
    tgt_idx = int(match.group(1))  # type: ignore[union-attr]  # AttributeError upstream when no match
    assert cond_idx != tgt_idx
    path_cond = re.sub(r'cam(\d+)', f'cam{cond_idx:02}', path_tgt)
    base_path = path_tgt.rsplit('/', 2)[0]
    tgt_camera_path = os.path.join(base_path, "cameras", "camera_extrinsics.json")
    with open(tgt_camera_path) as file:
        cam_data = json.load(file)
    multiview_c2ws = []
    cam_idx = list(range(81))[::4]
    for view_idx in [cond_idx, tgt_idx]:
        traj = [parse_matrix(cam_data[f"frame{idx}"][f"cam{view_idx:02d}"]) for idx in cam_idx]
        traj = np.stack(traj).transpose(0, 2, 1)
        c2ws = []
        for c2w in traj:
            c2w = c2w[:, [1, 2, 0, 3]]
            c2w[:3, 1] *= -1.
            c2w[:3, 3] /= 100
            c2ws.append(c2w)
        multiview_c2ws.append(c2ws)
    return {"tgt_idx": tgt_idx, "path_cond": path_cond, "camera_path": tgt_camera_path,
            "c2ws": np.asarray(multiview_c2ws)}
