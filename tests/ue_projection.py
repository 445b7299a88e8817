"""An independent model of Unreal's camera projection, for tests (it imports nothing of ours).

A pose is a row-vector matrix (``FMatrix::TransformPosition``: ``p_world = p_local @ M``, rows forward X, right Y, up
Z, then the location in cm; Engine/Source/Runtime/Core/Public/Math/Matrix.h); a cine camera's horizontal field of
view is ``2 atan(sensor_width / (2 focal))`` (``UCineCameraComponent::GetHorizontalFieldOfView``,
CineCameraComponent.cpp); the projection puts ``right / forward`` on the horizontal screen axis and ``up / forward``
upward, the horizontal FOV spanning the image width (``FPerspectiveMatrix``, PerspectiveMatrix.h).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SENSOR_MM = 23.76


def ue_project(point_cm: np.ndarray, ue: np.ndarray, focal_mm: float, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (continuous: the image spans [0, W] x [0, H]) and forward distance (cm) of a UE point in poses
    ``(..., 4, 4)``."""
    local = np.einsum("...j,...jk->...k", point_cm - ue[..., 3, :3], np.linalg.inv(ue[..., :3, :3]))
    fwd, right, up = local[..., 0], local[..., 1], local[..., 2]
    half_w_over_tan = (w / 2.0) / (SENSOR_MM / (2.0 * focal_mm))  # (W/2) / tan(hfov/2)
    u = w / 2.0 + right / fwd * half_w_over_tan
    v = h / 2.0 - up / fwd * half_w_over_tan
    return np.stack([u, v], -1), fwd


def read_ue(path: Path) -> tuple[np.ndarray, list[str]]:
    """The camera file parsed here (numbers in brackets), independently of exporters.camera_json."""
    data = json.loads(path.read_text())
    names = sorted(data["frame0"], key=lambda n: int(n[3:]))
    rows = [[[[float(x) for x in r.split()] for r in data[f"frame{f}"][n].strip().strip("[]").split("] [")]
             for n in names] for f in range(len(data))]
    return np.asarray(rows), names
