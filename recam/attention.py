"""Attention processors of the ReCamMaster DiT (diffusers' processor interface: ``attn.set_processor(proc)``).

* diffusers' ``WanAttnProcessor``: the stock path (the benchmark baseline);
* :class:`ReCamAttnProcessor`: one fused QKV GEMM, q/k RMSNorm, RoPE in float32, then any kernel of
  :func:`recam.attn_kernels.attention` (SDPA backends, FlashAttention-4, FP8); with ``fusions`` it also applies the
  inference-only rewrites while autograd is off (one Triton q/k norm + RoPE pass, output projection merged with
  the block's projector);
* :class:`recam.parallel.SequenceParallelAttnProcessor`: self-attention split over ranks.

The block calls :func:`self_attention`, which hands ``ReCamAttnProcessor`` the block's projector and the number
of query rows to keep, and applies both itself around any other processor.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recam.attn_kernels import attention, check_backend, qk_norm_rope, rope_fp32

# inference-only rewrites (used while autograd is off); "gelu" is the block's FFN, the others the processor's
INFERENCE_FUSIONS = ("qk_norm_rope", "out_proj", "gelu")


def qkv_heads(
    attn: Any,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None = None,
    rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    fused_norm_rope: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wan attention inputs as (B, S, heads, head_dim): one fused QKV GEMM (self-attention) or Q plus a
    fused KV GEMM (cross-attention), q/k RMSNorm, RoPE in fp32. Shared by every fast processor.

    ``fused_norm_rope`` (self-attention with RoPE, no autograd): norm + weight + RoPE of q and k in one Triton
    pass over the QKV GEMM output (:func:`recam.attn_kernels.qk_norm_rope`; fp32 inside, one rounding)."""
    if encoder_hidden_states is None:
        w = torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight])
        b = torch.cat([attn.to_q.bias, attn.to_k.bias, attn.to_v.bias])
        qkv = F.linear(hidden_states, w, b)
        if fused_norm_rope and rotary_emb is not None:
            d = qkv.shape[-1] // 3
            cos = rotary_emb[0][0, :, 0, 0::2].float()
            sin = rotary_emb[1][0, :, 0, 1::2].float()
            eps = attn.norm_q.eps if attn.norm_q.eps is not None else torch.finfo(torch.float32).eps
            query, key = qk_norm_rope(qkv, attn.norm_q.weight, attn.norm_k.weight, cos, sin, float(eps), attn.heads)
            return query, key, qkv[..., 2 * d :].unflatten(2, (attn.heads, -1))
        query, key, value = qkv.chunk(3, dim=-1)
    else:
        query = attn.to_q(hidden_states)
        w = torch.cat([attn.to_k.weight, attn.to_v.weight])
        b = torch.cat([attn.to_k.bias, attn.to_v.bias])
        key, value = F.linear(encoder_hidden_states, w, b).chunk(2, dim=-1)
    query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
    key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
    value = value.unflatten(2, (attn.heads, -1))
    if rotary_emb is not None:
        cos = rotary_emb[0][..., 0::2].float()
        sin = rotary_emb[1][..., 1::2].float()
        query = rope_fp32(query, cos, sin)
        key = rope_fp32(key, cos, sin)
    return query, key, value


class ReCamAttnProcessor:
    """Drop-in for diffusers' ``WanAttnProcessor`` (no image branch) with cheaper elementwise work.

    One QKV GEMM (weights concatenated on the fly, so the parameters stay ``to_q/to_k/to_v`` and train as
    usual), RoPE applied in float32 on the half-width cos/sin, then the kernel ``backend`` names (see
    :data:`recam.attn_kernels.ATTENTION_BACKENDS`; None = PyTorch's SDPA choice). Same function as the stock
    processor to float rounding; written so ``torch.compile`` fuses the elementwise parts.

    Extra call arguments (from :func:`self_attention`): ``query_rows`` keeps only the first rows of the queries
    (before the kernel: the skipped rows cost nothing); ``projector`` is applied after the output projection
    (merged into it by the ``out_proj`` fusion).
    """

    takes_projector = True

    def __init__(self, backend: str | None = None, contiguous_heads: bool = False, fusions: tuple[str, ...] = ()):
        check_backend(backend)
        self.backend = backend
        # hand q, k, v to SDPA as contiguous (B, H, S, D) instead of (B, S, H, D) views
        self.contiguous_heads = contiguous_heads
        # inference rewrites, applied only while autograd is off: "qk_norm_rope", "out_proj"
        self.fusions = fusions

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_rows: int | None = None,
        projector: nn.Linear | None = None,
    ) -> torch.Tensor:
        if attn.add_k_proj is not None:
            raise NotImplementedError("ReCamAttnProcessor has no image-conditioning branch (Wan I2V)")
        fuse = () if torch.is_grad_enabled() else self.fusions
        query, key, value = qkv_heads(attn, hidden_states, encoder_hidden_states, rotary_emb, "qk_norm_rope" in fuse)
        if query_rows is not None:
            query = query[:, :query_rows]
        out = attention(query, key, value, self.backend, attention_mask, self.contiguous_heads)
        out = out.flatten(2, 3).type_as(query)
        to_out = attn.to_out[0]
        if projector is None:
            return to_out(out)
        if "out_proj" in fuse:  # projector(to_out(o)) = o (W_p W_o)^T + (W_p b_o + b_p): one GEMM
            w_eff = projector.weight @ to_out.weight
            b_eff = projector.weight.float() @ to_out.bias.float() + projector.bias.float()
            return F.linear(out, w_eff, b_eff.to(out.dtype))
        return projector(to_out(out))


def self_attention(
    attn: Any,
    hidden_states: torch.Tensor,
    rotary_emb: tuple[torch.Tensor, torch.Tensor],
    projector: nn.Linear,
    query_rows: int | None = None,
) -> torch.Tensor:
    """``projector(attn1(x))[:, :query_rows]`` through whatever processor ``attn`` has; processors that take the
    projector and the row count (:class:`ReCamAttnProcessor`) skip the dropped rows before the kernel."""
    if getattr(attn.processor, "takes_projector", False):
        return attn(hidden_states, None, None, rotary_emb, query_rows=query_rows, projector=projector)
    out = attn(hidden_states, None, None, rotary_emb)
    return projector(out if query_rows is None else out[:, :query_rows])
