"""Matmul FLOP accounting of the ReCamMaster DiT (for MFU figures; elementwise work is not counted)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def flops_per_forward(
    config: Mapping[str, Any], frames: int, height: int, width: int, text_len: int = 512, target_only: bool = False
) -> dict:
    """Matmul FLOPs of one forward pass (B=1) at latent size (frames, height, width), split by kind.

    Counts 2*m*n*k per GEMM; attention counts QK^T and PV. Elementwise work is not counted (MFU convention).
    ``target_only``: the forward of ``model(..., target_only=True)``: the last block's queries, projections,
    cross-attention, FFN and the head over the target half (``frames / 2``) only.
    """
    p_t, p_h, p_w = config["patch_size"]
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    s = (frames // p_t) * (height // p_h) * (width // p_w)
    layers = config["num_layers"]
    ffn = config["ffn_dim"]

    def block(s_q: int) -> tuple[int, int, int]:  # (linear, self-attention, cross-attention) for s_q query rows
        linear = (
            2 * s_q * dim * dim  # self-attn q
            + 2 * s * dim * 2 * dim  # self-attn k, v (all tokens)
            + 2 * s_q * dim * dim  # self-attn out
            + 2 * s_q * dim * dim  # projector
            + 2 * s_q * dim * dim  # cross-attn q
            + 2 * text_len * dim * 2 * dim  # cross-attn k, v
            + 2 * s_q * dim * dim  # cross-attn out
            + 2 * 2 * s_q * dim * ffn  # ffn
        )
        return linear, 4 * s_q * s * dim, 4 * s_q * text_len * dim

    blocks = [block(s)] * (layers - 1) + [block(s // 2 if target_only else s)]
    s_out = s // 2 if target_only else s
    patch = 2 * s * config["in_channels"] * math.prod(config["patch_size"]) * dim
    head = 2 * s_out * dim * config["out_channels"] * math.prod(config["patch_size"])
    linear = sum(b[0] for b in blocks) + patch + head
    self_attn, cross_attn = sum(b[1] for b in blocks), sum(b[2] for b in blocks)
    return {
        "tokens": s,
        "linear": linear,
        "self_attention": self_attn,
        "cross_attention": cross_attn,
        "total": linear + self_attn + cross_attn,
    }


def flops_per_train_step(
    config: Mapping[str, Any], frames: int, height: int, width: int, text_len: int = 512, target_only: bool = False
) -> float:
    """Matmul FLOPs of one ReCamMaster training step (B=1) without recomputation.

    Forward, plus backward input-gradients through every block (the text and latents take none), weight gradients
    of the trainable GEMMs only (attn1 q/k/v/o, projector), self-attention backward at 2.5x its forward (five
    S x S matmuls against two) and cross-attention backward at 1.5x (no key/value gradients). ``target_only``:
    the step as ``recam train`` runs it (see :func:`flops_per_forward`).
    """
    fwd = flops_per_forward(config, frames, height, width, text_len, target_only)
    s = fwd["tokens"]
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    layers = config["num_layers"]
    patch = 2 * s * config["in_channels"] * math.prod(config["patch_size"]) * dim
    text_kv = layers * 2 * text_len * dim * 2 * dim
    input_grads = fwd["linear"] - patch - text_kv
    s_q = [s] * (layers - 1) + [s // 2 if target_only else s]  # query rows per block (q, o, projector)
    weight_grads = sum(2 * s * dim * 2 * dim + 2 * n * dim * 2 * dim + 2 * n * dim * dim for n in s_q)
    attn_bwd = 2.5 * fwd["self_attention"] + 1.5 * fwd["cross_attention"]
    return float(fwd["total"] + input_grads + weight_grads + attn_bwd)
