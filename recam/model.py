"""ReCamMaster transformer: diffusers' Wan2.1 DiT with ReCamMaster's per-block camera modules.

Input layout (ReCamMaster, arXiv 2503.11647): the noisy TARGET latents and the clean SOURCE latents are
concatenated along frames, target first, ``(B, 16, 2T, h, w)``; RoPE positions run over frames ``0 .. 2T-1``.
Per DiT block, with ``x`` the block input and ``t`` the block's modulation
``(shift, scale, gate, c_shift, c_scale, c_gate) = scale_shift_table + temb``::

    cam  = cam_encoder(cam_emb)                     # (B, T, 12) -> (B, T, dim), zero-initialised
    cam  = cat([cam, cam], frames)                  # the source half gets the same camera rows
    a    = norm1(x) * (1 + scale) + shift + cam     # cam broadcast over each frame's h*w/4 tokens
    x    = x + gate * projector(self_attn(a))       # projector identity-initialised
    x    = x + cross_attn(norm2(x), text)
    x    = x + c_gate * ffn(norm3(x) * (1 + c_scale) + c_shift)

The module names ``blocks.N.cam_encoder`` and ``blocks.N.projector`` are ReCamMaster's, so a state dict
converted with :mod:`recam.convert` matches the released DiffSynth checkpoint key for key.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanTransformer3DModel,
    WanTransformerBlock,
)
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from recam import convert

try:  # Triton is only needed for the fused q/k kernel of the CUDA inference path
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None
    tl = None

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
FULL_CONFIG = CONFIG_DIR / "wan2.1_t2v_1.3b.json"
TINY_CONFIG = CONFIG_DIR / "tiny.json"
CAM_DIM = 12
TRAINABLE_KEYWORDS = ("attn1", "cam_encoder", "projector")


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A transformer config as a dict: None -> Wan2.1-T2V-1.3B, "tiny", a JSON path, or a mapping."""
    if config is None:
        path: Path | None = FULL_CONFIG
    elif isinstance(config, Mapping):
        path = None
        data = dict(config)
    elif str(config) == "tiny":
        path = TINY_CONFIG
    else:
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"transformer config not found: {path}")
        data = json.loads(path.read_text())
    return {k: (tuple(v) if k == "patch_size" else v) for k, v in data.items() if not k.startswith("_")}


class ReCamAttnProcessor:
    """Drop-in for diffusers' ``WanAttnProcessor`` (no image branch) with cheaper elementwise work.

    One QKV GEMM (weights concatenated on the fly, so the parameters stay ``to_q/to_k/to_v`` and train as
    usual), RoPE applied in float32 on the half-width cos/sin, ``F.scaled_dot_product_attention`` directly.
    Same function as the stock processor to float rounding; written so ``torch.compile`` fuses the elementwise
    parts.
    """

    def __init__(self, backend: str | None = None, contiguous_heads: bool = False) -> None:
        # SDPA backend for this attention ("cudnn", "flash", "efficient", "math"); None = PyTorch's choice
        if backend is not None and backend not in _SDPA_BACKENDS:
            raise ValueError(f"unknown SDPA backend {backend!r}; choose from {sorted(_SDPA_BACKENDS)}")
        self.backend = backend
        # hand q, k, v to SDPA as contiguous (B, H, S, D) instead of (B, S, H, D) views
        self.contiguous_heads = contiguous_heads

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if attn.add_k_proj is not None:
            raise NotImplementedError("ReCamAttnProcessor has no image-conditioning branch (Wan I2V)")
        query, key, value = qkv_heads(attn, hidden_states, encoder_hidden_states, rotary_emb)
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        if self.contiguous_heads:
            query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
        with _sdpa_backend(self.backend):
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).flatten(2, 3).type_as(query)
        return attn.to_out[0](out)


def qkv_heads(
    attn: Any,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None = None,
    rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wan attention inputs as (B, S, heads, head_dim): one fused QKV GEMM (self-attention) or Q plus a
    fused KV GEMM (cross-attention), q/k RMSNorm, RoPE in fp32. Shared by every fast processor."""
    if encoder_hidden_states is None:
        w = torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight])
        b = torch.cat([attn.to_q.bias, attn.to_k.bias, attn.to_v.bias])
        query, key, value = F.linear(hidden_states, w, b).chunk(3, dim=-1)
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
        query = _rope_fp32(query, cos, sin)
        key = _rope_fp32(key, cos, sin)
    return query, key, value


_SDPA_BACKENDS = {
    "cudnn": "CUDNN_ATTENTION",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "math": "MATH",
}


def _sdpa_backend(name: str | None) -> contextlib.AbstractContextManager[Any]:
    if name is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, _SDPA_BACKENDS[name])])


def _rope_fp32(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Interleaved-pair rotation (Wan/diffusers convention) in float32; x (B, S, H, D), cos/sin (1, S, 1, D/2)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2).type_as(x)


# ---------------------------------------------------------------------------------------------------------------
# inference fusions (no autograd): see ReCamMasterTransformerBlock._block_forward_fused
INFERENCE_FUSIONS = ("qk_norm_rope", "out_proj", "gelu")


def _qk_norm_rope_reference(
    qkv: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float, heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm (across all heads) of q and k, then interleaved-pair RoPE, all in float32, one rounding at the end.

    qkv (B, S, 3*D) = the fused QKV GEMM output; cos/sin (S, Dh/2) float32. Returns q, k as (B, S, H, Dh)."""
    d = qkv.shape[-1] // 3
    outs = []
    for x, w in ((qkv[..., :d], wq), (qkv[..., d : 2 * d], wk)):
        x = x.float()
        x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * w.float()
        x1, x2 = x.unflatten(-1, (heads, -1, 2)).unbind(-1)
        c, s_ = cos[None, :, None, :], sin[None, :, None, :]
        outs.append(torch.stack([x1 * c - x2 * s_, x1 * s_ + x2 * c], dim=-1).flatten(-2).to(qkv.dtype))
    return outs[0], outs[1]


if triton is not None:

    @triton.jit
    def _qk_norm_rope_kernel(
        qkv_ptr,
        q_ptr,
        k_ptr,
        wq_ptr,
        wk_ptr,
        cos_ptr,
        sin_ptr,
        n_rows,
        seq_len,
        row_stride,
        eps,
        D: tl.constexpr,
        HD: tl.constexpr,
        D_P2: tl.constexpr,
        ROWS: tl.constexpr,
    ):
        # ROWS tokens per program; each row of q and of k is loaded once as a contiguous (padded) vector, split
        # into its (even, odd) RoPE pairs, RMS-normalised over all D channels, weighted, rotated, stored
        rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]  # (ROWS, 1)
        cols = tl.arange(0, D_P2)[None, :]  # (1, D_P2)
        mask = (rows < n_rows) & (cols < D)
        pair = tl.arange(0, D_P2 // 2)[None, :]  # pair index within the row
        pmask = (rows < n_rows) & (pair < D // 2)
        pos = rows % seq_len
        tab = pos * (HD // 2) + pair % (HD // 2)
        c = tl.load(cos_ptr + tab, mask=pmask, other=0.0)
        s = tl.load(sin_ptr + tab, mask=pmask, other=0.0)
        for which in tl.static_range(2):
            w_ptr = wq_ptr if which == 0 else wk_ptr
            o_ptr = q_ptr if which == 0 else k_ptr
            x = tl.load(qkv_ptr + rows * row_stride + which * D + cols, mask=mask, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
            r = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / D + eps)  # (ROWS,)
            xe, xo = tl.split(tl.reshape(x * w, (ROWS, D_P2 // 2, 2)))
            r2 = r[:, None]
            ye = (xe * c - xo * s) * r2
            yo = (xe * s + xo * c) * r2
            y = tl.reshape(tl.join(ye, yo), (ROWS, D_P2))
            tl.store(o_ptr + rows * D + cols, y.to(o_ptr.dtype.element_ty), mask=mask)


@torch.library.custom_op("recam::qk_norm_rope", mutates_args=())
def qk_norm_rope(
    qkv: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float, heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """q/k RMSNorm + RoPE from the fused QKV output in one pass (Triton on CUDA, PyTorch elsewhere).

    qkv (B, S, 3*D), wq/wk (D,), cos/sin (S, Dh/2) float32 -> q, k (B, S, H, Dh) in qkv's dtype. Inference only
    (no autograd formula)."""
    if not qkv.is_cuda or triton is None:
        return _qk_norm_rope_reference(qkv, wq, wk, cos, sin, eps, heads)
    b, s, d3 = qkv.shape
    d = d3 // 3
    hd = d // heads
    qkv = qkv if qkv.stride(-1) == 1 and qkv.stride(0) == s * qkv.stride(1) else qkv.contiguous()
    q = torch.empty(b, s, heads, hd, device=qkv.device, dtype=qkv.dtype)
    k = torch.empty_like(q)
    rows = 2
    _qk_norm_rope_kernel[(triton.cdiv(b * s, rows),)](
        qkv,
        q,
        k,
        wq.contiguous(),
        wk.contiguous(),
        cos.contiguous(),
        sin.contiguous(),
        b * s,
        s,
        qkv.stride(1),
        eps,
        D=d,
        HD=hd,
        D_P2=triton.next_power_of_2(d),
        ROWS=rows,
        num_warps=8,
    )
    return q, k


@qk_norm_rope.register_fake
def _(
    qkv: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float, heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    b, s, d3 = qkv.shape
    shape = (b, s, heads, d3 // 3 // heads)
    return qkv.new_empty(shape), qkv.new_empty(shape)


@torch.library.custom_op("recam::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu(x @ weight.T + bias, approximate="tanh")``: on CUDA one cuBLASLt GEMM with the GELU epilogue
    (``torch._addmm_activation``), so the (tokens x ffn_dim) activation is written once and never re-read."""
    if x.is_cuda:
        out = torch._addmm_activation(bias, x.reshape(-1, x.shape[-1]), weight.t(), use_gelu=True)
        return out.view(*x.shape[:-1], weight.shape[0])
    return F.gelu(F.linear(x, weight, bias), approximate="tanh")


@linear_gelu_tanh.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


_ATTENTION_OPS = tuple(
    getattr(torch.ops.aten, name).default
    for name in (
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
    )
    if hasattr(torch.ops.aten, name)
)


def _recompute_all_but_attention(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Selective-checkpoint policy: keep attention outputs for backward, recompute everything else."""
    if op in _ATTENTION_OPS:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _recompute_all_but_attention_and_qkv(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """As :func:`_recompute_all_but_attention`, and keep the fused QKV GEMM output (weight (D, 3D))."""
    if op in _ATTENTION_OPS:
        return CheckpointPolicy.MUST_SAVE
    if op in (torch.ops.aten.addmm.default, torch.ops.aten.mm.default):
        weight = args[-1]
        if isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.shape[1] == 3 * weight.shape[0]:
            return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


_RECOMPUTE_POLICIES = {
    "attention": functools.partial(create_selective_checkpoint_contexts, _recompute_all_but_attention),
    "attention+qkv": functools.partial(create_selective_checkpoint_contexts, _recompute_all_but_attention_and_qkv),
}


class ReCamMasterTransformerBlock(WanTransformerBlock):
    """``WanTransformerBlock`` plus ``cam_encoder`` (12 -> dim, zero init) and ``projector`` (dim -> dim, identity)."""

    cam_encoder: nn.Linear
    projector: nn.Linear

    @classmethod
    def upgrade(cls, block: WanTransformerBlock) -> ReCamMasterTransformerBlock:
        """Turn a freshly built ``WanTransformerBlock`` into this class in place (no re-initialisation)."""
        dim = block.scale_shift_table.shape[-1]
        block.__class__ = cls
        assert isinstance(block, cls)
        block.cam_encoder = nn.Linear(CAM_DIM, dim)
        block.projector = nn.Linear(dim, dim)
        block.reset_camera_modules()
        return block

    @torch.no_grad()
    def reset_camera_modules(self) -> None:
        """ReCamMaster's initialisation: cam_encoder = 0, projector = identity (the block then equals Wan's)."""
        self.cam_encoder.weight.zero_()
        self.cam_encoder.bias.zero_()
        self.projector.weight.copy_(torch.eye(self.projector.in_features))
        self.projector.bias.zero_()

    # selective recomputation in training: None = off; "attention" = keep only the attention outputs (and the
    # block input) for backward and recompute everything else; "attention+qkv" also keeps the fused QKV GEMM output
    selective_recompute: str | None = None
    # inference-only rewrites used when autograd is off (see _block_forward_fused); subset of INFERENCE_FUSIONS
    inference_fusions: tuple[str, ...] = ()

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        cam_emb: torch.Tensor,
        target_only: bool = False,
    ) -> torch.Tensor:
        """One block over the ``2T`` target-then-source frames. ``target_only``: return only the target half
        ``(B, S/2, D)`` and skip the work that only the source half's outputs need (their self-attention
        queries on the fast inference path, their cross-attention and FFN everywhere); for the last block, whose
        source-half outputs nobody reads. Keys and values still cover all ``2T`` frames."""
        args = (hidden_states, encoder_hidden_states, temb, rotary_emb, cam_emb, target_only)
        if self.selective_recompute is not None and torch.is_grad_enabled():
            context_fn = _RECOMPUTE_POLICIES[self.selective_recompute]
            return checkpoint(self._block_forward, *args, use_reentrant=False, context_fn=context_fn)
        fused_ok = isinstance(self.attn1.processor, ReCamAttnProcessor)
        if self.inference_fusions and fused_ok and not torch.is_grad_enabled():
            return self._block_forward_fused(*args)
        return self._block_forward(*args)

    def _block_forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        cam_emb: torch.Tensor,
        target_only: bool = False,
    ) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)

        # camera: (B, T, 12) -> (B, 2T, 1, dim), added to every token of its latent frame
        cam = self.cam_encoder(cam_emb.to(self.cam_encoder.weight.dtype)).float()
        cam = torch.cat([cam, cam], dim=1).unsqueeze(2)
        b, s, d = hidden_states.shape
        norm_x = self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa
        norm_x = (norm_x.view(b, cam.shape[1], -1, d) + cam).view(b, s, d).type_as(hidden_states)

        # 1. self-attention, projector before the gate (any processor; target_only keeps the target rows after it)
        attn_output = self.attn1(norm_x, None, None, rotary_emb)
        if target_only:
            attn_output, hidden_states = attn_output[:, : s // 2], hidden_states[:, : s // 2]
        attn_output = self.projector(attn_output)
        hidden_states = (hidden_states.float() + attn_output * gate_msa).type_as(hidden_states)

        # 2. cross-attention
        norm_x = self.norm2(hidden_states.float()).type_as(hidden_states)
        hidden_states = hidden_states + self.attn2(norm_x, encoder_hidden_states, None, None)

        # 3. feed-forward
        norm_x = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(hidden_states)
        ff_output = self.ffn(norm_x)
        return (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)

    def _block_forward_fused(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        cam_emb: torch.Tensor,
        target_only: bool = False,
    ) -> torch.Tensor:
        """:meth:`_block_forward` for inference, the same function up to rounding, with the rewrites named in
        ``inference_fusions``:

        * ``qk_norm_rope``: q/k RMSNorm + weight + RoPE in one Triton pass over the QKV GEMM output (fp32 inside,
          one rounding), instead of norm -> bf16 -> RoPE -> bf16;
        * ``out_proj``: ``projector(to_out(o)) = o @ (W_p W_o)^T + (W_p b_o + b_p)``: one (D x D) GEMM instead of two
          (the merged weight costs a D^3 GEMM per call);
        * ``gelu``: FFN up-projection with GELU(tanh) in the cuBLASLt epilogue.

        The camera rows are broadcast over the two halves instead of concatenated. ``target_only`` also drops the
        source half's queries before the attention kernel (half the attention FLOPs of this block).
        """
        fus = self.inference_fusions
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)
        dtype = hidden_states.dtype
        cam = self.cam_encoder(cam_emb.to(self.cam_encoder.weight.dtype)).float()  # (B, T, D)
        b, s, d = hidden_states.shape
        t = cam.shape[1]
        norm_x = self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa
        norm_x = (norm_x.view(b, 2, t, -1, d) + cam.view(b, 1, t, 1, d)).view(b, s, d).to(dtype)

        # 1. self-attention
        attn = self.attn1
        proc = attn.processor
        assert isinstance(proc, ReCamAttnProcessor)
        heads = attn.heads
        w = torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight])
        bias = torch.cat([attn.to_q.bias, attn.to_k.bias, attn.to_v.bias])
        qkv = F.linear(norm_x, w, bias)
        value = qkv[..., 2 * d :].unflatten(2, (heads, -1))
        if "qk_norm_rope" in fus:
            cos = rotary_emb[0][0, :, 0, 0::2].float()
            sin = rotary_emb[1][0, :, 0, 1::2].float()
            eps = attn.norm_q.eps if attn.norm_q.eps is not None else torch.finfo(torch.float32).eps
            query, key = qk_norm_rope(qkv, attn.norm_q.weight, attn.norm_k.weight, cos, sin, float(eps), heads)
        else:
            query = attn.norm_q(qkv[..., :d]).unflatten(2, (heads, -1))
            key = attn.norm_k(qkv[..., d : 2 * d]).unflatten(2, (heads, -1))
            cos = rotary_emb[0][..., 0::2].float()
            sin = rotary_emb[1][..., 1::2].float()
            query, key = _rope_fp32(query, cos, sin), _rope_fp32(key, cos, sin)
        if target_only:
            query, hidden_states = query[:, : s // 2], hidden_states[:, : s // 2]
        with _sdpa_backend(proc.backend):
            out = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2))
        out = out.transpose(1, 2).flatten(2, 3).to(dtype)
        to_out = attn.to_out[0]
        assert isinstance(to_out, nn.Linear)
        if "out_proj" in fus:
            w_eff = self.projector.weight @ to_out.weight
            b_eff = (self.projector.weight.float() @ to_out.bias.float() + self.projector.bias.float()).to(dtype)
            attn_output = F.linear(out, w_eff, b_eff)
        else:
            attn_output = self.projector(to_out(out))
        hidden_states = (hidden_states.float() + attn_output * gate_msa).to(dtype)

        # 2. cross-attention (processor as set)
        norm_x = self.norm2(hidden_states.float()).to(dtype)
        hidden_states = hidden_states + self.attn2(norm_x, encoder_hidden_states, None, None)

        # 3. feed-forward
        norm_x = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).to(dtype)
        up, down = self.ffn.net[0], self.ffn.net[2]
        if "gelu" in fus:
            assert isinstance(up.proj, nn.Linear)
            h = linear_gelu_tanh(norm_x, up.proj.weight, up.proj.bias)
        else:
            h = up(norm_x)
        ff_output = down(h)
        return (hidden_states.float() + ff_output.float() * c_gate_msa).to(dtype)


class ReCamMasterTransformer(WanTransformer3DModel):
    """Wan2.1 DiT (diffusers) with ReCamMaster's camera conditioning; defaults are Wan2.1-T2V-1.3B."""

    _no_split_modules = ["ReCamMasterTransformerBlock"]
    _repeated_blocks = ["ReCamMasterTransformerBlock"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
    ) -> None:
        if image_dim is not None or added_kv_proj_dim is not None:
            raise ValueError(
                "ReCamMaster is built on the text-to-video Wan model: image_dim/added_kv_proj_dim unsupported"
            )
        super().__init__(
            patch_size=tuple(patch_size),
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim,
            rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        for block in self.blocks:
            ReCamMasterTransformerBlock.upgrade(block)  # type: ignore[arg-type]
        # with gradient checkpointing on: recompute only the first N blocks (None = all of them)
        self.recompute_blocks: int | None = None

    # ------------------------------------------------------------------ construction / loading
    @classmethod
    def from_config_file(
        cls, config: str | os.PathLike[str] | Mapping[str, Any] | None = None, **overrides: Any
    ) -> ReCamMasterTransformer:
        """Randomly initialised model from a local config (None = Wan2.1-T2V-1.3B), camera modules at init."""
        cfg = load_config(config)
        cfg.update(overrides)
        return cls(**cfg)

    @classmethod
    def tiny(cls, **overrides: Any) -> ReCamMasterTransformer:
        """Tiny random model for CPU tests (2 blocks, dim 24, text_dim 32)."""
        return cls.from_config_file("tiny", **overrides)

    @classmethod
    def from_wan_original(
        cls,
        path_or_state_dict: str | os.PathLike[str] | Mapping[str, torch.Tensor],
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        dtype: torch.dtype | None = None,
    ) -> ReCamMasterTransformer:
        """Build from Wan2.1 original single-file weights (Wan / DiffSynth names) with a local config.

        Uses diffusers' own converter; no hub access. Camera modules keep their ReCamMaster initialisation unless
        the file already holds them (then they are loaded too). Missing or unexpected Wan weights raise KeyError.
        """
        source = str(path_or_state_dict) if not isinstance(path_or_state_dict, Mapping) else "<state dict>"
        sd = convert.to_diffusers(convert.load_state_dict(path_or_state_dict))
        model = cls.from_config_file(config)
        expected = set(model.state_dict())
        camera = {k for k in expected if convert.is_camera_key(k)}
        missing = sorted(expected - camera - set(sd))
        unexpected = sorted(set(sd) - expected)
        if missing or unexpected:
            raise KeyError(_key_report(source, missing, unexpected))
        model.load_state_dict(sd, strict=False)
        if dtype is not None:
            model.to_mixed_precision(dtype)
        return model

    def load_recammaster_checkpoint(
        self, path_or_state_dict: str | os.PathLike[str] | Mapping[str, torch.Tensor], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        """Load a ReCamMaster checkpoint (DiffSynth ``step20000.ckpt`` names, or diffusers names).

        Returns (missing, unexpected) key lists (diffusers names); with ``strict`` any of them raises KeyError
        naming the file and the first offending keys. Shape mismatches always raise.
        """
        source = str(path_or_state_dict) if not isinstance(path_or_state_dict, Mapping) else "<state dict>"
        sd = convert.to_diffusers(convert.load_state_dict(path_or_state_dict))
        expected = self.state_dict()
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        if strict and (missing or unexpected):
            raise KeyError(_key_report(source, missing, unexpected))
        for k in sorted(set(sd) & set(expected)):
            if sd[k].shape != expected[k].shape:
                raise ValueError(
                    f"{source}: key {k} has shape {tuple(sd[k].shape)}, model expects {tuple(expected[k].shape)}"
                )
        self.load_state_dict(sd, strict=False)
        return missing, unexpected

    def recammaster_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights in ReCamMaster/DiffSynth (= Wan original + camera modules) names."""
        return convert.diffusers_to_wan_original(self.state_dict())

    def to_mixed_precision(self, dtype: torch.dtype = torch.bfloat16) -> ReCamMasterTransformer:
        """Cast to ``dtype`` but keep ``_keep_in_fp32_modules`` (time embedder, modulation tables, norms, RoPE)
        in float32, as diffusers' ``from_pretrained(torch_dtype=...)`` does."""
        keep = self._keep_in_fp32_modules or []
        tensors: dict[str, torch.Tensor] = dict(self.named_parameters())
        tensors.update(self.named_buffers())
        kept = {n: t.detach().float().clone() for n, t in tensors.items() if any(k in n.split(".") for k in keep)}
        nn.Module.to(self, dtype)
        for n, t in self.named_parameters():
            if n in kept:
                t.data = kept[n].to(t.device)
        for n, b in self.named_buffers():
            if n in kept:
                b.data = kept[n].to(b.device)
        return self

    # ------------------------------------------------------------------ training helpers
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters ReCamMaster trains: self-attention (attn1), cam_encoder, projector."""
        return [p for n, p in self.named_parameters() if _is_trainable_name(n)]

    def trainable_parameter_names(self) -> list[str]:
        return [n for n, _ in self.named_parameters() if _is_trainable_name(n)]

    def freeze_for_recammaster(self) -> list[nn.Parameter]:
        """Freeze everything except :meth:`trainable_parameters` (which are returned)."""
        self.requires_grad_(False)
        params = self.trainable_parameters()
        for p in params:
            p.requires_grad_(True)
        return params

    # ------------------------------------------------------------------ speed options
    def set_fast_attention(
        self,
        enabled: bool = True,
        self_backend: str | None = None,
        cross_backend: str | None = None,
        contiguous_heads: bool = False,
        inference_fusions: Iterable[str] | str = (),
    ) -> None:
        """Use :class:`ReCamAttnProcessor` (fused QKV GEMM, fp32 RoPE on half-width tables) in every block,
        optionally pinning the SDPA backend of self-attention and of cross-attention (None = PyTorch's choice).

        ``inference_fusions`` (only with ``enabled``; used only while autograd is off, i.e. denoising): names from
        :data:`INFERENCE_FUSIONS` or ``"all"``; see :meth:`ReCamMasterTransformerBlock._block_forward_fused`.

        On torch 2.11 + cuDNN 9.19 do not mix eager and compiled cuDNN attention backward passes of the same
        shape in one process (see BENCHMARKS.md: a reused cuDNN plan gave wrong gradients)."""
        for block in self.blocks:
            for attn, backend in ((block.attn1, self_backend), (block.attn2, cross_backend)):
                assert isinstance(attn, WanAttention)
                proc = (
                    ReCamAttnProcessor(backend, contiguous_heads) if enabled else WanAttention._default_processor_cls()
                )
                attn.set_processor(proc)  # type: ignore[arg-type]
        fusions = tuple(INFERENCE_FUSIONS) if inference_fusions == "all" else tuple(inference_fusions)
        unknown = sorted(set(fusions) - set(INFERENCE_FUSIONS))
        if unknown:
            raise ValueError(f"unknown inference fusion(s) {unknown}; choose from {list(INFERENCE_FUSIONS)} or 'all'")
        for block in self.blocks:
            block.inference_fusions = tuple(f for f in INFERENCE_FUSIONS if f in fusions) if enabled else ()  # type: ignore[assignment]

    def set_selective_recompute(self, mode: str | None) -> None:
        """Training memory/speed trade-off per block: None, "attention" or "attention+qkv" (see the block)."""
        if mode is not None and mode not in _RECOMPUTE_POLICIES:
            raise ValueError(f"selective recompute mode must be one of {sorted(_RECOMPUTE_POLICIES)} or None")
        for block in self.blocks:
            block.selective_recompute = mode  # type: ignore[assignment]

    def compile_blocks(self, coordinate_descent_tuning: bool = False, **compile_kwargs: Any) -> None:
        """``torch.compile`` each transformer block (identical blocks share one compiled graph).

        ``coordinate_descent_tuning``: let inductor tune the block sizes of its generated (norm / modulation)
        kernels (inductor option of that name; ~+15 s compilation on an H100, see BENCHMARKS.md)."""
        if coordinate_descent_tuning:
            options = dict(compile_kwargs.pop("options", None) or {})
            options["coordinate_descent_tuning"] = True
            compile_kwargs["options"] = options
        for block in self.blocks:
            block.compile(**compile_kwargs)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cam_emb: torch.Tensor,
        return_dict: bool = False,
        attention_kwargs: dict[str, Any] | None = None,
        target_only: bool = False,
    ) -> tuple[torch.Tensor]:
        """hidden_states (B, C, 2T, h, w) target-then-source latents; timestep (B,) in [0, 1000];
        encoder_hidden_states (B, L, text_dim); cam_emb (B, T, 12). Returns ``(velocity (B, C, 2T, h, w),)``,
        or with ``target_only`` ``(velocity (B, C, T, h, w),)``: only the target half, which is all that sampling
        and the training loss read; equal to ``velocity[:, :, :T]`` of the full output up to float rounding, and
        cheaper (the last block skips the source half's queries, cross-attention and FFN, the head runs on half
        the tokens)."""
        if attention_kwargs:
            raise ValueError("attention_kwargs (LoRA scale) is not supported by ReCamMasterTransformer")
        batch_size, _, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config["patch_size"]
        post_f, post_h, post_w = num_frames // p_t, height // p_h, width // p_w
        if post_f % 2 or post_f == 0:
            raise ValueError(f"hidden_states needs an even number of latent frames (target+source), got {num_frames}")
        if cam_emb.shape != (batch_size, post_f // 2, CAM_DIM):
            raise ValueError(
                f"cam_emb must have shape (B, T, 12) = ({batch_size}, {post_f // 2}, 12), got {tuple(cam_emb.shape)}"
            )
        if timestep.ndim != 1:
            raise ValueError(f"timestep must have shape (B,), got {tuple(timestep.shape)}")

        rotary_emb = self.rope(hidden_states)
        hidden_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()

        temb, timestep_proj, encoder_hidden_states, _ = self.condition_embedder(timestep, encoder_hidden_states, None)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))

        recompute = torch.is_grad_enabled() and self.gradient_checkpointing
        n_recompute = len(self.blocks) if self.recompute_blocks is None else self.recompute_blocks
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # passed (positionally: diffusers' checkpoint function takes no keywords) only to the last block, so
            # hooks and compiled graphs of the other blocks see the usual call
            args: tuple[Any, ...] = (hidden_states, encoder_hidden_states, timestep_proj, rotary_emb, cam_emb)
            if target_only and i == last:
                args = (*args, True)
            if recompute and i < n_recompute:
                hidden_states = self._gradient_checkpointing_func(block, *args)
            else:
                hidden_states = block(*args)
        if target_only:
            post_f //= 2

        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(batch_size, post_f, post_h, post_w, p_t, p_h, p_w, -1)
        hidden_states = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return (hidden_states.flatten(6, 7).flatten(4, 5).flatten(2, 3),)


def _is_trainable_name(name: str) -> bool:
    parts = name.split(".")
    return any(k in parts for k in TRAINABLE_KEYWORDS)


def _key_report(source: str, missing: Iterable[str], unexpected: Iterable[str], limit: int = 8) -> str:
    missing, unexpected = list(missing), list(unexpected)
    msg = [f"{source}: checkpoint does not match the ReCamMaster transformer"]
    if missing:
        msg.append(f"{len(missing)} missing key(s), e.g. {missing[:limit]}")
    if unexpected:
        msg.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:limit]}")
    return "; ".join(msg)


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
