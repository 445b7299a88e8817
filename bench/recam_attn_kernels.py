"""Self-attention kernels of recam.attn_kernels at the DiT's shape (1 x 65,520 tokens x 12 heads x 128, bf16):
time, and relative L2 error against a float32 attention of the same inputs; sweeps the FP8 kernel's launch
configurations. q and k are RMS-normalised over the model width like the DiT's (weights 1), v standard normal.

    python bench/recam_attn_kernels.py --out DIR          # on the GPU; DIR/recam_attn_kernels.json
    python bench/recam_attn_kernels.py --only-fa4-sweep --best-out /tmp/fa4_best --out DIR
        # FA4 forward tile options only; the fastest (within error bounds) goes to /tmp/fa4_best in RECAM_FA4_FWD form
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recam import attn_kernels  # noqa: E402
from recam.attn_kernels import attention, fa4_available  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=65520)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only-fa4-sweep", action="store_true", help="only sweep FlashAttention-4's forward tiles")
    ap.add_argument("--best-out", type=Path, help="write the fastest FA4 forward config (RECAM_FA4_FWD form) here")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    h, d = 12, 128

    def rms(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.flatten(2).square().mean(-1)[..., None, None] + 1e-6)

    q, k = (rms(torch.randn(1, args.tokens, h, d, generator=g, device=dev)) for _ in range(2))
    v = torch.randn(1, args.tokens, h, d, generator=g, device=dev)
    ref = attention(q, k, v, "efficient").float()  # float32 inputs: float32 attention
    qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
    flops = 4 * args.tokens**2 * h * d
    res: dict[str, object] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tokens": args.tokens}

    def run(name: str) -> dict[str, float]:
        with torch.no_grad():
            out = attention(qb, kb, vb, name)
            torch.cuda.synchronize()
            times = []
            for _ in range(args.repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                attention(qb, kb, vb, name)
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
        t = statistics.median(times)
        r = {"fwd_s": t, "tflops": flops / t / 1e12, "rel_err_vs_fp32": float((out.float() - ref).norm() / ref.norm())}
        print(f"{name:40s} {t * 1e3:7.2f} ms {r['tflops']:5.0f} TFLOP/s  err {r['rel_err_vs_fp32']:.3e}", flush=True)
        return r

    if args.only_fa4_sweep:
        res["fa4_fwd_sweep"] = fa4_sweep(run, args.best_out)
        (args.out / "recam_fa4_sweep.json").write_text(json.dumps(res, indent=1))
        return 0
    kernels: dict[str, object] = {}
    for name in ("cudnn", "flash", *(["fa4"] if fa4_available() else []), "fp8"):
        try:
            kernels[name] = run(name)
        except Exception as exc:  # a kernel that does not run here is reported, not fatal
            kernels[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            print(name, kernels[name], flush=True)
    sweep: dict[str, object] = {}
    default = dict(attn_kernels.FP8_KERNEL_CONFIG)
    for block_n, warps, stages in itertools.product((64, 128), (4, 8), (2, 3, 4)):
        cfg = {"BLOCK_N": block_n, "num_warps": warps, "num_stages": stages}
        attn_kernels.FP8_KERNEL_CONFIG.update(cfg)
        key = f"fp8 n{block_n} w{warps} s{stages}"
        try:
            sweep[key] = {**cfg, **run("fp8")}
        except Exception as exc:
            sweep[key] = {**cfg, "error": f"{type(exc).__name__}: {exc}"[:300]}
            print(key, "failed", str(exc)[:200], flush=True)
    attn_kernels.FP8_KERNEL_CONFIG.clear()
    attn_kernels.FP8_KERNEL_CONFIG.update(default)
    res["kernels"], res["fp8_sweep"] = kernels, sweep
    if fa4_available():
        res["fa4_fwd_sweep"] = fa4_sweep(run, args.best_out)
    (args.out / "recam_attn_kernels.json").write_text(json.dumps(res, indent=1))
    return 0


#: FA4 sm90 forward options tried (tile M x N, P V from registers, intra-warpgroup overlap); FA4's own choice for
#: head dim 128 is 128x128,rs,ol; FA3's C++ table (hopper/tile_size.h) uses 128x176 for non-causal head dim 128
FA4_SWEEP = (
    "default", "128x112,rs,ol", "128x144,rs,ol", "128x160,rs,ol", "128x176,rs,ol", "128x192,rs,ol",
    "128x128,nors,ol", "128x176,nors,ol", "128x128,rs,nool", "128x176,rs,nool", "192x112,nors,ol", "192x128,nors,ol",
)


def fa4_sweep(run: Callable[[str], dict[str, float]], best_out: Path | None) -> dict[str, object]:
    """Time FA4's forward under each of :data:`FA4_SWEEP`; the fastest whose error is within 1 % of the default's
    is written to ``best_out`` (``default`` when none beats it by more than 0.5 %)."""
    saved = dict(attn_kernels.FA4_FWD_CONFIG)
    sweep: dict[str, object] = {}
    for text in FA4_SWEEP:
        attn_kernels.FA4_FWD_CONFIG.clear()
        attn_kernels.FA4_FWD_CONFIG.update(attn_kernels.parse_fa4_fwd_config(text))
        try:
            sweep[text] = run("fa4")
        except Exception as exc:  # a tile that does not fit (registers, shared memory) is reported, not fatal
            sweep[text] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print("fa4", text, "failed", str(exc)[:200], flush=True)
    attn_kernels.FA4_FWD_CONFIG.clear()
    attn_kernels.FA4_FWD_CONFIG.update(saved)
    ok = {k: v for k, v in sweep.items() if isinstance(v, dict) and "fwd_s" in v}
    best = "default"
    if "default" in ok:
        base = ok["default"]
        good = {k: v for k, v in ok.items() if v["rel_err_vs_fp32"] <= 1.01 * base["rel_err_vs_fp32"]}
        fastest = min(good, key=lambda k: good[k]["fwd_s"])
        if good[fastest]["fwd_s"] < 0.995 * base["fwd_s"]:
            best = fastest
    print("fa4 forward: best", best, flush=True)
    if best_out is not None:
        best_out.write_text(best + "\n")
    return {"configs": sweep, "best": best}


if __name__ == "__main__":
    raise SystemExit(main())
