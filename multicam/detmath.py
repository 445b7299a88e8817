"""Bit-reproducible elementwise math.

NumPy dispatches float64 ``sin``, ``arctan2``, ``expm1``... to SIMD kernels whose last-ulp results can
depend on an array's length, stride and memory alignment, so the same pose could round differently
when sampled in a batch of 1 or of 256 scenes. The sampler promises byte-identical files whatever the
batch, so its transcendental functions go through NumPy's complex loops, which call the C library
element by element (same input -> same bits), and use only IEEE-exact operations (+, *, /, sqrt)
otherwise. Cost: about 2x the SIMD kernels, still vectorised.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def sincos(x_rad: ArrayLike) -> tuple[FloatArray, FloatArray]:
    z = np.exp(1j * np.asarray(x_rad, dtype=np.float64))
    return np.ascontiguousarray(z.imag), np.ascontiguousarray(z.real)


def sin(x_rad: ArrayLike) -> FloatArray:
    return sincos(x_rad)[0]


def cos(x_rad: ArrayLike) -> FloatArray:
    return sincos(x_rad)[1]


def arctan2(y: ArrayLike, x: ArrayLike) -> FloatArray:
    """atan2(y, x) as carg(x + iy) of the C library (0 for the origin)."""
    yy = np.asarray(y, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)
    z = np.empty(np.broadcast_shapes(xx.shape, yy.shape), dtype=np.complex128)
    z.real = xx
    z.imag = yy  # keeps the sign of -0.0, as atan2 does
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(z).imag
    return np.where((xx == 0) & (yy == 0), 0.0, out)


def hypot(x: ArrayLike, y: ArrayLike) -> FloatArray:
    xx = np.asarray(x, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    return np.sqrt(xx * xx + yy * yy)


def norm3(v: ArrayLike) -> FloatArray:
    """Euclidean norm over the last axis (size 3), summed in a fixed order."""
    a = np.asarray(v, dtype=np.float64)
    return np.sqrt(a[..., 0] * a[..., 0] + a[..., 1] * a[..., 1] + a[..., 2] * a[..., 2])


def expm1(x: ArrayLike) -> FloatArray:
    return np.ascontiguousarray(np.expm1(np.asarray(x, dtype=np.float64).astype(np.complex128)).real)
