"""Which attention kernels give correct training gradients in the ReCamMaster model, and what cross-attention costs.

Follow-up to ``bench/recam_gpu.py`` (run on the GPU):

1. operator level: gradients of each SDPA backend in the model's layouts against float32, for the
   cross-attention shape (65,520 queries, 512 keys) and a self-attention shape;
2. model level (full size, eager, full-block gradient checkpointing): trainable-parameter gradients of the stock
   diffusers processor and of :class:`recam.model.ReCamAttnProcessor` under several (self, cross) SDPA backends,
   against the stock model under FlashAttention;
3. compiled forward time with the cross-attention pinned to each backend.

    python bench/recam_sdpa_check.py --out DIR
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recam_gpu as R  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    ap.add_argument(
        "--parts", default="cache,layout,fp32ref", help="comma list of: cache, layout, fp32ref, sdpa, grads"
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.seed, args.text_len, args.repeats = 0, (16 if args.tiny else 512), 3
    args.latent = [3, 8, 12] if args.tiny else [21, 60, 104]
    device = torch.device(args.device)
    res: dict[str, Any] = {"torch": torch.__version__, "command": " ".join([sys.executable, *sys.argv])}
    R.PROGRESS.update(res=res, out=args.out)
    try:
        run(args, device, res)
    except Exception:
        res["fatal"] = traceback.format_exc()
        R.log(res["fatal"])
    R.save(res, args.out)
    return 0 if "fatal" not in res else 1


def run(args: argparse.Namespace, device: torch.device, res: dict[str, Any]) -> None:
    parts = set(args.parts.split(","))
    model, cfg = R.build(args, device)
    inp = R.make_inputs(cfg, args, device)
    t, h, w = args.latent
    s = 2 * t * (h // 2) * (w // 2)
    if device.type == "cuda" and "cache" in parts:
        # same check as "sdpa" with the two gradient layouts in the opposite order, at a fresh shape
        res["cache_order"] = cache_order_check(cfg, device)
    if device.type == "cuda" and "layout" in parts:
        res["layout"] = layout_check(cfg, args, device, model, inp)
    if "fp32ref" in parts:
        res["fp32_reference"] = fp32_reference(model, inp, args, device)
    if device.type == "cuda" and "sdpa" in parts:
        res["sdpa"] = R.sdpa_grad_check(cfg, device, sizes=((8192, 512), (s, args.text_len)))
    if "grads" in parts:
        model_grads(model, inp, args, cfg, device, res)


def cache_order_check(cfg: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """SDPA gradients at one shape: first with a contiguous (B, H, S, D) output gradient, then in the model's
    layout. If a cuDNN plan is reused regardless of the gradient's strides, the SECOND call is the wrong one."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, hd, n = cfg["num_attention_heads"], cfg["attention_head_dim"], 16384
    g = torch.Generator(device=device).manual_seed(5)
    base = [torch.randn(1, n, heads, hd, generator=g, device=device).bfloat16() for _ in range(3)]
    gout = torch.randn(1, n, heads * hd, generator=g, device=device).bfloat16()
    out: dict[str, Any] = {}

    def grads(dtype: torch.dtype, layout: str, backend: Any) -> list[torch.Tensor]:
        leaves = [b.to(dtype).requires_grad_() for b in base]
        with sdpa_kernel([backend]):
            q, k, v = (x.transpose(1, 2) for x in leaves)
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        go = gout.to(dtype).view(1, n, heads, hd).transpose(1, 2)
        if layout == "contiguous":
            go = go.contiguous()
        return [x.float() for x in torch.autograd.grad(o, leaves, go)]

    ref = grads(torch.float32, "model", SDPBackend.EFFICIENT_ATTENTION)
    for i, layout in enumerate(("contiguous", "model", "contiguous")):
        got = grads(torch.bfloat16, layout, SDPBackend.CUDNN_ATTENTION)
        out[f"{i + 1}:{layout}"] = {k: R.rel_err(a, b) for k, a, b in zip(("dq", "dk", "dv"), got, ref, strict=True)}
        R.log(f"cuDNN call {i + 1} ({layout} output gradient) vs fp32: {out[f'{i + 1}:{layout}']}")
    return out


def layout_check(
    cfg: dict[str, Any], args: argparse.Namespace, device: torch.device, model: Any, inp: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """cuDNN self-attention forward time per q/k/v memory layout, and the compiled model forward per layout."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
    t, h, w = args.latent
    n = 2 * t * (h // 2) * (w // 2)
    g = torch.Generator(device=device).manual_seed(9)
    bshd = [torch.randn(1, n, heads, hd, generator=g, device=device).bfloat16() for _ in range(3)]
    fused = torch.randn(1, n, 3, heads, hd, generator=g, device=device).bfloat16()
    layouts = {
        "bshd_views": [x.transpose(1, 2) for x in bshd],
        "bhsd_contiguous": [x.transpose(1, 2).contiguous() for x in bshd],
        "v_from_fused_qkv": [bshd[0].transpose(1, 2), bshd[1].transpose(1, 2), fused[:, :, 2].transpose(1, 2)],
    }
    out: dict[str, Any] = {}
    with torch.no_grad(), sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        for name, qkv in layouts.items():

            def attend(qkv: list[torch.Tensor] = qkv) -> torch.Tensor:
                return torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])

            times, _ = R.timed(attend, device, 2, 10)
            out[f"sdpa_{name}_ms"] = 1e3 * statistics.median(times)
            R.log(f"cuDNN self-attention fwd, {name}: {out[f'sdpa_{name}_ms']:.2f} ms")
    del bshd, fused, layouts
    model.disable_gradient_checkpointing()
    for contiguous in (False, True):
        torch._dynamo.reset()
        model.set_fast_attention(True, self_backend="cudnn", cross_backend="cudnn", contiguous_heads=contiguous)
        model.compile_blocks()
        R.forward_fn(model, inp, None)()
        times, _ = R.timed(R.forward_fn(model, inp, None), device, 1, 5)
        out[f"forward_contiguous_heads_{contiguous}_s"] = statistics.median(times)
        R.log(f"compiled forward, contiguous_heads={contiguous}: {statistics.median(times):.3f} s {times}")
    return out


def fp32_reference(
    model: Any, inp: dict[str, torch.Tensor], args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """Forward of the same weights in float32 (stock processor, eager, no TF32) vs the bf16 baseline and the
    bf16 optimised (compiled) forward."""
    import copy

    out: dict[str, Any] = {}
    model.disable_gradient_checkpointing()
    torch._dynamo.reset()
    model.set_fast_attention(True, self_backend="cudnn" if device.type == "cuda" else None, cross_backend=None)
    model.compile_blocks()
    opt = R.forward_fn(model, inp, None)()
    for block in model.blocks:
        block._compiled_call_impl = None
    model.set_fast_attention(False)
    base = R.forward_fn(model, inp, None)()
    ref_model = copy.deepcopy(model).float()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    inp32 = {k: (v.float() if v.is_floating_point() else v) for k, v in inp.items()}
    t0 = time.perf_counter()
    backend = "efficient" if device.type == "cuda" else None
    ref = R.forward_fn(ref_model, inp32, backend)()
    R.sync(device)
    out["fp32_forward_s"] = time.perf_counter() - t0
    del ref_model
    out["baseline_bf16_vs_fp32"] = R.rel_err(base, ref)
    out["optimised_bf16_vs_fp32"] = R.rel_err(opt, ref)
    out["optimised_vs_baseline"] = R.rel_err(opt, base)
    R.log(f"fp32 reference forward ({out['fp32_forward_s']:.0f} s): {out}")
    return out


def model_grads(
    model: Any,
    inp: dict[str, torch.Tensor],
    args: argparse.Namespace,
    cfg: dict[str, Any],
    device: torch.device,
    res: dict[str, Any],
) -> None:
    t, h, w = args.latent
    g = torch.Generator(device=device).manual_seed(args.seed + 2)
    target = torch.randn(1, cfg["in_channels"], t, h, w, generator=g, device=device).bfloat16()

    # ---- model-level gradients, eager, full-block checkpointing
    model.enable_gradient_checkpointing()
    model.set_fast_attention(False)
    R.train_fn(model, inp, target, None, "flash" if device.type == "cuda" else None)()
    ref = R.grads_snapshot(model)
    combos: list[tuple[str, bool, str | None, str | None]] = [
        ("stock/default", False, None, None),
        ("fast/default", True, None, None),
        ("fast/self=cudnn,cross=flash", True, "cudnn", "flash"),
        ("fast/self=flash,cross=cudnn", True, "flash", "cudnn"),
        ("fast/self=cudnn,cross=cudnn", True, "cudnn", "cudnn"),
    ]
    res["model_grads_vs_stock_flash"] = {}
    for name, fast, self_b, cross_b in combos:
        if device.type != "cuda" and (self_b or cross_b):
            continue
        if fast:
            model.set_fast_attention(True, self_backend=self_b, cross_backend=cross_b)
        else:
            model.set_fast_attention(False)
        R.train_fn(model, inp, target, None, None)()
        res["model_grads_vs_stock_flash"][name] = R.grad_errors(R.grads_snapshot(model), ref)
        R.log(f"eager grads {name} vs stock/flash: {res['model_grads_vs_stock_flash'][name]}")

    # ---- compiled forward, cross-attention backend
    model.disable_gradient_checkpointing()
    res["forward_cross_backend"] = {}
    for cross_b in ("cudnn", "flash", "efficient") if device.type == "cuda" else (None,):
        torch._dynamo.reset()
        model.set_fast_attention(True, self_backend="cudnn" if device.type == "cuda" else None, cross_backend=cross_b)
        model.compile_blocks()
        t0 = time.perf_counter()
        R.forward_fn(model, inp, None)()
        R.sync(device)
        first = time.perf_counter() - t0
        times, _ = R.timed(R.forward_fn(model, inp, None), device, 1, args.repeats)
        res["forward_cross_backend"][str(cross_b)] = {"median_s": statistics.median(times), "times_s": times}
        R.log(f"compiled forward, cross={cross_b}: {statistics.median(times):.3f} s (first call {first:.1f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
