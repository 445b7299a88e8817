"""Wan VAE encode/decode of one 81 x 480 x 832 video on the GPU at several spatial tile sizes: time, peak memory and
difference from the untiled result (for choosing ``recam infer --tile``'s default).

    python bench/recam_vae_gpu.py --wan-dir DIR --out OUTDIR     # DIR from `recam tiny-wan-dir DIR --full-size`
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recam.vae import decode_latents, encode_video, load_vae, set_tiling  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wan-dir", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--tiles", default="0,256,384,512", help="comma-separated tile sizes in px (0 = untiled)")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    dev = torch.device("cuda")
    vae = load_vae(args.wan_dir, dev, torch.bfloat16)
    rng = np.random.default_rng(0)
    # smooth random video (blurred noise) so the VAE sees image-like content
    small = rng.integers(0, 256, (args.frames, args.height // 16, args.width // 16, 3), dtype=np.uint8)
    frames = np.ascontiguousarray(small.repeat(16, 1).repeat(16, 2))
    res: dict[str, object] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                              "cudnn_benchmark": args.cudnn_benchmark, "shape": [args.frames, args.height, args.width]}
    ref_lat = ref_vid = None
    rows = {}
    for tile in (int(t) for t in args.tiles.split(",")):
        set_tiling(vae, tile or None)
        for _rep in range(1 if rows else 2):  # the very first run is a warm-up (CUDA context, kernels)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            lat = encode_video(vae, frames)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            mem_enc = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
            vid = decode_latents(vae, lat)
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            mem_dec = torch.cuda.max_memory_allocated() / 2**30
        if ref_lat is None:
            ref_lat, ref_vid = lat, vid.astype(np.float32)
        row = {"encode_s": t1 - t0, "decode_s": t2 - t1, "encode_peak_gib": mem_enc, "decode_peak_gib": mem_dec,
               "latent_rel_diff_vs_first": float((lat - ref_lat).norm() / ref_lat.norm()),
               "video_mean_abs_diff_vs_first": float(np.abs(vid.astype(np.float32) - ref_vid).mean())}
        rows[str(tile)] = row
        print(f"tile {tile:4d}: encode {row['encode_s']:.2f} s ({mem_enc:.1f} GiB), decode {row['decode_s']:.2f} s "
              f"({mem_dec:.1f} GiB), latent diff {row['latent_rel_diff_vs_first']:.2e}", flush=True)
    res["tiles"] = rows
    (args.out / "recam_vae_gpu.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
