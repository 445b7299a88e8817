"""Speed profiles: how a trajectory's progress advances over frames.

Constant speed: ``s_i = i / f``. Variable speed (the paper's):
``L_i = L_start + (L_end - L_start) * (1 - exp(-a i / f)) / (1 - exp(-a))`` with ``f = F - 1`` so that the
last frame reaches the end. ``s_i`` below is the normalised progress in [0, 1]; the trajectory maps it to
its own quantity (an angle for pan/tilt/arc, an arc length for translation/random).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multicam import detmath

A_RANGE = (0.5, 3.0)


def progress(frames: int, a: ArrayLike | None = None) -> NDArray[np.float64]:
    """Normalised progress ``(..., frames)`` for acceleration ``a`` (``None`` or NaN = constant speed).

    ``a`` may be an array; NaN entries are constant-speed. ``s_0 = 0`` and ``s_{F-1} = 1`` exactly.
    """
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    t = np.arange(frames, dtype=np.float64) / (frames - 1)
    if a is None:
        return t
    aa = np.asarray(a, dtype=np.float64)
    const = np.isnan(aa) | (np.abs(aa) < 1e-12)
    out = np.broadcast_to(t, aa.shape + (frames,)).copy()
    var = aa[~const][:, None]  # the exponential only where the speed varies (element by element: same bits)
    with np.errstate(over="ignore", invalid="ignore"):
        out[~const] = detmath.expm1(-var * t) / detmath.expm1(-var)
    out[..., 0] = 0.0
    out[..., -1] = 1.0
    return out
