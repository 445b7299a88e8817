"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


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
