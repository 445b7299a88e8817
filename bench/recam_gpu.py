"""GPU benchmark of the ReCamMaster transformer: one denoising forward and one training step (B=1).

Full-size Wan2.1-T2V-1.3B config with random weights, bf16 (fp32 norms / modulation / RoPE tables as diffusers'
``from_pretrained(torch_dtype=bfloat16)`` keeps them), 81 x 480 x 832 video = latents 21 x 60 x 104, target+source
= 42 latent frames, 65,520 tokens, 512 text tokens.

* baseline: stock diffusers attention processor, default SDPA backend, eager, full-block gradient checkpointing
  (the reference recipe);
* optimised: :class:`recam.model.ReCamAttnProcessor` (one QKV GEMM, fp32 RoPE on half tables), the fastest SDPA
  backend measured on this card for the shape, ``torch.compile`` of the (identical) blocks, and recomputation only
  for as many blocks as memory needs (chosen from a one-block calibration).

Both use the same weights and inputs; outputs (forward) and the trainable-parameter gradients (training step) are
compared. The training step = forward, MSE on the target half, backward, fused AdamW over the trainable
parameters (lr 0 so that every run sees identical weights; the optimiser does the same work).

The optimised forward also uses the inference-only fusions of ``set_fast_attention(..., inference_fusions=...)``
(fused q/k RMSNorm + RoPE Triton kernel, merged to_out/projector GEMM, GELU in the FFN GEMM epilogue) and
``compile_blocks(coordinate_descent_tuning=True)`` (``--forward-fusions``, default ``all@cdt``).

    python bench/recam_gpu.py --out DIR            # on the GPU
    python bench/recam_gpu.py --only forward --fp32-ref --forward-variants none,all@cdt --out DIR
                                                   # forward only: each variant's time, error vs float32, profile
    python bench/recam_gpu.py --tiny --device cpu  # smoke test of the script (tiny config, small latents)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recam.attn_kernels import (  # noqa: E402
    ATTENTION_BACKENDS,
    FA4_FWD_CONFIG,
    attention,
    fa4_available,
    format_fa4_fwd_config,
)
from recam.model import (  # noqa: E402
    ReCamMasterTransformer,
    flops_per_forward,
    flops_per_train_step,
    load_config,
)

H100_BF16_DENSE_PEAK = 989.4e12  # FLOP/s, H100 SXM datasheet (dense)
LOG: list[str] = []
T0 = time.perf_counter()
PROGRESS: dict[str, Any] = {}  # "res" and "out" once main() runs: every log line also saves the results so far


def log(msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    LOG.append(line)
    if PROGRESS:
        save(PROGRESS["res"], PROGRESS["out"])


def save(res: dict[str, Any], out: Path) -> None:
    (out / "recam_gpu.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "recam_gpu.log").write_text("\n".join(LOG) + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> tuple[list[float], Any]:
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times, out


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def sdpa_backends() -> dict[str, Any]:
    from torch.nn.attention import SDPBackend

    names = {"cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}
    return {k: getattr(SDPBackend, v) for k, v in names.items() if hasattr(SDPBackend, v)}


def attention_context(backend: str | None) -> contextlib.AbstractContextManager[Any]:
    if backend is None:
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel([sdpa_backends()[backend]])


# --------------------------------------------------------------------------- pieces
def build(args: argparse.Namespace, device: torch.device) -> tuple[ReCamMasterTransformer, dict[str, Any]]:
    cfg = load_config("tiny" if args.tiny else None)
    torch.manual_seed(args.seed)
    with torch.device(device):
        model = ReCamMasterTransformer(**cfg)
    # give the camera modules non-trivial values so their path is exercised and compared
    with torch.no_grad():
        for block in model.blocks:
            block.cam_encoder.weight.normal_(0, 0.02)
            block.cam_encoder.bias.normal_(0, 0.02)
            block.projector.weight.add_(torch.randn_like(block.projector.weight) * 0.01)
    model.to_mixed_precision(torch.bfloat16)
    model.freeze_for_recammaster()
    return model, cfg


def make_inputs(cfg: dict[str, Any], args: argparse.Namespace, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(args.seed + 1)
    t, h, w = args.latent
    return {
        "hidden_states": torch.randn(1, cfg["in_channels"], 2 * t, h, w, generator=g, device=device).bfloat16(),
        "timestep": torch.tensor([500.0], device=device),
        "encoder_hidden_states": torch.randn(1, args.text_len, cfg["text_dim"], generator=g, device=device).bfloat16(),
        "cam_emb": (torch.randn(1, t, 12, generator=g, device=device) * 0.5).bfloat16(),
    }


def bench_attention(
    args: argparse.Namespace, cfg: dict[str, Any], device: torch.device, kv_len: int | None = None
) -> dict[str, Any]:
    """Time each SDPA backend at the model's self-attention shape (or cross-attention with ``kv_len`` keys);
    check each against the first working one on a slice."""
    t, h, w = args.latent
    s = 2 * t * (h // 2) * (w // 2)
    kv = s if kv_len is None else kv_len
    label = "self-attention" if kv_len is None else "cross-attention"
    heads, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
    g = torch.Generator(device=device).manual_seed(7)

    def make(n: int) -> torch.Tensor:
        return torch.randn(1, n, heads, hd, generator=g, device=device).bfloat16().transpose(1, 2).requires_grad_()

    q, k, v = make(s), make(kv), make(kv)
    # output gradient in the layout the model's processors produce ((B, S, H, D) memory): see BENCHMARKS.md on the
    # cuDNN backward plan reuse, which a different layout at the same shape here would poison for the model
    dout = torch.randn(1, s, heads, hd, device=device).bfloat16()
    fwd_flops = 4 * s * kv * hd * heads
    small = [make(min(s, 4096)), make(min(kv, 4096)), make(min(kv, 4096))]
    results: dict[str, Any] = {"tokens": s, "kv_tokens": kv}
    ref_small = None
    names = [n for n in sdpa_backends() if not (n == "math" and device.type == "cuda")]
    if device.type == "cuda" and fa4_available():
        names.append("fa4")
    names.append("fp8")  # inference only: timed and checked, never chosen as the default
    for name in names:
        try:
            # (B, S, H, D) views as the processors pass them
            bshd = [x.transpose(1, 2) for x in (q, k, v)]
            with torch.no_grad():
                out_small = attention(
                    small[0].transpose(1, 2), small[1].transpose(1, 2), small[2].transpose(1, 2), name
                )
                tf, _ = timed(
                    functools.partial(attention, bshd[0], bshd[1], bshd[2], name), device, 1, args.attn_repeats
                )
            r: dict[str, Any] = {"fwd_s": statistics.median(tf), "fwd_tflops": fwd_flops / statistics.median(tf) / 1e12}
            if name != "fp8":

                def fwd_bwd(bshd: list[torch.Tensor] = bshd, name: str = name) -> None:
                    o = attention(bshd[0], bshd[1], bshd[2], name)
                    torch.autograd.grad(o, (q, k, v), dout)

                tb, _ = timed(fwd_bwd, device, 1, args.attn_repeats)
                r["fwd_bwd_s"] = statistics.median(tb)
                r["fwd_bwd_tflops"] = 3.5 * fwd_flops / statistics.median(tb) / 1e12
            if ref_small is None:
                ref_small = out_small.detach()
            r["rel_err_vs_first"] = rel_err(out_small.detach(), ref_small)
            results[name] = r
            bwd = ""
            if "fwd_bwd_s" in r:
                bwd = f", fwd+bwd {r['fwd_bwd_s'] * 1e3:.1f} ms ({r['fwd_bwd_tflops']:.0f} TFLOP/s)"
            log(
                f"{label} {name}: fwd {r['fwd_s'] * 1e3:.1f} ms ({r['fwd_tflops']:.0f} TFLOP/s){bwd}, "
                f"err {r['rel_err_vs_first']:.1e}"
            )
        except Exception as exc:  # a backend that does not run here is skipped, not fatal
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            log(f"{label} {name}: unavailable ({results[name]['error'][:200]})")
    ok = {
        n: r
        for n, r in results.items()
        if isinstance(r, dict) and "fwd_bwd_s" in r and r["rel_err_vs_first"] < 2e-2 and n != "fp8"
    }
    results["best_fwd"] = min(ok, key=lambda n: ok[n]["fwd_s"]) if ok else None
    results["best_fwd_bwd"] = min(ok, key=lambda n: ok[n]["fwd_bwd_s"]) if ok else None
    return results


def sdpa_grad_check(
    cfg: dict[str, Any], device: torch.device, sizes: tuple[tuple[int, int], ...] = ((4096, 4096), (32760, 32760))
) -> dict[str, Any]:
    """Gradients of each SDPA backend against a float32 reference, in the model's layouts.

    ``sizes`` are (query tokens, key tokens). q, k, v are (B, S, H, D) tensors seen as (B, H, S, D) (as both
    attention processors pass them); the output gradient arrives either as the processors produce it (contiguous
    in (B, S, H*D), a strided view in (B, H, S, D)) or contiguous in (B, H, S, D).
    """
    from torch.nn.attention import sdpa_kernel

    heads, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
    out: dict[str, Any] = {}
    for s_q, s_kv in sizes:
        g = torch.Generator(device=device).manual_seed(11)
        base = [torch.randn(1, n, heads, hd, generator=g, device=device).bfloat16() for n in (s_q, s_kv, s_kv)]
        gout = torch.randn(1, s_q, heads * hd, generator=g, device=device).bfloat16()

        def grads(
            backend: str,
            dtype: torch.dtype,
            layout: str,
            compiled: bool = False,
            base: list[torch.Tensor] = base,
            gout: torch.Tensor = gout,
            s_q: int = s_q,
        ) -> list[torch.Tensor]:
            leaves = [b.to(dtype).requires_grad_() for b in base]

            def f(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                with sdpa_kernel([sdpa_backends()[backend]]):
                    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
                if layout == "model":
                    return o.transpose(1, 2).flatten(2, 3)
                return o

            fn = torch.compile(f) if compiled else f
            o = fn(*leaves)
            go = gout.to(dtype)
            if layout != "model":
                go = go.view(1, s_q, heads, hd).transpose(1, 2).contiguous()
            return [o.detach().float(), *(x.float() for x in torch.autograd.grad(o, leaves, go))]

        ref = grads("math" if s_q * s_kv <= 4096 * 4096 else "efficient", torch.float32, "model")
        for backend in ("cudnn", "flash", "efficient"):
            for layout, compiled in (("model", False), ("contiguous", False), ("model", True)):
                key = f"S{s_q}x{s_kv}/{backend}/{layout}{'/compiled' if compiled else ''}"
                try:
                    got = grads(backend, torch.bfloat16, layout, compiled)
                    if layout != "model":
                        got[0] = got[0].transpose(1, 2).flatten(2, 3)
                    out[key] = {n: rel_err(a, b) for n, a, b in zip(("out", "dq", "dk", "dv"), got, ref, strict=True)}
                except Exception as exc:
                    out[key] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
                log(f"sdpa grads {key}: {out[key]}")
    return out


def forward_fn(
    model: ReCamMasterTransformer, inp: dict[str, torch.Tensor], backend: str | None, target_only: bool = False
) -> Callable[[], Any]:
    def run() -> torch.Tensor:
        with torch.no_grad(), attention_context(backend):
            return model(**inp, target_only=target_only)[0]

    return run


def train_fn(
    model: ReCamMasterTransformer,
    inp: dict[str, torch.Tensor],
    target: torch.Tensor,
    opt: torch.optim.Optimizer | None,
    backend: str | None,
    target_only: bool = False,
) -> Callable[[], Any]:
    t = target.shape[2]

    def run() -> torch.Tensor:
        with attention_context(backend):
            out = model(**inp, target_only=target_only)[0]
            loss = F.mse_loss(out[:, :, :t].float(), target.float())
            loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss.detach()

    return run


def grads_snapshot(model: ReCamMasterTransformer) -> dict[str, torch.Tensor]:
    out = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, n
            out[n] = p.grad.detach().clone()
            p.grad = None
    return out


GRAD_GROUPS = {
    "attn1_qk": (".attn1.to_q.", ".attn1.to_k.", ".attn1.norm_q.", ".attn1.norm_k."),
    "attn1_vo": (".attn1.to_v.", ".attn1.to_out."),
    "projector": (".projector.",),
    "cam_encoder": (".cam_encoder.",),
}


def grad_errors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Relative L2 error of all trainable gradients, per parameter group, and the worst single tensor."""

    def group_err(names: list[str]) -> float:
        num = sum(float((a[n].double() - b[n].double()).square().sum()) for n in names)
        den = sum(float(b[n].double().square().sum()) for n in names)
        return math.sqrt(num / max(den, 1e-300))

    per = {n: rel_err(a[n], b[n]) for n in a}
    worst = max(per, key=lambda n: per[n])
    out: dict[str, Any] = {"all": group_err(sorted(a))}
    for g, pats in GRAD_GROUPS.items():
        out[g] = group_err([n for n in a if any(p in n for p in pats)])
    out["worst_param"] = worst
    out["worst_param_rel_err"] = per[worst]
    return out


def calibrate_block(
    model: ReCamMasterTransformer, inp: dict[str, torch.Tensor], backend: str | None, device: torch.device
) -> dict[str, float]:
    """Saved-activation bytes and fwd+bwd time of one (compiled) block at full size, without recomputation."""
    block = model.blocks[1]
    with torch.no_grad():
        x = model.patch_embedding(inp["hidden_states"]).flatten(2).transpose(1, 2).contiguous()
        rope = model.rope(inp["hidden_states"])
        temb, tproj, enc, _ = model.condition_embedder(inp["timestep"], inp["encoder_hidden_states"], None)
        tproj = tproj.unflatten(1, (6, -1))
    x.requires_grad_(True)

    def step() -> int:
        sync(device)
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        with attention_context(backend):
            y = block(x, enc, tproj, rope, inp["cam_emb"])
        sync(device)
        saved = (torch.cuda.memory_allocated(device) if device.type == "cuda" else 0) - before
        y.float().square().mean().backward()
        return saved

    times, saved = timed(step, device, 1, 2)
    for p in model.parameters():
        p.grad = None
    return {"saved_bytes": float(saved), "fwd_bwd_s": statistics.median(times), "input_bytes": float(x.numel() * 2)}


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny config (script smoke test)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--latent",
        type=int,
        nargs=3,
        default=None,
        metavar=("T", "H", "W"),
        help="target latent frames/height/width (default 21 60 104; tiny: 3 8 12)",
    )
    ap.add_argument("--text-len", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--attn-repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument(
        "--memory-fraction",
        type=float,
        default=0.88,
        help="share of GPU memory the optimised training step may plan for",
    )
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--train-variants",
        default="attention+qkv,attention",
        help="comma list of optimised training-step variants: attention, attention+qkv, blocks "
        "(blocks also runs as a fallback when the others fail)",
    )
    ap.add_argument(
        "--sdpa-grad-check", action="store_true", help="also check SDPA gradients per backend/layout (see docstring)"
    )
    ap.add_argument("--max-autotune-forward", action="store_true", help="also time a max-autotune compiled forward")
    ap.add_argument("--autotune-deadline-s", type=float, default=360.0, help="skip max-autotune after this runtime")
    ap.add_argument(
        "--only",
        choices=("all", "forward"),
        default="all",
        help="forward: only the compiled denoising forward, per --forward-variants (no baseline, no training)",
    )
    ap.add_argument(
        "--forward-variants",
        default="none,all",
        help="with --only forward: comma list of inference-fusion sets ('none', 'all', or names from "
        "recam.model.INFERENCE_FUSIONS joined by '+'), each optionally suffixed '@cg' (CUDA graphs, "
        "mode='reduce-overhead'), '@cdt' (inductor coordinate_descent_tuning), '@tgt' (target_only=True: "
        "only the target half of the output, as sampling uses it; errors compare target halves) and/or a "
        "self-attention kernel of recam.attn_kernels.ATTENTION_BACKENDS ('@fa4', '@fp8'; default cudnn)",
    )
    ap.add_argument("--fp32-ref", action="store_true", help="error of each forward (variant) against a float32 forward")
    ap.add_argument(
        "--train-backend",
        choices=ATTENTION_BACKENDS,
        default=None,
        help="self-attention kernel of the optimised training step (default: fastest fwd+bwd measured here)",
    )
    ap.add_argument(
        "--forward-fusions",
        default="all@cdt@tgt",
        help="full run: the optimised forward's variant, same syntax as --forward-variants (without @cg); "
        "an attention backend option (e.g. '@fa4') pins its self-attention kernel (default: fastest measured)",
    )
    ap.add_argument(
        "--train-full-output",
        action="store_true",
        help="optimised training steps on the full 2T-frame output (default: target_only=True, as recam train)",
    )
    ap.add_argument("--variants-deadline-s", type=float, default=400.0, help="skip forward variants after this runtime")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = ap.parse_args(argv)
    if args.latent is None:
        args.latent = [3, 8, 12] if args.tiny else [21, 60, 104]
    if args.tiny:
        args.text_len = min(args.text_len, 16)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)

    import diffusers

    res: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "latent_target": args.latent,
        "text_len": args.text_len,
        "fa4_fwd_config": format_fa4_fwd_config(FA4_FWD_CONFIG),  # RECAM_FA4_FWD, or FA4's heuristic ("default")
    }
    PROGRESS.update(res=res, out=args.out)
    log(f"torch {res['torch']}, diffusers {res['diffusers']}, device {res['device']}, FA4 fwd {res['fa4_fwd_config']}")
    try:
        run_all(args, device, res)
    except Exception:
        res["fatal"] = traceback.format_exc()
        log(res["fatal"])
    print_summary(res)
    save(res, args.out)
    return 0 if "fatal" not in res else 1


def fp32_forward(model: ReCamMasterTransformer, inp: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """The same weights and inputs in float32: stock processor, eager, no TF32 (efficient SDPA kernel on CUDA)."""
    import copy

    ref_model = copy.deepcopy(model).float()
    ref_model.set_fast_attention(False)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        inp32 = {k: (v.float() if v.is_floating_point() else v) for k, v in inp.items()}
        out = forward_fn(ref_model, inp32, "efficient" if device.type == "cuda" else None)()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    del ref_model
    return out


def parse_forward_variant(spec: str) -> tuple[tuple[str, ...], bool, bool, bool]:
    """'all@cg@tgt' -> (fusions, cuda_graphs, coordinate_descent_tuning, target_only)."""
    from recam.model import INFERENCE_FUSIONS

    name, *opts = spec.split("@")
    unknown_opts = set(opts) - {"cg", "cdt", "tgt", *ATTENTION_BACKENDS}
    if unknown_opts:
        raise ValueError(
            f"forward variant {spec!r}: unknown option(s) {sorted(unknown_opts)}; allowed: cg, cdt, tgt or an "
            f"attention backend {list(ATTENTION_BACKENDS)}"
        )
    if name == "none":
        fusions: tuple[str, ...] = ()
    elif name == "all":
        fusions = tuple(INFERENCE_FUSIONS)
    else:
        fusions = tuple(name.split("+"))
        bad = set(fusions) - set(INFERENCE_FUSIONS)
        if bad:
            raise ValueError(f"forward variant {spec!r}: unknown fusion(s) {sorted(bad)}; from {INFERENCE_FUSIONS}")
    return fusions, "cg" in opts, "cdt" in opts, "tgt" in opts


def variant_backend(spec: str, default: str | None) -> str | None:
    """The self-attention kernel a variant names ('all@cdt@fa4' -> 'fa4'), else ``default``."""
    named = [o for o in spec.split("@")[1:] if o in ATTENTION_BACKENDS]
    return named[-1] if named else default


def run_forward_variants(args: argparse.Namespace, device: torch.device, res: dict[str, Any]) -> None:
    """Compiled denoising forward of the optimised model per inference-fusion variant: time, peak memory,
    error against a float32 forward (``--fp32-ref``) and against the first variant, top CUDA kernels."""
    model, cfg = build(args, device)
    inp = make_inputs(cfg, args, device)
    t, h, w = args.latent
    flops_f = flops_per_forward(cfg, 2 * t, h, w, args.text_len)
    res["tokens"] = flops_f["tokens"]
    res["flops_forward"] = flops_f["total"]
    specs = [v for v in args.forward_variants.split(",") if v]
    parsed = {v: parse_forward_variant(v) for v in specs}  # fail early on typos
    backend = "cudnn" if device.type == "cuda" else None
    res["optimised_backends"] = {"forward": {"self": backend, "cross": backend}}
    ref = None
    if args.fp32_ref:
        t0 = time.perf_counter()
        ref = fp32_forward(model, inp, device)
        sync(device)
        res["fp32_forward_s"] = time.perf_counter() - t0
        log(f"fp32 reference forward: {res['fp32_forward_s']:.1f} s")
    model.disable_gradient_checkpointing()
    torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    res["forward_variants"] = {}
    first_out = None
    for spec in specs:
        if time.perf_counter() - T0 > args.variants_deadline_s:
            res["forward_variants"][spec] = {"skipped": "variants deadline"}
            log(f"forward variant {spec}: skipped (deadline)")
            continue
        fusions, cuda_graphs, cdt, target_only = parsed[spec]
        r: dict[str, Any] = {
            "fusions": list(fusions),
            "cuda_graphs": cuda_graphs,
            "coordinate_descent_tuning": cdt,
            "target_only": target_only,
        }
        flops_v = flops_per_forward(cfg, 2 * t, h, w, args.text_len, target_only=target_only)["total"]
        try:
            torch._dynamo.reset()
            for block in model.blocks:
                block._compiled_call_impl = None
            self_backend = variant_backend(spec, backend)
            r["self_backend"] = self_backend
            model.set_fast_attention(True, self_backend=self_backend, cross_backend=backend, inference_fusions=fusions)
            if not args.no_compile:
                model.compile_blocks(
                    coordinate_descent_tuning=cdt, **({"mode": "reduce-overhead"} if cuda_graphs else {})
                )
            fwd = forward_fn(model, inp, None, target_only)

            def run(fwd: Callable[[], Any] = fwd, cuda_graphs: bool = cuda_graphs) -> torch.Tensor:
                if cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                return fwd().clone() if cuda_graphs else fwd()

            reset_peak(device)
            t0 = time.perf_counter()
            run()
            sync(device)
            r["compile_s"] = time.perf_counter() - t0
            times, out = timed(run, device, 1, args.repeats)
            r.update(summary(times, peak_gib(device), flops_v))
            r["flops"] = flops_v
            # errors of the output as returned (target-only variants: the target half) and of the target half
            if ref is not None:
                r["rel_err_vs_fp32"] = rel_err(out, ref[:, :, : out.shape[2]])
                r["rel_err_target_half_vs_fp32"] = rel_err(out[:, :, :t], ref[:, :, :t])
            if first_out is None:
                first_out = out
            else:
                n = min(out.shape[2], first_out.shape[2])
                r["rel_err_vs_first_variant"] = rel_err(out[:, :, :n], first_out[:, :, :n])
            del out
            if device.type == "cuda":
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    run()
                    sync(device)
                avg = prof.key_averages()
                r["profile_cuda_total_s"] = sum(e.self_device_time_total for e in avg) / 1e6
                r["profile_top"] = [
                    {"name": e.key[:160], "calls": e.count, "cuda_ms": e.self_device_time_total / 1e3}
                    for e in sorted(avg, key=lambda e: -e.self_device_time_total)[:24]
                ]
            extra = f", vs fp32 {r['rel_err_vs_fp32']:.3e}" if "rel_err_vs_fp32" in r else ""
            log(f"forward variant {spec} (compile {r['compile_s']:.1f} s): {fmt(r)}{extra}")
            if "profile_top" in r:
                log(
                    f"  profile CUDA total {r['profile_cuda_total_s']:.3f} s; top kernels:\n"
                    + "\n".join(f"    {k['cuda_ms']:9.2f} ms {k['calls']:4d}x {k['name']}" for k in r["profile_top"])
                )
        except Exception as exc:
            r["error"] = traceback.format_exc()[-2000:]
            log(f"forward variant {spec} failed: {type(exc).__name__}: {exc}"[:600])
        res["forward_variants"][spec] = r
    ok = {k: v for k, v in res["forward_variants"].items() if "median_s" in v}
    if ok:
        best = min(ok, key=lambda k: ok[k]["median_s"])
        res["optimised_forward"] = {**ok[best], "variant": best}
        log(f"best forward variant: {best}: {fmt(ok[best])}")


def run_all(args: argparse.Namespace, device: torch.device, res: dict[str, Any]) -> None:
    if device.type == "cuda":
        a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
        tt, _ = timed(lambda: a @ a, device, 3, 10)
        res["gemm_8192_tflops"] = 2 * 8192**3 / statistics.median(tt) / 1e12
        log(f"bf16 GEMM 8192^3: {res['gemm_8192_tflops']:.0f} TFLOP/s")
        del a

    if args.only == "forward":
        run_forward_variants(args, device, res)
        return
    model, cfg = build(args, device)
    inp = make_inputs(cfg, args, device)
    t, h, w = args.latent
    flops_f = flops_per_forward(cfg, 2 * t, h, w, args.text_len)
    flops_t = flops_per_train_step(cfg, 2 * t, h, w, args.text_len)
    res["tokens"] = flops_f["tokens"]
    res["flops_forward"] = flops_f["total"]
    res["flops_train_step"] = flops_t
    g = torch.Generator(device=device).manual_seed(args.seed + 2)
    target = torch.randn(1, cfg["in_channels"], t, h, w, generator=g, device=device).bfloat16()
    params = model.trainable_parameters()
    res["trainable_params"] = sum(p.numel() for p in params)
    res["total_params"] = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=0.0, weight_decay=0.0, fused=device.type == "cuda")
    log(
        f"model: {res['total_params'] / 1e9:.3f} B params ({res['trainable_params'] / 1e6:.0f} M trainable), "
        f"{res['tokens']} tokens, fwd {flops_f['total'] / 1e12:.0f} TFLOP, train {flops_t / 1e12:.0f} TFLOP"
    )

    # ---------------- attention backends
    if device.type == "cuda":
        if args.sdpa_grad_check:
            res["sdpa_grad_check"] = sdpa_grad_check(cfg, device)
        res["attention"] = bench_attention(args, cfg, device)
        res["cross_attention"] = bench_attention(args, cfg, device, kv_len=args.text_len)
        fwd_backend = variant_backend(args.forward_fusions, res["attention"]["best_fwd"])
        train_backend = args.train_backend or res["attention"]["best_fwd_bwd"]
        cross_fwd = res["cross_attention"]["best_fwd"]
        cross_train = res["cross_attention"]["best_fwd_bwd"]
    else:
        fwd_backend = train_backend = cross_fwd = cross_train = None
    res["optimised_backends"] = {
        "forward": {"self": fwd_backend, "cross": cross_fwd},
        "train": {"self": train_backend, "cross": cross_train},
    }

    ref32 = None
    if args.fp32_ref:
        t0 = time.perf_counter()
        ref32 = fp32_forward(model, inp, device)
        sync(device)
        res["fp32_forward_s"] = time.perf_counter() - t0
        log(f"fp32 reference forward: {res['fp32_forward_s']:.1f} s")

    # ---------------- baseline
    base_out = base_grads = None
    alt_grads: dict[str, torch.Tensor] | None = None
    alt: list[str] = []
    if not args.skip_baseline:
        model.set_fast_attention(False)
        reset_peak(device)
        times, base_out = timed(forward_fn(model, inp, None), device, 1, args.repeats)
        res["baseline_forward"] = summary(times, peak_gib(device), flops_f["total"])
        if ref32 is not None:
            res["baseline_forward"]["rel_err_vs_fp32"] = rel_err(base_out, ref32)
            res["baseline_forward"]["rel_err_target_half_vs_fp32"] = rel_err(base_out[:, :, :t], ref32[:, :, :t])
        log(f"baseline forward: {fmt(res['baseline_forward'])}")
        # noise floor: the same stock model under each other working SDPA backend (eager)
        res["noise_floor_forward_rel_err"] = {}
        working = [n for n, r in res.get("attention", {}).items() if n in sdpa_backends() and "fwd_s" in r]
        for name in [n for n in working if n != "efficient"]:
            _, other = timed(forward_fn(model, inp, name), device, 0, 1)
            res["noise_floor_forward_rel_err"][name] = rel_err(other, base_out)
            del other
        log(f"stock model under other SDPA backends, rel err vs baseline: {res['noise_floor_forward_rel_err']}")

        model.enable_gradient_checkpointing()
        model.recompute_blocks = None
        train_fn(model, inp, target, None, None)()  # gradients of identical weights, kept for comparison
        base_grads = grads_snapshot(model)
        alt = [n for n in ("flash", "efficient") if n in res.get("noise_floor_forward_rel_err", {})][:1]
        for name in alt:  # noise floor of the gradient comparison: same stock model, other attention kernel
            train_fn(model, inp, target, None, name)()
            alt_grads = grads_snapshot(model)
            res["noise_floor_grads"] = {"backend": name, **grad_errors(alt_grads, base_grads)}
            log(f"stock model grads under {name} vs baseline: {res['noise_floor_grads']}")
        reset_peak(device)
        times, _ = timed(train_fn(model, inp, target, opt, None), device, 0, max(1, args.repeats - 1))
        res["baseline_train"] = summary(times, peak_gib(device), flops_t)
        res["baseline_train"]["recompute_blocks"] = len(model.blocks)
        log(f"baseline train step (full-block recompute): {fmt(res['baseline_train'])}")

    # ---------------- optimised forward (inference fusions and tuned inductor kernels: see --forward-fusions)
    fusions, _, cdt, tgt = parse_forward_variant(args.forward_fusions)
    res["optimised_forward_fusions"] = {"fusions": list(fusions), "coordinate_descent_tuning": cdt, "target_only": tgt}
    flops_fo = flops_per_forward(cfg, 2 * t, h, w, args.text_len, target_only=tgt)["total"]
    model.set_fast_attention(True, self_backend=fwd_backend, cross_backend=cross_fwd, inference_fusions=fusions)
    model.disable_gradient_checkpointing()
    if not args.no_compile:
        torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
        model.compile_blocks(coordinate_descent_tuning=cdt)
    reset_peak(device)
    t0 = time.perf_counter()
    forward_fn(model, inp, None, tgt)()
    sync(device)
    res["compile_forward_s"] = time.perf_counter() - t0
    times, opt_out = timed(forward_fn(model, inp, None, tgt), device, 1, args.repeats)
    res["optimised_forward"] = summary(times, peak_gib(device), flops_fo)
    if base_out is not None:  # target_only returns the target half
        res["optimised_forward"]["rel_err_vs_baseline"] = rel_err(opt_out, base_out[:, :, : opt_out.shape[2]])
    if ref32 is not None:
        res["optimised_forward"]["rel_err_target_half_vs_fp32"] = rel_err(opt_out[:, :, :t], ref32[:, :, :t])
        log(f"optimised forward, target half vs fp32: {res['optimised_forward']['rel_err_target_half_vs_fp32']:.3e}")
    log(
        f"optimised forward ({fwd_backend}, first call {res['compile_forward_s']:.1f} s): "
        f"{fmt(res['optimised_forward'])}"
    )
    del opt_out
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            forward_fn(model, inp, None, tgt)()
            sync(device)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60)
        res["profile_forward_top"] = table
        log("optimised forward, top kernels:\n" + table)

    # ---------------- optimised training step variants (plain compile, as measured before the forward fusions)
    res["train_variants"] = {}
    if not args.no_compile and cdt:
        torch._dynamo.reset()
        for block in model.blocks:
            block._compiled_call_impl = None
        model.compile_blocks()
    model.set_fast_attention(True, self_backend=train_backend, cross_backend=cross_train)
    ref_grads = {"baseline": base_grads, "stock_" + str(alt[0] if alt else ""): alt_grads}
    for variant in args.train_variants.split(","):
        try:
            run_train_variant(variant, model, inp, target, opt, None, ref_grads, args, device, res)
        except Exception as exc:
            for p in model.parameters():
                p.grad = None
            res["train_variants"][variant] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
            log(f"train variant {variant} failed: {res['train_variants'][variant]['error'][:300]}")
    ok = {k: v for k, v in res["train_variants"].items() if "median_s" in v}
    if not ok and "blocks" not in res["train_variants"]:  # fallback: whole-block recomputation of some blocks
        try:
            run_train_variant("blocks", model, inp, target, opt, None, ref_grads, args, device, res)
        except Exception as exc:
            res["train_variants"]["blocks"] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
        ok = {k: v for k, v in res["train_variants"].items() if "median_s" in v}
    if ok:
        best = min(ok, key=lambda k: ok[k]["median_s"])
        res["optimised_train"] = {**ok[best], "variant": best}
        log(f"optimised train step: variant {best}: {fmt(res['optimised_train'])}")
    res["dynamo_counters"] = {
        k: dict(v) for k, v in torch._dynamo.utils.counters.items() if k in ("stats", "graph_break")
    }

    # ---------------- optional: forward with max-autotune GEMMs (only when time is left)
    if args.max_autotune_forward and not args.no_compile and time.perf_counter() - T0 < args.autotune_deadline_s:
        torch._dynamo.reset()
        model.set_selective_recompute(None)
        model.disable_gradient_checkpointing()
        for block in model.blocks:
            block._compiled_call_impl = None
        model.compile_blocks(mode="max-autotune-no-cudagraphs")
        t0 = time.perf_counter()
        model.set_fast_attention(True, self_backend=fwd_backend, cross_backend=cross_fwd)
        forward_fn(model, inp, None)()
        sync(device)
        compile_s = time.perf_counter() - t0
        reset_peak(device)
        times, out = timed(forward_fn(model, inp, None), device, 1, args.repeats)
        res["optimised_forward_max_autotune"] = summary(times, peak_gib(device), flops_f["total"])
        res["optimised_forward_max_autotune"]["compile_s"] = compile_s
        if base_out is not None:
            res["optimised_forward_max_autotune"]["rel_err_vs_baseline"] = rel_err(out, base_out)
        log(
            f"optimised forward, max-autotune (compile {compile_s:.0f} s): {fmt(res['optimised_forward_max_autotune'])}"
        )


def run_train_variant(
    variant: str,
    model: ReCamMasterTransformer,
    inp: dict[str, torch.Tensor],
    target: torch.Tensor,
    opt: torch.optim.Optimizer,
    backend: str | None,
    ref_grads: dict[str, dict[str, torch.Tensor] | None],
    args: argparse.Namespace,
    device: torch.device,
    res: dict[str, Any],
) -> None:
    """One training-step configuration of the optimised model (compiled blocks, fast attention).

    ``attention`` / ``attention+qkv``: selective recomputation inside every block (keeps attention outputs);
    ``blocks``: no recomputation except whole blocks, as many as a one-block memory calibration says must be.
    """
    torch._dynamo.reset()  # fresh training graphs for each recomputation policy
    n_blocks = len(model.blocks)
    info: dict[str, Any] = {}
    if variant in ("attention", "attention+qkv"):
        model.disable_gradient_checkpointing()
        model.set_selective_recompute(variant)
    elif variant == "blocks":
        model.set_selective_recompute(None)
        model.disable_gradient_checkpointing()
        if device.type == "cuda":
            cal = calibrate_block(model, inp, backend, device)
            model.enable_gradient_checkpointing()
            model.recompute_blocks = None
            reset_peak(device)
            train_fn(model, inp, target, None, backend)()  # full recompute: the memory floor
            floor = torch.cuda.max_memory_allocated(device)
            grads_snapshot(model)
            total = torch.cuda.get_device_properties(device).total_memory
            per_block = max(cal["saved_bytes"] - cal["input_bytes"], 1.0)
            keep = int(max(0, min(n_blocks, (args.memory_fraction * total - floor) // per_block)))
            info["calibration"] = {**cal, "full_recompute_peak_gib": floor / 2**30, "per_block_gib": per_block / 2**30}
            log(
                f"calibration: block saves {cal['saved_bytes'] / 2**30:.2f} GiB, fwd+bwd {cal['fwd_bwd_s'] * 1e3:.0f} "
                f"ms, full-recompute peak {floor / 2**30:.1f} GiB -> recompute {n_blocks - keep} of {n_blocks} blocks"
            )
        else:
            keep = n_blocks
        model.enable_gradient_checkpointing()
        model.recompute_blocks = n_blocks - keep
        info["recompute_blocks"] = n_blocks - keep
    else:
        raise ValueError(f"unknown train variant {variant!r}")
    tgt = not args.train_full_output  # as recam train: the loss reads the target half only
    info["target_only"] = tgt
    flops_v = flops_per_train_step(model.config, 2 * target.shape[2], *target.shape[3:], args.text_len, tgt)
    reset_peak(device)
    t0 = time.perf_counter()
    train_fn(model, inp, target, None, backend, tgt)()
    sync(device)
    info["first_step_s"] = time.perf_counter() - t0
    grads = grads_snapshot(model)
    reset_peak(device)
    times, _ = timed(train_fn(model, inp, target, opt, backend, tgt), device, 0, args.repeats)
    r = {**summary(times, peak_gib(device), flops_v), **info}
    for ref_name, ref in ref_grads.items():
        if ref is not None:
            r[f"grads_vs_{ref_name}"] = grad_errors(grads, ref)
    res["train_variants"][variant] = r
    log(f"train variant {variant}: {fmt(r)}; " + "; ".join(f"{k} {v}" for k, v in r.items() if k.startswith("grads")))
    model.set_selective_recompute(None)
    model.disable_gradient_checkpointing()
    model.recompute_blocks = None


def summary(times: list[float], peak: float, flops: float) -> dict[str, Any]:
    med = statistics.median(times)
    return {
        "times_s": times,
        "median_s": med,
        "peak_gib": peak,
        "tflops": flops / med / 1e12,
        "mfu_vs_989": flops / med / H100_BF16_DENSE_PEAK,
    }


def fmt(r: dict[str, Any]) -> str:
    extra = f", rel err {r['rel_err_vs_baseline']:.2e}" if "rel_err_vs_baseline" in r else ""
    return (
        f"{r['median_s']:.3f} s (runs {', '.join(f'{x:.3f}' for x in r['times_s'])}), peak {r['peak_gib']:.1f} GiB, "
        f"{r['tflops']:.0f} TFLOP/s, MFU {100 * r['mfu_vs_989']:.1f}%{extra}"
    )


def print_summary(res: dict[str, Any]) -> None:
    print("\n=== recam_gpu summary ===")
    print(f"{res.get('device')} | torch {res.get('torch')} | diffusers {res.get('diffusers')} | {res.get('date_utc')}")
    for key in ("baseline_forward", "optimised_forward", "optimised_forward_max_autotune", "baseline_train"):
        if key in res:
            print(f"{key:30s} {fmt(res[key])}")
    for key, r in res.get("forward_variants", {}).items():
        extra = f", vs fp32 {r['rel_err_vs_fp32']:.3e}" if "rel_err_vs_fp32" in r else ""
        err = r.get("error", r.get("skipped", "")).strip().splitlines()[-1:] if "median_s" not in r else []
        print(f"{'forward ' + key:30s} {fmt(r) + extra if 'median_s' in r else err}")
    for key, r in res.get("train_variants", {}).items():
        print(f"{'train ' + key:30s} {fmt(r) if 'median_s' in r else r}")
        for gk, g in r.items():
            if gk.startswith("grads_vs_"):
                vals = ", ".join(f"{k} {v:.2e}" for k, v in g.items() if isinstance(v, float))
                print(f"{'':30s} {gk}: {vals}")
    if "noise_floor_grads" in res:
        g = res["noise_floor_grads"]
        print(
            f"{'grad noise floor (' + g['backend'] + ')':30s} "
            + ", ".join(f"{k} {v:.2e}" for k, v in g.items() if isinstance(v, float))
        )
    if "optimised_train" in res:
        print(f"{'optimised_train':30s} {res['optimised_train']['variant']}: {fmt(res['optimised_train'])}")
    if "fatal" in res:
        print("FATAL:", res["fatal"].splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
