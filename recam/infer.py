"""``recam infer``: re-render a video along a new camera trajectory with ReCamMaster.

The source video is centre-cropped/resized to ``height x width``, its first ``num_frames`` frames
VAE-encoded; the prompt and the negative prompt are umT5-encoded; the target camera is a preset
(``--cam-type 1..10`` from :mod:`trajectory.presets`) or a camera of a camera file; its embedding
uses the target trajectory's own frame 0 as reference (as ReCamMaster's inference does). Sampling:
flow matching, ``steps`` Euler steps with shift 5, classifier-free guidance ``cfg``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm import tqdm

from exporters.video import encode_mp4
from recam.cameras import preset_embedding, relative_pose_embedding
from recam.data import load_video
from recam.prepare import pick_device
from recam.vae import TEMPORAL_STRIDE, latent_shape

#: Wan2.1's default negative prompt, used by ReCamMaster's inference script.
DEFAULT_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
    "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
    "三条腿，背景人很多，倒着走"
)


def camera_embedding(
    num_frames: int,
    cam_type: int | None = None,
    cameras: str | os.PathLike[str] | None = None,
    cam: str | None = None,
    distance_m: float = 4.0,
) -> np.ndarray:
    """The target camera embedding ``(T, 12)`` from a preset or a camera file (exactly one of them)."""
    if (cam_type is None) == (cameras is None):
        raise ValueError("give exactly one of --cam-type or --cameras/--cam")
    if cam_type is not None:
        return preset_embedding(cam_type, num_frames, TEMPORAL_STRIDE, distance_m)
    if cam is None:
        raise ValueError("--cameras needs --cam (e.g. --cam cam03)")
    assert cameras is not None
    return relative_pose_embedding(cameras, cam, cam, num_frames, TEMPORAL_STRIDE)


#: ``tile="auto"``: the VAE runs untiled on a CUDA device with at least this much free memory, else in 256 px
#: tiles. Untiled encode and decode of 81 x 480 x 832 peak at 3.7 and 4.7 GiB on an H200 and take 6.8 s against
#: 12.4 s in 256 px tiles (BENCHMARKS.md); the margin covers larger frames and other processes on the card.
AUTO_UNTILED_FREE_GIB = 16.0


def resolve_tile(tile: int | str | None, device: torch.device) -> int | None:
    """``"auto"`` -> ``None`` (untiled) on a CUDA device with :data:`AUTO_UNTILED_FREE_GIB` free, else 256;
    ``0``/``None`` -> ``None``; a number of pixels (multiple of 8, >= 64) is returned as is."""
    if tile == "auto":
        if device.type == "cuda" and torch.cuda.mem_get_info(device.index)[0] >= AUTO_UNTILED_FREE_GIB * 2**30:
            return None
        return 256
    if not tile:
        return None
    px = int(tile)
    if px < 64 or px % 8:
        raise ValueError(f"--tile must be auto, 0 or a multiple of 8 >= 64 (pixels), got {tile!r}")
    return px


@contextmanager
def _stage(timings: dict[str, float] | None, name: str, device: torch.device | None = None) -> Iterator[None]:
    """Add the wall time of the block (the GPU's queued work included) to ``timings[name]``; on CUDA also the
    block's peak allocated memory to ``timings[name + " peak GiB"]``."""
    cuda = device is not None and device.type == "cuda"
    index = None if device is None else device.index  # torch.device("cuda") has none: the current device
    if cuda:
        torch.cuda.init()  # the allocator's statistics exist only once CUDA is initialised
        torch.cuda.reset_peak_memory_stats(index)
    t0 = time.perf_counter()
    yield
    if cuda:
        torch.cuda.synchronize(index)
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        if cuda:
            timings[f"{name} peak GiB"] = torch.cuda.max_memory_allocated(index) / 2**30


def transformer_weight_files(
    wan_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None
) -> list[Path]:
    """The files :func:`recam.pipeline.load_transformer` reads (weights of ``wan_dir``'s transformer, checkpoint)."""
    from recam.pipeline import latest_checkpoint
    from recam.wandir import wan_paths

    folder = wan_paths(wan_dir).transformer.parent
    files = sorted(folder.glob("*.safetensors"))
    if checkpoint is not None:
        c = Path(checkpoint)
        ck = None if c.is_file() else latest_checkpoint(c)
        files += [c] if c.is_file() else sorted(ck.glob("*.safetensors")) if ck is not None else []
    return files


def prefetch_files(paths: list[Path], chunk_bytes: int = 16 << 20) -> int:
    """Read ``paths`` once (into the OS page cache); returns the bytes read. Missing files are skipped: the real
    load reports them."""
    total = 0
    buf = bytearray(chunk_bytes)
    for p in paths:
        try:
            with open(p, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    total += n
        except OSError:
            continue
    return total


def format_timings(timings: dict[str, float]) -> str:
    """``{"text": 1.23, "text peak GiB": 2.1, ...}`` -> ``"text 1.2 s (2.1 GiB), ..., total 190.1 s"``."""
    parts = []
    for k, v in timings.items():
        if k not in ("total", "videos") and not k.endswith(" peak GiB"):
            peak = timings.get(f"{k} peak GiB")
            parts.append(f"{k} {v:.1f} s" + (f" ({peak:.1f} GiB)" if peak is not None else ""))
    total = timings.get("total", sum(v for k, v in timings.items() if k != "videos" and not k.endswith(" GiB")))
    videos = int(timings.get("videos", 1))
    return ", ".join([*parts, f"total {total:.1f} s" + (f" for {videos} videos" if videos != 1 else "")])


class InferJob(BaseModel):
    """One video to re-render: a line of a ``recam infer --jobs`` file (paths relative to that file's folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video: Path
    prompt: str
    out: Path
    cam_type: int | None = Field(None, ge=1, le=10)
    cameras: Path | None = None
    cam: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    save_latents: Path | None = None

    @model_validator(mode="after")
    def _one_camera(self) -> InferJob:
        if (self.cam_type is None) == (self.cameras is None):
            raise ValueError("give exactly one of cam_type or cameras (with cam)")
        if self.cameras is not None and self.cam is None:
            raise ValueError("cameras needs cam (e.g. \"cam\": \"cam03\")")
        return self


def read_jobs(path: str | os.PathLike[str]) -> list[InferJob]:
    """The jobs of a JSON-lines file (one object per line; blank lines and ``#`` comments skipped). Relative paths
    are taken from the file's folder. Errors name the file, the line and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileNotFoundError(f"{p}: cannot read the jobs file ({exc.strerror})") from None
    jobs: list[InferJob] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{p}:{n}: expected a JSON object, got {type(raw).__name__}")
        try:
            job = InferJob.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "line"
            raise ValueError(f"{p}:{n}: {field}: {err['msg']}") from None
        rel = {k: (p.parent / v) for k in ("video", "out", "cameras", "save_latents")
               if (v := getattr(job, k)) is not None and not v.is_absolute()}
        jobs.append(job.model_copy(update=rel))
    if not jobs:
        raise ValueError(f"{p}: no jobs (one JSON object per line)")
    outs = [j.out.resolve() for j in jobs]
    dup = next((o for o in outs if outs.count(o) > 1), None)
    if dup is not None:
        raise ValueError(f"{p}: two jobs write {dup}")
    return jobs


def infer(
    video: str | os.PathLike[str],
    prompt: str,
    out: str | os.PathLike[str],
    wan_dir: str | os.PathLike[str],
    *,
    cam_type: int | None = None,
    cameras: str | os.PathLike[str] | None = None,
    cam: str | None = None,
    save_latents: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Path:
    """Write the re-rendered video to ``out`` (``num_frames`` frames, ``height x width``); returns its path.

    One job of :func:`infer_many` (see there for ``options``); the camera is exactly one of ``cam_type`` (a preset
    1..10) or ``cameras`` + ``cam`` (a camera of a camera file)."""
    if (cam_type is None) == (cameras is None):
        raise ValueError("give exactly one of --cam-type or --cameras/--cam")
    if cameras is not None and cam is None:
        raise ValueError("--cameras needs --cam (e.g. --cam cam03)")
    job = InferJob(
        video=Path(video), prompt=prompt, out=Path(out), cam_type=cam_type,
        cameras=None if cameras is None else Path(cameras), cam=cam,
        save_latents=None if save_latents is None else Path(save_latents),
    )
    return infer_many([job], wan_dir, skip_existing=False, **options)[0]


def infer_many(
    jobs: Sequence[InferJob],
    wan_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    transformer_config: str | None = None,
    num_frames: int = 81,
    height: int = 480,
    width: int = 832,
    steps: int = 50,
    cfg: float = 5.0,
    shift: float = 5.0,
    seed: int = 0,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    distance_m: float = 4.0,
    tile: int | str | None = "auto",
    fps: float = 15.0,
    device: str = "auto",
    fast_attention: bool = True,
    attention: str | None = "auto",
    compile: bool | None = None,
    progress: bool = True,
    parallel: str = "none",
    skip_existing: bool = True,
    timings: dict[str, float] | None = None,
) -> list[Path]:
    """Re-render every job's video; the models are loaded once (umT5 only for the prompts, then freed). Returns the
    output paths in job order. A job whose ``out`` exists is skipped when ``skip_existing`` (each mp4 is written
    to a temporary name and renamed, so an existing one is complete): a killed run resumes where it stopped.

    ``parallel`` (``none``, ``cfg``, ``ulysses``, ``allgather``, ``cfg+ulysses``, ``cfg+allgather``) splits the DiT
    passes over the processes of a ``torchrun`` launch (see :mod:`recam.parallel`); rank 0 decodes and writes.
    ``attention``: self-attention kernel (``"auto"``: FlashAttention-4 where installed on Hopper/Blackwell, else
    cuDNN; or a name of :data:`recam.attn_kernels.ATTENTION_BACKENDS`, e.g. the opt-in ``"fp8"``).
    ``compile``: ``torch.compile`` the transformer blocks but the last (see
    :meth:`ReCamMasterTransformer.compile_blocks`); ``None`` = on CUDA. On an H200 it saves ~0.28 s a step for ~9 s of
    compilation on a machine's first run (denoise 164.5 vs 169.1 s; totals 194 vs 193 s, within the text stage's
    spread) and mostly skips that later (inductor's and FlashAttention-4's on-disk caches): 178 vs 188 s in all
    (BENCHMARKS.md).
    ``tile``: VAE tile size in pixels, ``None``/0 untiled, ``"auto"`` (see :func:`resolve_tile`).
    A job's ``save_latents``: also write its denoised target latents ``(1, 16, T, h, w)`` there (safetensors).
    ``timings``: filled with the wall seconds of each stage summed over the jobs (``read video``, ``text``,
    ``vae encode``, ``load transformer`` (only the part not hidden behind the text and VAE stages), ``denoise``,
    ``vae decode``, ``write``, ``total``) and the number of ``videos`` written.
    """
    from recam.attn_kernels import resolve_backend
    from recam.parallel import PARALLEL_MODES, init_distributed, parallelize
    from recam.pipeline import load_transformer, sample
    from recam.text import PromptEncoder, pad_prompt_embeddings
    from recam.vae import decode_latents, encode_video, load_vae, set_tiling

    t_start = time.perf_counter()
    latent_shape(num_frames, height, width)
    if parallel not in PARALLEL_MODES:
        raise ValueError(f"--parallel must be one of {', '.join(PARALLEL_MODES)}, got {parallel!r}")
    # every camera is checked before anything heavy is loaded
    cam_embs = [
        torch.from_numpy(camera_embedding(num_frames, j.cam_type, j.cameras, j.cam, distance_m))[None] for j in jobs
    ]
    missing = next((j.video for j in jobs if not j.video.is_file()), None)
    if missing is not None:
        raise FileNotFoundError(f"{missing}: no such video")
    todo = [i for i, j in enumerate(jobs) if not (skip_existing and j.out.exists())]
    written = [j.out for j in jobs]
    if not todo:
        return written
    rank, own_group = 0, False
    if parallel != "none":
        import torch.distributed as dist

        own_group = not dist.is_initialized()
        info = init_distributed(device)
        dev, rank = info.device, info.rank
    else:
        dev = pick_device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if compile is None:
        compile = dev.type == "cuda"
    # the transformer's weight files are read into the page cache on a worker thread while the text and VAE
    # stages run, so the load below does not wait for the disk. Only file reads run there: building models in two
    # threads at once is not safe (diffusers/accelerate patch module construction globally while loading).
    loader = ThreadPoolExecutor(1, thread_name_prefix="recam-prefetch")
    prefetched = loader.submit(prefetch_files, transformer_weight_files(wan_dir, checkpoint))

    with _stage(timings, "text", dev):
        enc = PromptEncoder(wan_dir, dev, dtype)
        texts = list(dict.fromkeys(t for i in todo for t in (jobs[i].prompt, jobs[i].negative_prompt
                                                               or negative_prompt)))
        embs = dict(zip(texts, [e for k in range(0, len(texts), 8) for e in enc.encode(texts[k:k + 8])],
                        strict=True))
        max_length = enc.max_length
        del enc

    with _stage(timings, "vae encode", dev):
        vae = load_vae(wan_dir, dev, dtype)
        set_tiling(vae, resolve_tile(tile, dev))

    model: Any = None
    bar = tqdm(todo, desc="videos", unit="video", disable=not progress or rank != 0 or len(todo) < 2)
    for n, i in enumerate(bar):
        job = jobs[i]
        with _stage(timings, "read video"):
            frames = load_video(job.video, num_frames, height, width)
        with _stage(timings, "vae encode", dev):
            source = encode_video(vae, frames)[None]
        if model is None:
            with _stage(timings, "load transformer", dev):
                prefetched.result()
                loader.shutdown()
                model = load_transformer(wan_dir, transformer_config, checkpoint)
                if dev.type == "cuda":
                    model.to_mixed_precision(torch.bfloat16)
                model.to(dev).eval()
            if fast_attention:  # on CUDA: the kernel `attention` names plus the inference fusions (recam.attention)
                cuda = dev.type == "cuda"
                model.set_fast_attention(
                    True,
                    self_backend=resolve_backend(attention, dev),
                    cross_backend="cudnn" if cuda else None,
                    inference_fusions="all" if cuda else (),
                )
            if compile:
                model.compile_blocks(skip_last=True)
        ctx = pad_prompt_embeddings([embs[job.prompt], embs[job.negative_prompt or negative_prompt]], max_length)
        with _stage(timings, "denoise", dev):
            latents = sample(
                parallelize(model, parallel),
                source,
                ctx[:1],
                cam_embs[i],
                negative_emb=ctx[1:],
                steps=steps,
                cfg=cfg,
                shift=shift,
                seed=seed if job.seed is None else job.seed,
                progress=progress and rank == 0,
            )
        if n == len(todo) - 1:  # the VAE decode of the last video gets the transformer's memory
            model = None
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if rank == 0:
            if job.save_latents is not None:
                from safetensors.torch import save

                from multicam.io import atomic_write_bytes

                atomic_write_bytes(job.save_latents, save({"latents": latents.float().cpu().contiguous()}))
            with _stage(timings, "vae decode", dev):
                video_out = decode_latents(vae, latents)
            with _stage(timings, "write"):
                job.out.parent.mkdir(parents=True, exist_ok=True)
                written[i] = encode_mp4(job.out, list(video_out[:num_frames]), fps=fps)
            if timings is not None:
                timings["videos"] = timings.get("videos", 0) + 1
    loader.shutdown()
    if own_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    if timings is not None:
        timings["total"] = time.perf_counter() - t_start
    return written
