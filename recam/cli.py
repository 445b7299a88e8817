"""The ``recam`` command line: ``prepare``, ``train``, ``infer`` and two helpers for tests and demos."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from exporters.camera_json import CameraFileError
from recam.data import DEFAULT_PROMPT, DataError
from recam.wandir import WanDirError

T = TypeVar("T")

app = typer.Typer(
    name="recam",
    help="Train and run ReCamMaster (camera-controlled video-to-video, Wan2.1) on MultiCamVideo-format data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Errors that mean the user pointed at the wrong thing or asked for something impossible: exit 2.
USAGE_ERRORS = (DataError, WanDirError, CameraFileError, FileNotFoundError, ValueError)


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except USAGE_ERRORS as exc:
        typer.echo(f"recam: error: {exc}", err=True)
        raise typer.Exit(2) from None


def _cmd_prepare(
    dataset: Path = typer.Argument(..., help="Dataset root (MultiCamVideo layout)."),
    wan_dir: Path = typer.Option(..., "--wan-dir", help="Local Wan2.1 folder (VAE, T5, tokenizer)."),
    out: Path = typer.Option(..., "--out", help="Cache folder (created; reruns resume)."),
    num_frames: int = typer.Option(81, "--frames", "--num-frames", help="Frames per video (4k+1; --num-frames is "
                                   "the old name)."),
    height: int = typer.Option(480, help="Model height (multiple of 16)."),
    width: int = typer.Option(832, help="Model width (multiple of 16)."),
    text_len: int = typer.Option(512, help="Text tokens (umT5 max length)."),
    shard_index: int = typer.Option(0, help="This process's shard (0-based)."),
    num_shards: int = typer.Option(
        1, help="Number of shards (e.g. one per GPU; under torchrun default: RANK of WORLD_SIZE)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N (auto uses LOCAL_RANK)."),
    tile: int = typer.Option(256, help="VAE tile size in pixels (0 = no tiling)."),
    latent_dtype: str = typer.Option("bf16", help="bf16, fp16 or fp32 latents on disk."),
    default_prompt: str = typer.Option(DEFAULT_PROMPT, help="Caption for videos without one."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """VAE-encode every video and T5-encode every caption once into CACHE (resumable, sharded)."""
    from recam.prepare import prepare

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if num_shards == 1 and shard_index == 0 and world > 1:  # under torchrun: one shard per process
        shard_index, num_shards = int(os.environ.get("RANK", "0")), world
    if not 0 <= shard_index < num_shards:
        raise typer.BadParameter(f"need 0 <= --shard-index < --num-shards, got {shard_index} of {num_shards}")
    stats = _run(
        prepare,
        dataset,
        wan_dir,
        out,
        num_frames=num_frames,
        height=height,
        width=width,
        text_len=text_len,
        shard_index=shard_index,
        num_shards=num_shards,
        device=device,
        tile=tile or None,
        latent_dtype=latent_dtype,
        default_prompt=default_prompt,
        progress=progress,
    )
    typer.echo(
        f"prepared {stats.scenes} scene(s) ({stats.scenes_skipped} already done), "
        f"{stats.videos_encoded} video(s) encoded, {stats.prompts_encoded} caption(s) encoded -> {out}"
    )


def _cmd_train(
    cache: Path = typer.Option(..., "--cache", help="Cache written by `recam prepare`."),
    wan_dir: Path = typer.Option(..., "--wan-dir", help="Local Wan2.1 folder (transformer weights)."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs); reruns resume."),
    steps: int = typer.Option(1000, min=1, help="Total optimisation steps."),
    batch_size: int = typer.Option(1, min=1, help="Samples per step per GPU."),
    lr: float = typer.Option(1e-4, help="AdamW learning rate."),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay."),
    max_grad_norm: float = typer.Option(0.0, help="Gradient clipping norm (0 = off)."),
    gradient_checkpointing: bool = typer.Option(False, help="Recompute block activations in backward."),
    recompute_blocks: int | None = typer.Option(
        None, min=0, help="With --gradient-checkpointing: recompute only the first N blocks (default all)."
    ),
    fast_attention: bool = typer.Option(True, help="Fused-QKV, fp32-RoPE attention processor."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile each transformer block."),
    save_every: int = typer.Option(500, min=1, help="Checkpoint every N steps (and at the end)."),
    log_every: int = typer.Option(10, min=1, help="Write log.csv every N steps."),
    eval_every: int = typer.Option(
        0, min=0, help="Fixed-noise eval loss to eval.csv every N steps (0 = off)."
    ),
    seed: int = typer.Option(0, help="Seed of pairs, timesteps and noise."),
    num_workers: int = typer.Option(2, min=0, help="DataLoader workers."),
    transformer_config: str | None = typer.Option(
        None, help="Transformer config JSON for original Wan weights."
    ),
    init_checkpoint: Path | None = typer.Option(None, help="Start from this ReCamMaster checkpoint."),
    precision: str = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU), bf16 or fp32."),
    export: bool = typer.Option(True, help="Write RUN/recammaster.safetensors at the end."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train ReCamMaster's trainable modules on a prepared cache (DDP via `accelerate launch`)."""
    from recam.train import TrainConfig, train

    if precision not in ("auto", "bf16", "fp32"):
        raise typer.BadParameter(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    cfg = TrainConfig(
        cache=str(cache),
        wan_dir=str(wan_dir),
        out=str(out),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        gradient_checkpointing=gradient_checkpointing,
        recompute_blocks=recompute_blocks,
        fast_attention=fast_attention,
        compile=compile,
        save_every=save_every,
        log_every=log_every,
        eval_every=eval_every,
        seed=seed,
        num_workers=num_workers,
        transformer_config=transformer_config,
        init_checkpoint=str(init_checkpoint) if init_checkpoint else None,
        precision=precision,
        export=export,
        progress=progress,
    )
    res = _run(train, cfg)
    typer.echo(f"trained steps {res['start_step']}..{res['steps']} -> {out}")


def _tile_option(text: str) -> int | str | None:
    """``--tile``: ``auto``, 0 (untiled) or a number of pixels (multiple of 8, >= 64)."""
    if text == "auto":
        return text
    try:
        px = int(text)
    except ValueError:
        raise typer.BadParameter(f"--tile must be auto, 0 or a number of pixels, got {text!r}") from None
    if px and (px < 64 or px % 8):
        raise typer.BadParameter(f"--tile must be auto, 0 or a multiple of 8 >= 64 (pixels), got {px}")
    return px or None


def _cmd_infer(
    video: Path | None = typer.Option(None, "--video", help="Source video (mp4)."),
    prompt: str | None = typer.Option(None, "--prompt", help="Text prompt."),
    out: Path | None = typer.Option(None, "--out", help="Output mp4."),
    wan_dir: Path = typer.Option(..., "--wan-dir", help="Local Wan2.1 folder."),
    jobs: Path | None = typer.Option(
        None, "--jobs", help="JSON-lines file, one video per line ({\"video\", \"prompt\", \"out\", \"cam_type\" or "
        "\"cameras\"+\"cam\", optional \"seed\", \"negative_prompt\"}): models load once; existing outputs are kept."
    ),
    cam_type: int | None = typer.Option(None, "--cam-type", min=1, max=10, help="Preset trajectory 1..10."),
    cameras: Path | None = typer.Option(None, "--cameras", help="Camera file (camera_extrinsics.json)."),
    cam: str | None = typer.Option(None, "--cam", help="Camera of --cameras, e.g. cam03."),
    checkpoint: Path | None = typer.Option(
        None, help="ReCamMaster checkpoint file, or a `recam train` run folder."
    ),
    transformer_config: str | None = typer.Option(
        None, help="Transformer config JSON for original Wan weights."
    ),
    num_frames: int = typer.Option(81, "--frames", "--num-frames", help="Frames (4k+1; --num-frames is the old "
                                   "name)."),
    height: int = typer.Option(480, help="Height (multiple of 16)."),
    width: int = typer.Option(832, help="Width (multiple of 16)."),
    steps: int = typer.Option(50, min=1, help="Denoising steps."),
    cfg: float = typer.Option(5.0, help="Classifier-free guidance scale (1 = off)."),
    shift: float = typer.Option(5.0, help="Flow-matching shift."),
    seed: int = typer.Option(0, help="Noise seed."),
    negative_prompt: str | None = typer.Option(None, help="Negative prompt (default: Wan's)."),
    distance_m: float = typer.Option(4.0, help="Preset trajectories' distance to the subject."),
    tile: str = typer.Option(
        "auto", help="VAE tile size in pixels, 0 = untiled, auto = untiled on a GPU with 16 GiB free, else 256."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    fast_attention: bool = typer.Option(True, help="Fused-QKV, fp32-RoPE attention processor."),
    attention: str = typer.Option(
        "auto",
        "--attention",
        help="Self-attention kernel: auto (FlashAttention-4 if installed on Hopper/Blackwell, else cuDNN), "
        "cudnn, flash, efficient, math, fa4, or fp8 (opt-in FP8 q/k, inference only; see docs/recam_model.md).",
    ),
    compile: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the transformer blocks (default: on a GPU; ~9 s of "
        "compilation, mostly cached after a machine's first run, for ~0.28 s a step on an H200)."
    ),
    parallel: str = typer.Option(
        "none", help="Under torchrun: none, cfg, ulysses, allgather, cfg+ulysses or cfg+allgather (see docs)."
    ),
    save_latents: Path | None = typer.Option(None, help="Also write the denoised latents (safetensors)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Re-render VIDEO along a new camera trajectory (multi-GPU: torchrun ... --parallel MODE)."""
    from recam.attn_kernels import ATTENTION_BACKENDS
    from recam.infer import DEFAULT_NEGATIVE_PROMPT, format_timings, infer, infer_many, read_jobs

    if attention not in ("auto", *ATTENTION_BACKENDS):
        allowed = ", ".join(ATTENTION_BACKENDS)
        raise typer.BadParameter(f"--attention must be auto or one of {allowed}, got {attention!r}")
    timings: dict[str, float] = {}
    if jobs is not None:
        per_video = (("--video", video), ("--prompt", prompt), ("--out", out), ("--cam-type", cam_type),
                     ("--cameras", cameras), ("--cam", cam), ("--save-latents", save_latents))
        given = [n for n, v in per_video if v is not None]
        if given:
            raise typer.BadParameter(f"--jobs takes each video's {', '.join(given)} from the file; drop them here")
        job_list = _run(read_jobs, jobs)
        run: Callable[..., Any] = functools.partial(infer_many, job_list)
    else:
        need = [n for n, v in (("--video", video), ("--prompt", prompt), ("--out", out)) if v is None]
        if need:
            raise typer.BadParameter(f"give {', '.join(need)} (or --jobs FILE for many videos)")
        assert video is not None and prompt is not None and out is not None
        if (cam_type is None) == (cameras is None):
            raise typer.BadParameter("give exactly one of --cam-type or --cameras (with --cam)")
        if cameras is not None and cam is None:
            raise typer.BadParameter("--cameras needs --cam (e.g. --cam cam03)")
        run = functools.partial(infer, video, prompt, out, cam_type=cam_type, cameras=cameras, cam=cam,
                                save_latents=save_latents)
    paths = _run(
        run,
        wan_dir,
        checkpoint=checkpoint,
        transformer_config=transformer_config,
        num_frames=num_frames,
        height=height,
        width=width,
        steps=steps,
        cfg=cfg,
        shift=shift,
        seed=seed,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt,
        distance_m=distance_m,
        tile=_tile_option(tile),
        device=device,
        fast_attention=fast_attention,
        attention=attention,
        compile=compile,
        parallel=parallel,
        progress=progress,
        timings=timings,
    )
    for path in [paths] if isinstance(paths, Path) else paths:
        typer.echo(f"wrote {path}")
    typer.echo(f"stages: {format_timings(timings)}", err=True)


def _cmd_tiny_wan_dir(
    out: Path = typer.Argument(..., help="Folder to create."),
    seed: int = typer.Option(0, help="Weight seed."),
    text_len: int = typer.Option(32, help="Tokenizer max length."),
    full_size: bool = typer.Option(False, help="Full-size random transformer and VAE (GPU smoke runs)."),
) -> None:
    """Write a tiny random wan dir (VAE, umT5, tokenizer, transformer) for tests and CPU demos."""
    from recam.tiny import make_tiny_wan_dir

    typer.echo(f"wrote {make_tiny_wan_dir(out, seed, text_len, full_size)}")


def _cmd_synthetic(
    out: Path = typer.Argument(..., help="Dataset root to write."),
    scenes: int = typer.Option(2, min=1),
    cameras: int = typer.Option(3, min=2),
    frames: int = typer.Option(17, min=2),
    size: int = typer.Option(64, min=16),
    seed: int = typer.Option(0),
) -> None:
    """Write a small synthetic MultiCamVideo-layout dataset (splat renderings, real trajectories)."""
    from recam.synthetic import write_synthetic_dataset

    if size % 2:
        raise typer.BadParameter(f"--size must be even, got {size}")
    paths = write_synthetic_dataset(out, scenes, cameras, frames, size, seed)
    typer.echo(f"wrote {len(paths)} scene(s) under {out}")


def register(app: typer.Typer) -> None:
    app.command("prepare", epilog=("Example: recam prepare demo_dataset "
                              "--wan-dir Wan2.1-T2V-1.3B --out cache"))(_cmd_prepare)
    app.command("train", epilog=("Example: recam train --cache cache "
                              "--wan-dir Wan2.1-T2V-1.3B --out run1 --steps 1000"))(_cmd_train)
    app.command("infer", epilog=("Example: recam infer --video in.mp4 --wan-dir "
                              "Wan2.1-T2V-1.3B --checkpoint run1 --cam-type 1 --out out.mp4\n\n"
                              "Many videos, models loaded once: recam infer --jobs jobs.jsonl --wan-dir "
                              "Wan2.1-T2V-1.3B --checkpoint run1"))(_cmd_infer)
    app.command("tiny-wan-dir", epilog="Example: recam tiny-wan-dir /tmp/tiny_wan")(_cmd_tiny_wan_dir)
    app.command("synthetic", epilog="Example: recam synthetic /tmp/synth --scenes 2 --cameras 3")(_cmd_synthetic)


register(app)


def main() -> None:
    app(prog_name="recam")


if __name__ == "__main__":
    main()
