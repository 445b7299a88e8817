"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw their examples from a fixed derandomized sequence, so a run on CI tries exactly the cases the
# last run tried and cannot fail by the luck of the draw (a flaky test blocks every landing). To search new
# examples locally: HYPOTHESIS_PROFILE=explore python -m pytest tests/test_trajectory.py
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a shared 2-core box, 2 threads spin against other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Wan folder (VAE, umT5, tokenizer, transformer), one per test module."""
    from recam.tiny import make_tiny_wan_dir

    return make_tiny_wan_dir(tmp_path_factory.mktemp("wan"))
