"""Selective activation checkpointing policies for a ReCamMaster block in training (``torch.utils.checkpoint``).

``"attention"``: keep the attention kernels' outputs (and the block input) for backward, recompute everything
else; ``"attention+qkv"``: also keep the fused QKV GEMM output (the GEMM whose weight is (D, 3D))."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from recam import attn_kernels  # noqa: F401  (registers recam::flash_attn4_fwd)

ATTENTION_OPS = (
    *(
        getattr(torch.ops.aten, name).default
        for name in (
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_flash_attention_for_cpu",
        )
        if hasattr(torch.ops.aten, name)
    ),
    torch.ops.recam.flash_attn4_fwd.default,
)


def _recompute_all_but_attention(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Keep attention outputs for backward, recompute everything else."""
    if op in ATTENTION_OPS:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _recompute_all_but_attention_and_qkv(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """As :func:`_recompute_all_but_attention`, and keep the fused QKV GEMM output (weight (D, 3D))."""
    if op in ATTENTION_OPS:
        return CheckpointPolicy.MUST_SAVE
    if op in (torch.ops.aten.addmm.default, torch.ops.aten.mm.default):
        weight = args[-1]
        if isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.shape[1] == 3 * weight.shape[0]:
            return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


RECOMPUTE_POLICIES = {
    "attention": functools.partial(create_selective_checkpoint_contexts, _recompute_all_but_attention),
    "attention+qkv": functools.partial(create_selective_checkpoint_contexts, _recompute_all_but_attention_and_qkv),
}
