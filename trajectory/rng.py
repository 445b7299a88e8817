"""Per-camera random streams, vectorised over cameras, bit-identical to NumPy's.

Every camera's draws are ``np.random.default_rng([seed, scene, camera]).random(k)``. Creating 136,000
Generators costs ~2 s of Python overhead at the paper's scale, so :func:`camera_uniforms` computes
the same numbers for all cameras at once: NumPy's ``SeedSequence`` hashing (pool of 4 uint32) and
``PCG64`` (128-bit LCG, XSL-RR output) re-implemented with uint64 arrays, followed by
``Generator.random``'s ``(x >> 11) * 2**-53``. ``tests/test_rng.py`` checks equality with NumPy on
random keys; keys with any word >= 2**32 take NumPy's own (slow) path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

U32 = np.uint32
U64 = np.uint64
_MASK32 = U64(0xFFFFFFFF)

# numpy/random/bit_generator.pyx
_INIT_A = U32(0x43B0D7E5)
_MULT_A = U32(0x931E8875)
_INIT_B = U32(0x8B51F9DD)
_MULT_B = U32(0x58F38DED)
_MIX_MULT_L = U32(0xCA01F9DD)
_MIX_MULT_R = U32(0x4973F715)
_XSHIFT = U32(16)
_POOL = 4

# PCG_DEFAULT_MULTIPLIER_128 = 2549297995355413924 * 2**64 + 4865540595714422341
_MUL_HI = U64(2549297995355413924)
_MUL_LO = U64(4865540595714422341)


def _seed_state(entropy: NDArray[np.uint32]) -> NDArray[np.uint64]:
    """SeedSequence(entropy).generate_state(4, uint64) for each row of ``entropy`` (n, k<=4 words)."""
    n, k = entropy.shape
    hash_const = np.full(n, _INIT_A, dtype=U32)

    def hashmix(value: NDArray[np.uint32]) -> NDArray[np.uint32]:
        nonlocal hash_const
        value = value ^ hash_const
        hash_const = hash_const * _MULT_A
        value = value * hash_const
        return value ^ (value >> _XSHIFT)

    def mix(x: NDArray[np.uint32], y: NDArray[np.uint32]) -> NDArray[np.uint32]:
        r = (_MIX_MULT_L * x) - (_MIX_MULT_R * y)
        return r ^ (r >> _XSHIFT)

    with np.errstate(over="ignore"):
        mixer = [hashmix(entropy[:, i] if i < k else np.zeros(n, U32)) for i in range(_POOL)]
        for i_src in range(_POOL):
            for i_dst in range(_POOL):
                if i_src != i_dst:
                    mixer[i_dst] = mix(mixer[i_dst], hashmix(mixer[i_src]))
        out32 = np.empty((n, 8), dtype=U32)
        hb = np.full(n, _INIT_B, dtype=U32)
        for i in range(8):
            v = mixer[i % _POOL] ^ hb
            hb = hb * _MULT_B
            v = v * hb
            out32[:, i] = v ^ (v >> _XSHIFT)
    # little-endian pairs of uint32 -> uint64
    return out32[:, 0::2].astype(U64) | (out32[:, 1::2].astype(U64) << U64(32))


def _mul64(a: NDArray[np.uint64], b: NDArray[np.uint64] | np.uint64) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """Full 64x64 -> 128-bit product as (hi, lo)."""
    a0, a1 = a & _MASK32, a >> U64(32)
    b0, b1 = b & _MASK32, b >> U64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> U64(32)) + (p01 & _MASK32) + (p10 & _MASK32)
    lo = (p00 & _MASK32) | (mid << U64(32))
    hi = p11 + (p01 >> U64(32)) + (p10 >> U64(32)) + (mid >> U64(32))
    return hi, lo


def _add128(ah: NDArray[np.uint64], al: NDArray[np.uint64], bh: NDArray[np.uint64],
            bl: NDArray[np.uint64]) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    lo = al + bl
    carry = (lo < al).astype(U64)
    return ah + bh + carry, lo


def _step(sh: NDArray[np.uint64], sl: NDArray[np.uint64], ih: NDArray[np.uint64],
          il: NDArray[np.uint64]) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """state = state * MULT + inc  (mod 2**128)."""
    hi, lo = _mul64(sl, _MUL_LO)
    hi = hi + sl * _MUL_HI + sh * _MUL_LO
    return _add128(hi, lo, ih, il)


def _uniforms_numpy(keys: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    return np.stack([np.random.default_rng([int(v) for v in row]).random(k) for row in keys])


def camera_uniforms(keys: Sequence[Sequence[int]] | NDArray[np.int64], k: int) -> NDArray[np.float64]:
    """``out[i] == np.random.default_rng(list(keys[i])).random(k)`` for every row, vectorised.

    ``keys`` is ``(n, w)`` non-negative integers with 1 <= w <= 4, e.g. ``(seed, scene, camera)``.
    """
    arr = np.asarray(keys, dtype=np.int64)
    if arr.ndim != 2 or not 1 <= arr.shape[1] <= _POOL:
        raise ValueError(f"keys must be (n, 1..4) integers, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
        return _uniforms_numpy(arr, k)  # multi-word keys: NumPy's own path
    state = _seed_state(arr.astype(U32))
    with np.errstate(over="ignore"):
        # pcg_setseq_128_srandom_r(initstate = s0:s1, initseq = s2:s3)
        init_h, init_l = state[:, 0], state[:, 1]
        inc_h = (state[:, 2] << U64(1)) | (state[:, 3] >> U64(63))
        inc_l = (state[:, 3] << U64(1)) | U64(1)
        zeros = np.zeros_like(init_h)
        sh, sl = _step(zeros, zeros, inc_h, inc_l)
        sh, sl = _add128(sh, sl, init_h, init_l)
        sh, sl = _step(sh, sl, inc_h, inc_l)
        out = np.empty((arr.shape[0], k))
        for j in range(k):
            sh, sl = _step(sh, sl, inc_h, inc_l)
            xsl: NDArray[np.uint64] = sh ^ sl
            rot = sh >> U64(58)
            rotated = (xsl >> rot) | (xsl << ((U64(64) - rot) & U64(63)))
            out[:, j] = (rotated >> U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return out
