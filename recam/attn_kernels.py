"""Attention kernels and custom ops for the ReCamMaster DiT (used by :mod:`recam.attention` processors).

* :func:`attention`: one entry point for every kernel on ``(B, S, H, D)`` tensors: PyTorch SDPA with a pinned
  backend (``cudnn``, ``flash``, ``efficient``, ``math``), FlashAttention-4 (``fa4``: the CuTe-DSL kernels of the
  ``flash-attn-4`` package, Hopper/Blackwell, forward and backward) and an inference-only FP8 kernel (``fp8``:
  Q and K quantised to float8 e4m3 with one scale per 128-token block and head, P V in bf16). ``fa4`` and ``fp8``
  need CUDA; on other devices (and for masked attention) they fall back to PyTorch's SDPA, so they are never a
  GPU-only default.
* ``recam::qk_norm_rope``: q/k RMSNorm + RoPE in one Triton pass (inference fusion).
* ``recam::linear_gelu_tanh``: FFN up-projection with the GELU epilogue of cuBLASLt (inference fusion).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from typing import Any

import torch
import torch.nn.functional as F

try:  # Triton is only needed for the CUDA inference kernels
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None
    tl = None

SDPA_BACKENDS = {
    "cudnn": "CUDNN_ATTENTION",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "math": "MATH",
}
# every name :func:`attention` takes (None = PyTorch's own SDPA choice)
ATTENTION_BACKENDS = (*SDPA_BACKENDS, "fa4", "fp8")
FP8_BLOCK = 128  # tokens per quantisation block of q and k (one scale per block and head)
FP8_MAX = 448.0  # largest finite float8 e4m3fn
# launch configuration of the FP8 kernel (BLOCK_N must divide FP8_BLOCK)
FP8_KERNEL_CONFIG: dict[str, int] = {"BLOCK_N": 64, "num_warps": 4, "num_stages": 3}  # best of a sweep, H200
#: FlashAttention-4 forward tile options on Hopper (sm90), passed to ``flash_attn.cute.interface._flash_attn_fwd``:
#: ``tile_mn`` (query rows, key columns per tile), ``mma_pv_is_rs`` (P from registers for P V), ``intra_wg_overlap``.
#: Empty = FA4's own heuristic (128 x 128, RS, overlap for head dim 128). Set from ``RECAM_FA4_FWD`` (see
#: :func:`parse_fa4_fwd_config`) or by a sweep (``bench/recam_attn_kernels.py --fa4-sweep``).
FA4_FWD_CONFIG: dict[str, Any] = {}


def parse_fa4_fwd_config(text: str) -> dict[str, Any]:
    """``"128x176"``, ``"128x176,rs,ol"``, ``"128x128,nors,ol"`` -> FA4 forward options (see :data:`FA4_FWD_CONFIG`);
    ``""`` or ``"default"`` -> ``{}`` (FA4's heuristic). Flags: ``rs``/``nors`` (P V operand from registers or shared
    memory), ``ol``/``nool`` (intra-warpgroup overlap of softmax and the next QK^T); unnamed flags keep FA4's
    choice."""
    text = text.strip().lower()
    if text in ("", "default"):
        return {}
    head, *flags = (t.strip() for t in text.split(","))
    try:
        m, n = (int(t) for t in head.split("x"))
    except ValueError:
        raise ValueError(f"RECAM_FA4_FWD: tile {head!r} is not MxN (e.g. 128x176)") from None
    if m not in (64, 128, 192) or not (16 <= n <= 256) or n % 16:
        raise ValueError(f"RECAM_FA4_FWD: tile {m}x{n} out of range (M in 64, 128, 192; N a multiple of 16, 16-256)")
    cfg: dict[str, Any] = {"tile_mn": (m, n)}
    names = {"rs": ("mma_pv_is_rs", True), "nors": ("mma_pv_is_rs", False), "ol": ("intra_wg_overlap", True),
             "nool": ("intra_wg_overlap", False)}
    for f in flags:
        if f not in names:
            raise ValueError(f"RECAM_FA4_FWD: unknown flag {f!r}; allowed: {', '.join(names)}")
        key, val = names[f]
        cfg[key] = val
    return cfg


def format_fa4_fwd_config(cfg: dict[str, Any]) -> str:
    """Inverse of :func:`parse_fa4_fwd_config`."""
    if not cfg:
        return "default"
    m, n = cfg["tile_mn"]
    flags = [{True: "rs", False: "nors"}[cfg["mma_pv_is_rs"]]] if "mma_pv_is_rs" in cfg else []
    flags += [{True: "ol", False: "nool"}[cfg["intra_wg_overlap"]]] if "intra_wg_overlap" in cfg else []
    return ",".join([f"{m}x{n}", *flags])


FA4_FWD_CONFIG.update(parse_fa4_fwd_config(os.environ.get("RECAM_FA4_FWD", "")))

# FA4 compiles its kernels on first use in each process; its own on-disk cache of compiled kernels (off unless asked
# for; read when flash_attn.cute is first imported, which only the FA4 ops below do) skips that after a machine's
# first run: ~3.6 s of the first `recam infer` step on an H200 (BENCHMARKS.md; the rest of that first call is the
# CuTe DSL's import and CUDA start). FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED=0 turns it off,
# FLASH_ATTENTION_CUTE_DSL_CACHE_DIR moves it (default /tmp/$USER/flash_attention_cute_dsl_cache).
os.environ.setdefault("FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED", "1")


def check_backend(name: str | None) -> None:
    if name is not None and name not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose from {list(ATTENTION_BACKENDS)}")


def sdpa_backend(name: str | None) -> contextlib.AbstractContextManager[Any]:
    """Context pinning PyTorch's SDPA to one backend (None or a non-SDPA name = PyTorch's choice)."""
    if name is None or name not in SDPA_BACKENDS:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[name])])


def fa4_available() -> bool:
    """flash-attn-4 (``flash_attn.cute``) importable and a Hopper or Blackwell GPU present."""
    if importlib.util.find_spec("flash_attn") is None or importlib.util.find_spec("flash_attn.cute") is None:
        return False
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] in (9, 10)


def resolve_backend(name: str | None, device: torch.device) -> str | None:
    """``"auto"``: the fastest self-attention kernel measured for the DiT on this device (BENCHMARKS.md):
    FlashAttention-4 on Hopper/Blackwell when flash-attn-4 is installed, else cuDNN on CUDA, else PyTorch's
    choice. Other names are checked and returned."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return "fa4" if fa4_available() else "cudnn"
    check_backend(name)
    return name


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    backend: str | None = None,
    attn_mask: torch.Tensor | None = None,
    contiguous_heads: bool = False,
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(D)) v`` of ``(B, S, H, D)`` tensors -> ``(B, S_q, H, D)`` with the named kernel.

    ``contiguous_heads``: hand SDPA contiguous ``(B, H, S, D)`` copies instead of ``(B, S, H, D)`` views."""
    if query.is_cuda and attn_mask is None:
        if backend == "fa4":
            return flash_attn4(query, key, value)
        if backend == "fp8" and not torch.is_grad_enabled():
            return torch.ops.recam.fp8_attention(query, key, value)
    if backend == "fp8" and attn_mask is None and not torch.is_grad_enabled():
        return fp8_attention_reference(query, key, value)
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
    if contiguous_heads:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    with sdpa_backend(backend):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return out.transpose(1, 2)


def rope_fp32(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Interleaved-pair rotation (Wan/diffusers convention) in float32; x (B, S, H, D), cos/sin (1, S, 1, D/2)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2).type_as(x)


# ---------------------------------------------------------------------------------------------------------------
# FlashAttention-4 (flash-attn-4, CuTe DSL) as custom ops, so torch.compile treats it as one opaque kernel and the
# selective-recompute policy can keep its output
@torch.library.custom_op("recam::flash_attn4_fwd", mutates_args=())
def flash_attn4_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FA4 forward of (B, S, H, D) bf16/fp16 tensors -> (out (B, S_q, H, D), lse (B, H, S_q) float32)."""
    from flash_attn.cute.interface import _flash_attn_fwd

    opts = FA4_FWD_CONFIG if torch.cuda.get_device_capability(q.device)[0] == 9 else {}  # tiles are sm90's
    out, lse = _flash_attn_fwd(q, k, v, softmax_scale=q.shape[-1] ** -0.5, return_lse=True, **opts)[:2]
    return out, lse


@flash_attn4_fwd.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b, s, h, _ = q.shape
    return q.new_empty(b, s, h, v.shape[-1]), q.new_empty(b, h, s, dtype=torch.float32)


@torch.library.custom_op("recam::flash_attn4_bwd", mutates_args=())
def flash_attn4_bwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, dout: torch.Tensor, lse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FA4 backward: (dq, dk, dv)."""
    from flash_attn.cute.interface import _flash_attn_bwd

    dq, dk, dv = _flash_attn_bwd(q, k, v, out, dout.contiguous(), lse, softmax_scale=q.shape[-1] ** -0.5)[:3]
    return dq, dk, dv


@flash_attn4_bwd.register_fake
def _(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, dout: torch.Tensor, lse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _fa4_setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    ctx.save_for_backward(*inputs, *output)


def _fa4_backward(ctx: Any, dout: torch.Tensor, _dlse: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    q, k, v, out, lse = ctx.saved_tensors
    return flash_attn4_bwd(q, k, v, out, dout, lse)


flash_attn4_fwd.register_autograd(_fa4_backward, setup_context=_fa4_setup_context)


def flash_attn4(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """FA4 attention of (B, S, H, D) tensors (differentiable)."""
    return flash_attn4_fwd(q, k, v)[0]


# ---------------------------------------------------------------------------------------------------------------
# FP8 attention for inference: q, k quantised per (128-token block, head) to float8 e4m3, P V in bf16
def fp8_quantize_blocks(x: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, H, D) -> (x8 (B, H, S_pad, D) float8 e4m3fn, scales (B, H, S_pad / FP8_BLOCK) float32) with
    ``x * scale ~= x8 * scales`` per block; S is zero-padded to a multiple of :data:`FP8_BLOCK`."""
    b, s, h, d = x.shape
    xt = x.transpose(1, 2).float() * scale
    pad = (-s) % FP8_BLOCK
    if pad:
        xt = F.pad(xt, (0, 0, 0, pad))
    xb = xt.reshape(b, h, -1, FP8_BLOCK, d)
    scales = xb.abs().amax(dim=(-1, -2)).clamp_min(1e-20) / FP8_MAX
    # contiguous (B, H, S_pad, D): the kernel indexes it so (without padding xb may be a strided view)
    x8 = (xb / scales[..., None, None]).to(torch.float8_e4m3fn).reshape(b, h, -1, d).contiguous()
    return x8, scales.contiguous()


def fp8_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What the FP8 kernel computes, in PyTorch: attention with q and k rounded through their float8 blocks
    (float32 arithmetic otherwise). (B, S, H, D) -> (B, S_q, H, D) in q's dtype."""
    sq, sk = q.shape[1], k.shape[1]
    dq, dk = (
        (x8.float().unflatten(2, (-1, FP8_BLOCK)) * s[..., None, None]).flatten(2, 3)[:, :, :n]
        for (x8, s), n in ((fp8_quantize_blocks(q), sq), (fp8_quantize_blocks(k), sk))
    )
    p = torch.softmax(dq @ dk.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    out = p.to(v.dtype).float() @ v.transpose(1, 2).float()
    return out.transpose(1, 2).to(q.dtype)


if triton is not None:

    @triton.jit
    def _fp8_attn_fwd_kernel(
        q8_ptr,
        qs_ptr,
        k8_ptr,
        ks_ptr,
        v_ptr,
        o_ptr,
        seq_q,
        seq_k,
        pad_q,
        pad_k,
        heads,
        stride_vb,
        stride_vs,
        stride_vh,
        stride_ob,
        stride_os,
        stride_oh,
        D: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        QBLK: tl.constexpr,
    ):
        # one program: BLOCK_M queries of one (batch, head); online softmax in base 2 over BLOCK_N-key tiles;
        # scores = fp8 q . fp8 k (fp32 accumulate) * q-block scale * k-block scale (softmax scale and log2(e)
        # are in the q scales); P is rounded to bf16 for P V
        pid_m = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b = bh // heads
        h = bh % heads
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, D)
        q = tl.load(q8_ptr + bh * pad_q * D + offs_m[:, None] * D + offs_d[None, :])
        qs = tl.load(qs_ptr + bh * (pad_q // BLOCK_M) + pid_m)
        m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, D), tl.float32)
        k_base = k8_ptr + bh * pad_k * D
        v_base = v_ptr + b * stride_vb + h * stride_vh
        for start in range(0, seq_k, BLOCK_N):
            keys = start + offs_n
            k = tl.load(k_base + keys[:, None] * D + offs_d[None, :])
            ks = tl.load(ks_ptr + bh * (pad_k // QBLK) + start // QBLK)  # BLOCK_N divides QBLK
            s = tl.dot(q, tl.trans(k)) * (qs * ks)
            s = tl.where(keys[None, :] < seq_k, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.math.exp2(s - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(v_base + keys[:, None] * stride_vs + offs_d[None, :], mask=keys[:, None] < seq_k, other=0.0)
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
            m_i = m_new
        out = acc / l_i[:, None]
        o = o_ptr + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :]
        tl.store(o, out.to(o_ptr.dtype.element_ty), mask=offs_m[:, None] < seq_q)


@torch.library.custom_op("recam::fp8_attention", mutates_args=())
def fp8_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inference attention with float8 q/k blocks (Triton on CUDA, :func:`fp8_attention_reference` elsewhere).
    (B, S, H, D) bf16/fp16 -> (B, S_q, H, D); no autograd formula."""
    if not q.is_cuda or triton is None:
        return fp8_attention_reference(q, k, v)
    b, sq, h, d = q.shape
    sk = k.shape[1]
    q8, qs = fp8_quantize_blocks(q, 1.4426950408889634 / math.sqrt(d))  # log2(e) / sqrt(D) folded into q
    k8, ks = fp8_quantize_blocks(k)
    v = v if v.stride(-1) == 1 else v.contiguous()
    out = torch.empty(b, sq, h, d, device=q.device, dtype=q.dtype)
    _fp8_attn_fwd_kernel[(q8.shape[2] // FP8_BLOCK, b * h)](
        q8,
        qs.contiguous(),
        k8,
        ks.contiguous(),
        v,
        out,
        sq,
        sk,
        q8.shape[2],
        k8.shape[2],
        h,
        v.stride(0),
        v.stride(1),
        v.stride(2),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        D=d,
        BLOCK_M=FP8_BLOCK,
        QBLK=FP8_BLOCK,
        **FP8_KERNEL_CONFIG,
    )
    return out


@fp8_attention.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return q.new_empty(*q.shape[:-1], v.shape[-1])


# ---------------------------------------------------------------------------------------------------------------
# inference fusions of the block (no autograd formulas): see recam.attention.ReCamAttnProcessor
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
