"""Worker for tests/test_recam_parallel.py, run under ``torchrun --nproc-per-node N`` on CPU (gloo).

Each rank builds the same tiny random ReCamMaster transformer and inputs, computes the single-process output with
an untouched copy, then the output under ``--mode`` (recam.parallel.parallelize) and writes, on rank 0, a JSON
with both outputs' max difference and the outputs themselves (safetensors) to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True, help="comma-separated modes")
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--heads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import torch.distributed as dist
    from safetensors.torch import save_file

    from recam.model import ReCamMasterTransformer
    from recam.parallel import init_distributed, parallelize

    info = init_distributed("cpu")
    results = {}
    tensors = {}
    for mode in args.mode.split(","):
        torch.manual_seed(0)
        model = ReCamMasterTransformer.tiny(num_attention_heads=args.heads, attention_head_dim=24 // args.heads)
        model.eval()
        with torch.no_grad():  # camera modules away from their (neutral) init so that they matter
            for blk in model.blocks:
                blk.cam_encoder.weight.normal_(0, 0.5)
                blk.projector.weight.add_(0.1 * torch.randn_like(blk.projector.weight))
        model.set_fast_attention(True)
        ref_model = copy.deepcopy(model)
        t, s = args.frames, args.size
        x = torch.randn(2, 16, 2 * t, s, s)
        ts = torch.tensor([700.0, 700.0])
        ctx = torch.randn(2, 7, model.config["text_dim"])
        cam = torch.randn(1, t, 12).expand(2, -1, -1)
        with torch.no_grad():
            (ref,) = ref_model(x, ts, ctx, cam, return_dict=False)
            par = parallelize(model, mode)
            (out,) = par(x, ts, ctx, cam, return_dict=False)
            (again,) = par(x, ts, ctx, cam, return_dict=False)  # the hooks keep no state between calls
            (half,) = par(x, ts, ctx, cam, return_dict=False, target_only=True)
        tensors.update({f"{mode}.ref": ref.contiguous(), f"{mode}.out": out.contiguous(),
                        f"{mode}.again": again.contiguous(), f"{mode}.target_only": half.contiguous()})
        results[mode] = {
            "max_abs_diff": float((out - ref).abs().max()),
            "ref_abs_max": float(ref.abs().max()),
            "wrapper": type(par).__name__,
            "attn1_processor": type(model.blocks[0].attn1.processor).__name__,
            "block_hooks": len(model.blocks[0]._forward_pre_hooks),
        }
    if info.rank == 0:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(Path(args.out) / "outputs.safetensors"))
        (Path(args.out) / "result.json").write_text(json.dumps({"world_size": info.world_size, "modes": results}))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
