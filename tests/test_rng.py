"""trajectory.rng reproduces NumPy's per-camera Generator streams bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trajectory.rng import camera_uniforms
from trajectory.sampler import N_UNIFORMS, camera_rng, scene_rng

word = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.lists(word, min_size=1, max_size=4), min_size=1, max_size=8).filter(
    lambda ks: len({len(k) for k in ks}) == 1))
def test_equals_numpy_default_rng(keys: list[list[int]]) -> None:
    ours = camera_uniforms(keys, 13)
    ref = np.stack([np.random.default_rng(k).random(13) for k in keys])
    np.testing.assert_array_equal(ours, ref)


def test_large_keys_fall_back_to_numpy() -> None:
    keys = [[2**40 + 3, 1, 2], [5, 6, 7]]
    np.testing.assert_array_equal(camera_uniforms(keys, 5),
                                  np.stack([np.random.default_rng(k).random(5) for k in keys]))


def test_sampler_streams_are_the_documented_generators() -> None:
    u = camera_uniforms([[123, 7, c] for c in range(10)], N_UNIFORMS)
    for c in range(10):
        np.testing.assert_array_equal(u[c], camera_rng(123, 7, c).random(N_UNIFORMS))
    np.testing.assert_array_equal(camera_uniforms([[123, 7]], 2)[0], scene_rng(123, 7).random(2))
