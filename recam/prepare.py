"""``recam prepare``: VAE-encode every video and T5-encode every caption once, into a cache.

Resumable: a video whose latents file exists is skipped, a scene whose ``cache_scene.json`` exists
is skipped, a caption whose embedding exists is skipped; every file is written atomically. Run one
process per GPU with ``--shard-index i --num-shards n`` (scenes ``i, i+n, ...``); shards write
disjoint files and the same ``cache.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from exporters.camera_json import CAMERA_FILE
from multicam.io import atomic_write_bytes, atomic_write_json
from recam.data import (
    CACHE_FILE,
    CACHE_VERSION,
    DEFAULT_PROMPT,
    SCENE_DONE,
    DataError,
    Scene,
    cache_scene_dir,
    discover_scenes,
    load_video,
    prompt_key,
    shard,
)
from recam.vae import latent_shape


@dataclass
class PrepareStats:
    scenes: int = 0
    scenes_skipped: int = 0
    videos_encoded: int = 0
    videos_skipped: int = 0
    prompts_encoded: int = 0


def _save_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(device)


def _check_settings(cache: Path, settings: dict[str, Any]) -> None:
    path = cache / CACHE_FILE
    if path.exists():
        old = json.loads(path.read_text())
        keys = ("num_frames", "height", "width", "text_len")
        if any(old.get(k) != settings[k] for k in keys):
            raise DataError(
                f"{path}: was prepared with {', '.join(f'{k}={old.get(k)}' for k in keys)}; "
                f"asked for {', '.join(f'{k}={settings[k]}' for k in keys)}. Use another --out."
            )
    atomic_write_json(path, settings)


def prepare(
    dataset: str | os.PathLike[str],
    wan_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    num_frames: int = 81,
    height: int = 480,
    width: int = 832,
    text_len: int = 512,
    shard_index: int = 0,
    num_shards: int = 1,
    device: str = "auto",
    tile: int | None = 256,
    latent_dtype: str = "bf16",
    default_prompt: str = DEFAULT_PROMPT,
    progress: bool = True,
) -> PrepareStats:
    """Fill the cache ``out`` from ``dataset``; see the module docstring."""
    from recam.text import PromptEncoder
    from recam.vae import encode_video, load_vae, set_tiling

    latent_shape(num_frames, height, width)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if latent_dtype not in dtypes:
        raise ValueError(f"latent_dtype must be one of {sorted(dtypes)}, got {latent_dtype!r}")
    cache = Path(out).expanduser().resolve()
    scenes = shard(discover_scenes(dataset, default_prompt), shard_index, num_shards)
    dev = pick_device(device)
    model_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    stats = PrepareStats()

    todo: list[Scene] = []
    for sc in scenes:
        if (cache_scene_dir(cache, sc.rel) / SCENE_DONE).exists():
            stats.scenes_skipped += 1
        else:
            todo.append(sc)

    # Captions first (the text encoder is large: load it, encode every missing caption, free it).
    texts = sorted({t for sc in todo for t in sc.captions.values()})
    missing = [t for t in texts if not (cache / "prompts" / f"{prompt_key(t)}.safetensors").exists()]
    text_dim = None
    if missing or not (cache / CACHE_FILE).exists():
        enc = PromptEncoder(wan_dir, dev, model_dtype, max_length=text_len)
        text_dim = enc.dim
        for t in tqdm(missing, desc="T5 captions", unit="caption", disable=not progress):
            (emb,) = enc.encode([t])
            _save_safetensors(
                cache / "prompts" / f"{prompt_key(t)}.safetensors",
                {"emb": emb.to(torch.bfloat16) if latent_dtype == "bf16" else emb},
                {"text": t},
            )
            stats.prompts_encoded += 1
        del enc
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    settings = {
        "version": CACHE_VERSION,
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "text_len": text_len,
        "latent_dtype": latent_dtype,
    }
    if text_dim is not None:
        settings["text_dim"] = text_dim
    elif (cache / CACHE_FILE).exists():
        settings["text_dim"] = json.loads((cache / CACHE_FILE).read_text()).get("text_dim")
    _check_settings(cache, settings)

    if todo:
        vae = load_vae(wan_dir, dev, model_dtype)
        set_tiling(vae, tile)
        bar = tqdm(
            total=sum(len(sc.cameras) for sc in todo), desc="VAE videos", unit="video", disable=not progress
        )
        for sc in todo:
            sdir = cache_scene_dir(cache, sc.rel)
            for cam in sc.cameras:
                lat_path = sdir / "latents" / f"{cam}.safetensors"
                if lat_path.exists():
                    stats.videos_skipped += 1
                else:
                    frames = load_video(sc.video(cam), num_frames, height, width)
                    lat = encode_video(vae, frames).to(dtypes[latent_dtype])
                    _save_safetensors(lat_path, {"latents": lat}, {"source": f"{sc.rel}/videos/{cam}.mp4"})
                    stats.videos_encoded += 1
                bar.update(1)
            (sdir / "cameras").mkdir(parents=True, exist_ok=True)
            tmp = sdir / "cameras" / ".camera_extrinsics.json.tmp"
            shutil.copyfile(sc.camera_file, tmp)
            os.replace(tmp, sdir / CAMERA_FILE)
            atomic_write_json(
                sdir / SCENE_DONE,
                {
                    "rel": sc.rel,
                    "cameras": list(sc.cameras),
                    "prompts": {c: prompt_key(sc.captions[c]) for c in sc.cameras},
                    "captions": dict(sc.captions),
                },
            )
            stats.scenes += 1
        bar.close()
    return stats
