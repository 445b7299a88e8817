"""Multi-GPU scaling of ``recam``: DDP training, sharded prepare and parallel inference, 1 -> 2 -> 4 processes.

The launcher starts one ``torchrun --nproc-per-node N`` per (task, N) with ``NCCL_NVLS_ENABLE=0`` (NVLink multicast
off, as the lent machines require) and collects what rank 0 of each run reports:

* ``train``: DDP training steps of the ReCamMaster transformer (random weights, bf16 on GPU, batch 1 per GPU,
  fast attention, gradient checkpointing unless ``--no-gradient-checkpointing``) on random latents of
  ``--frames x --height x --width`` (default 81 x 480 x 832 -> 65,520 tokens): seconds per step and samples/s,
  scaling efficiency ``thr(N) / (N thr(1))``, peak GPU memory.
* ``prepare``: the real ``recam.prepare.prepare`` (decode, resize, VAE, T5), one shard per process, on a
  synthetic dataset written once by the launcher (``--scenes`` scenes x ``--cameras`` cameras): videos/s.
* ``infer``: ``recam.pipeline.sample`` (CFG 5, ``--infer-steps`` steps) under each ``--modes`` of
  :mod:`recam.parallel`: seconds per denoising step, speed-up against 1 process, and the largest difference of the
  latents against the 1-process ``none`` run (bf16 tolerance on GPU, float32 on CPU).

    python bench/recam_multigpu.py --gpus 1,2,4 --out bench_out          # on a multi-GPU host (full size)
    OMP_NUM_THREADS=1 python bench/recam_multigpu.py --tiny --gpus 1,2 --out /tmp/mg   # CPU smoke run (gloo)

Results: ``OUT/recam_multigpu.json`` and a markdown table on stdout (``OUT/recam_multigpu.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("train", "prepare", "infer")
DEFAULT_MODES = "none,cfg,ulysses,allgather,cfg+ulysses"


# ------------------------------------------------------------------------------------------------ shapes
def _shape(args: argparse.Namespace) -> dict[str, int]:
    if args.tiny:
        return {"frames": 9, "height": 32, "width": 32, "text_len": 32}
    return {"frames": args.frames, "height": args.height, "width": args.width, "text_len": 512}


def _model(args: argparse.Namespace, device: Any) -> Any:
    import torch

    from recam.model import ReCamMasterTransformer

    torch.manual_seed(0)
    model = ReCamMasterTransformer.tiny() if args.tiny else ReCamMasterTransformer.from_config_file(None)
    with torch.no_grad():  # camera modules away from their neutral init, so that they take part
        for blk in model.blocks:
            blk.cam_encoder.weight.normal_(0, 0.02)
    if device.type == "cuda":
        model.to_mixed_precision(torch.bfloat16)
    model.set_fast_attention(True)
    return model.to(device)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ workers
def _worker_train(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from recam.train import flow_matching_loss
    from recam.vae import latent_shape

    dev = info.device
    sh = _shape(args)
    model = _model(args, dev)
    params = model.freeze_for_recammaster()
    for p in params:
        p.data = p.data.float()
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    ddp: Any = model
    if info.world_size > 1:
        ddp = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.AdamW(params, lr=1e-5)
    t, h, w = latent_shape(sh["frames"], sh["height"], sh["width"])
    g = torch.Generator("cpu").manual_seed(1000 + info.rank)
    x0 = torch.randn(1, 16, t, h, w, generator=g).to(dev)
    src = torch.randn(1, 16, t, h, w, generator=g).to(dev)
    noise = torch.randn(1, 16, t, h, w, generator=g).to(dev)
    ctx = torch.randn(1, sh["text_len"], model.config["text_dim"], generator=g).to(dev)
    cam = torch.randn(1, t, 12, generator=g).to(dev)
    sigma = torch.full((1,), 0.6, device=dev)
    auto = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step() -> float:
        with auto:
            loss = flow_matching_loss(ddp, x0, src, ctx, cam, noise, sigma)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _barrier()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(dev)
    _barrier()
    dt_step = (time.perf_counter() - t0) / args.steps
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    if dist.is_initialized():
        x = torch.tensor([dt_step], device=dev)
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
        dt_step = float(x)
    return {
        "s_per_step": dt_step,
        "samples_per_s": info.world_size / dt_step,
        "peak_gib": peak,
        "tokens": 2 * t * (h // 2) * (w // 2),
        "gradient_checkpointing": args.gradient_checkpointing,
    }


def _worker_prepare(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    from recam.prepare import prepare

    sh = _shape(args)
    out = Path(args.work) / f"cache_n{info.world_size}"
    _barrier()
    t0 = time.perf_counter()
    stats = prepare(
        Path(args.work) / "data",
        Path(args.work) / "wan",
        out,
        num_frames=sh["frames"],
        height=sh["height"],
        width=sh["width"],
        text_len=sh["text_len"],
        shard_index=info.rank,
        num_shards=info.world_size,
        device=str(info.device),
        tile=None if args.tiny else 256,
        progress=False,
    )
    mine = time.perf_counter() - t0
    _barrier()
    wall = time.perf_counter() - t0
    videos = _sum_int(stats.videos_encoded, info)
    return {"wall_s": wall, "rank0_s": mine, "videos": videos, "videos_per_s": videos / wall}


def _worker_infer(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    from recam.parallel import parallelize
    from recam.pipeline import sample
    from recam.vae import latent_shape

    dev = info.device
    sh = _shape(args)
    model = _model(args, dev).eval()
    par = parallelize(model, args.mode)
    t, h, w = latent_shape(sh["frames"], sh["height"], sh["width"])
    g = torch.Generator("cpu").manual_seed(7)
    src = torch.randn(1, 16, t, h, w, generator=g)
    ctx = torch.randn(2, sh["text_len"], model.config["text_dim"], generator=g)
    cam = torch.randn(1, t, 12, generator=g)

    def run(steps: int) -> Any:
        return sample(par, src, ctx[:1], cam, negative_emb=ctx[1:], steps=steps, cfg=5.0, seed=0, progress=False)

    run(1)  # warm-up (CUDA context, kernels)
    _barrier()
    _sync(dev)
    t0 = time.perf_counter()
    lat = run(args.infer_steps)
    _sync(dev)
    _barrier()
    dt_total = time.perf_counter() - t0
    res: dict[str, Any] = {"s_per_step": dt_total / args.infer_steps, "mode": args.mode}
    if info.rank == 0:
        ref = Path(args.work) / f"infer_ref_{args.infer_steps}.safetensors"
        if args.mode == "none" and info.world_size == 1:
            save_file({"latents": lat.float().cpu().contiguous()}, str(ref))
        if ref.exists():
            from safetensors.torch import load_file

            r = load_file(str(ref))["latents"]
            res["max_abs_diff_vs_1proc"] = float((lat.float().cpu() - r).abs().max())
            res["ref_abs_max"] = float(r.abs().max())
    return res


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _sum_int(v: int, info: Any) -> int:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return v
    x = torch.tensor([v], device=info.device)
    dist.all_reduce(x)
    return int(x)


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from recam.parallel import init_distributed

    info = init_distributed(args.device)
    if info.device.type == "cpu":
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    fn = {"train": _worker_train, "prepare": _worker_prepare, "infer": _worker_infer}[args.worker]
    res = fn(args, info)
    if info.rank == 0:
        res.update({"task": args.worker, "nproc": info.world_size, "device": str(info.device)})
        with open(args.result, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------ launcher
def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_line(tail: str) -> str:
    """The worker's exception line from a torchrun log (torchrun's own report ends in a row of '=')."""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", ln) and "ChildFailedError" not in ln:
            return ln
    return lines[-1] if lines else "failed"


def _launch(n: int, worker_args: list[str], env: dict[str, str], timeout: int) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port",
           str(_port()), str(Path(__file__).resolve()), *worker_args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    tail = (res.stdout[-1500:] + res.stderr[-3000:]).strip()
    return res.returncode == 0, tail


def _setup_prepare(args: argparse.Namespace) -> None:
    from recam.synthetic import write_synthetic_dataset
    from recam.tiny import make_tiny_wan_dir

    work = Path(args.work)
    if not (work / "data").exists():
        size = 64 if args.tiny else 256
        write_synthetic_dataset(work / "data", scenes=args.scenes, cameras=args.cameras,
                                frames=_shape(args)["frames"], size=size, seed=0)
    if not (work / "wan").exists():
        if args.wan_dir:
            (work / "wan").symlink_to(Path(args.wan_dir).resolve())
        else:
            make_tiny_wan_dir(work / "wan", text_len=_shape(args)["text_len"], full_size=not args.tiny)


def _table(results: list[dict[str, Any]]) -> str:
    lines = []
    base: dict[tuple[str, str], float] = {}
    for r in results:
        if r.get("nproc") == 1 and "error" not in r:
            key = (r["task"], r.get("mode", ""))
            base[key] = r.get("samples_per_s") or r.get("videos_per_s") or 1.0 / r["s_per_step"]
    lines.append("| task | mode | procs | time | throughput | speed-up | efficiency | peak GiB | max diff vs 1 proc |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        mode = r.get("mode", "")
        if "error" in r:
            lines.append(f"| {r['task']} | {mode} | {r['nproc']} | failed: {r['error'][:80]} | | | | | |")
            continue
        if r["task"] == "train":
            thr, unit, tm = r["samples_per_s"], "samples/s", f"{r['s_per_step']:.3f} s/step"
        elif r["task"] == "prepare":
            thr, unit, tm = r["videos_per_s"], "videos/s", f"{r['wall_s']:.2f} s"
        else:
            thr, unit, tm = 1.0 / r["s_per_step"], "steps/s", f"{r['s_per_step']:.3f} s/step"
        b = base.get((r["task"], "none" if r["task"] == "infer" else mode))
        sp = f"{thr / b:.2f}x" if b else ""
        eff = f"{thr / b / r['nproc']:.0%}" if b else ""
        peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") else ""
        diff = f"{r['max_abs_diff_vs_1proc']:.2e}" if "max_abs_diff_vs_1proc" in r else ""
        cells = [r["task"], mode, r["nproc"], tm, f"{thr:.3g} {unit}", sp, eff, peak, diff]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def launcher(args: argparse.Namespace) -> None:
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or out / "work")
    work.mkdir(parents=True, exist_ok=True)
    args.work = str(work)
    result = out / "results.jsonl"
    result.unlink(missing_ok=True)
    gpus = [int(g) for g in args.gpus.split(",")]
    if torch.cuda.is_available():
        gpus = [g for g in gpus if g <= torch.cuda.device_count()]
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0"}
    if not torch.cuda.is_available():
        env.setdefault("OMP_NUM_THREADS", "1")
    common = ["--result", str(result), "--work", str(work), "--device", args.device,
              "--frames", str(args.frames), "--height", str(args.height), "--width", str(args.width),
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--infer-steps", str(args.infer_steps)]
    if args.tiny:
        common.append("--tiny")
    if not args.gradient_checkpointing:
        common.append("--no-gradient-checkpointing")
    runs: list[tuple[str, int, list[str]]] = []
    for task in args.tasks.split(","):
        if task == "infer":
            for mode in args.modes.split(","):
                for n in gpus:
                    if (mode == "none") != (n == 1) or (mode.startswith("cfg+") and n < 4):
                        continue  # none only on 1 process; parallel modes on 2+; cfg+sequence on 4+
                    runs.append((task, n, ["--mode", mode]))
        else:
            runs.extend((task, n, []) for n in gpus)
    if "prepare" in args.tasks:
        _setup_prepare(args)
    results: list[dict[str, Any]] = []
    for task, n, extra in runs:
        before = result.read_text().count("\n") if result.exists() else 0
        t0 = time.perf_counter()
        ok, tail = _launch(n, ["--worker", task, *common, *extra], env, args.timeout)
        lines = result.read_text().splitlines() if result.exists() else []
        if ok and len(lines) > before:
            r = json.loads(lines[-1])
        else:
            r = {"task": task, "nproc": n, "error": _error_line(tail), "log": tail}
            if extra:
                r["mode"] = extra[1]
        r["launch_s"] = time.perf_counter() - t0
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "log"}), flush=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "torch": torch.__version__,
        "shape": _shape(args),
        "tiny": args.tiny,
        "nccl_nvls_enable": env["NCCL_NVLS_ENABLE"],
        "omp_num_threads": env.get("OMP_NUM_THREADS"),
    }
    (out / "recam_multigpu.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = _table(results)
    (out / "recam_multigpu.md").write_text(table + "\n")
    print(json.dumps(meta))
    print(table)
    if any("error" in r for r in results):
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny model, 9 x 32 x 32 (CPU smoke run)")
    ap.add_argument("--gpus", default="1,2,4", help="process counts to run (capped at the visible GPUs)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--modes", default=DEFAULT_MODES, help="inference modes (recam.parallel)")
    ap.add_argument("--out", default="bench_out/recam_multigpu")
    ap.add_argument("--work", default=None, help="scratch folder (dataset, wan dir, caches); default OUT/work")
    ap.add_argument("--wan-dir", default=None, help="prepare: use this wan dir instead of a random full-size one")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    ap.add_argument("--infer-steps", type=int, default=3, help="timed denoising steps (CFG, batch of 2)")
    ap.add_argument("--scenes", type=int, default=4, help="prepare: synthetic scenes")
    ap.add_argument("--cameras", type=int, default=2, help="prepare: cameras per scene")
    ap.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per torchrun launch")
    # worker side (set by the launcher)
    ap.add_argument("--worker", choices=TASKS, default=None)
    ap.add_argument("--mode", default="none")
    ap.add_argument("--result", default=None)
    args = ap.parse_args()
    if args.worker:
        worker(args)
    else:
        launcher(args)


if __name__ == "__main__":
    main()
