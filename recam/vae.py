"""Wan VAE (diffusers ``AutoencoderKLWan``) loaded from a local wan dir; tiled encode/decode.

Latents are stored and used *normalised* the way Wan and ReCamMaster use them:
``z = (mu - latents_mean) / latents_std`` (the posterior mean, no sampling).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from recam.wandir import wan_paths

#: Wan VAE compression: 4x in time (plus the first frame), 8x in space.
TEMPORAL_STRIDE = 4
SPATIAL_STRIDE = 8


def latent_shape(num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(T, h, w) of the latents of a ``num_frames x height x width`` video; checks the sizes."""
    if (num_frames - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"num_frames must be 4k+1 (e.g. 17, 81), got {num_frames}")
    if height % 16 or width % 16:
        raise ValueError(f"height and width must be multiples of 16, got {height}x{width}")
    return (num_frames - 1) // TEMPORAL_STRIDE + 1, height // SPATIAL_STRIDE, width // SPATIAL_STRIDE


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


def load_vae(
    wan_dir: str | os.PathLike[str], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    """The Wan VAE from ``wan_dir`` (``vae/`` folder, or the original ``Wan2.1_VAE.pth``)."""
    from diffusers import AutoencoderKLWan

    path = wan_paths(wan_dir).vae
    vae: Any
    if path.name == "config.json":
        vae = AutoencoderKLWan.from_pretrained(str(path.parent), local_files_only=True, torch_dtype=dtype)
    else:
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        vae = AutoencoderKLWan()  # the default config is Wan2.1's VAE
        vae.load_state_dict(convert_wan_vae_to_diffusers(_load_state_dict(path)), strict=True)
        vae = vae.to(dtype)
    vae.requires_grad_(False)
    vae.eval()
    return vae.to(device)


def _stats(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=like.device)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=like.device)
    return mean.view(1, -1, 1, 1, 1), std.view(1, -1, 1, 1, 1)


def frames_to_tensor(frames: NDArray[np.uint8]) -> torch.Tensor:
    """RGB uint8 ``(F, H, W, 3)`` -> float ``(1, 3, F, H, W)`` in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return (t / 127.5 - 1.0).unsqueeze(0)


def tensor_to_frames(video: torch.Tensor) -> NDArray[np.uint8]:
    """float ``(1, 3, F, H, W)`` or ``(3, F, H, W)`` in [-1, 1] -> RGB uint8 ``(F, H, W, 3)``."""
    v = video[0] if video.ndim == 5 else video
    v = ((v.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return v.permute(1, 2, 3, 0).cpu().numpy()


def set_tiling(vae: Any, tile: int | None) -> None:
    """Tile the VAE spatially with ``tile`` px tiles (3/4 stride); ``None`` or 0 turns tiling off."""
    if not tile:
        vae.disable_tiling()
        return
    stride = max(SPATIAL_STRIDE, (tile * 3 // 4) // SPATIAL_STRIDE * SPATIAL_STRIDE)
    vae.enable_tiling(
        tile_sample_min_height=tile,
        tile_sample_min_width=tile,
        tile_sample_stride_height=stride,
        tile_sample_stride_width=stride,
    )


@torch.no_grad()
def encode_video(vae: Any, frames: NDArray[np.uint8]) -> torch.Tensor:
    """RGB uint8 ``(F, H, W, 3)`` (F = 4k+1) -> normalised latents ``(16, T, h, w)`` float32 on CPU."""
    latent_shape(*frames.shape[:3])
    p = next(vae.parameters())
    x = frames_to_tensor(frames).to(device=p.device, dtype=p.dtype)
    mu = vae.encode(x).latent_dist.mode().float()
    mean, std = _stats(vae, mu)
    return ((mu - mean) / std)[0].cpu()


@torch.no_grad()
def decode_latents(vae: Any, latents: torch.Tensor) -> NDArray[np.uint8]:
    """Normalised latents ``(16, T, h, w)`` or ``(1, 16, T, h, w)`` -> RGB uint8 ``(F, H, W, 3)``."""
    z = latents if latents.ndim == 5 else latents.unsqueeze(0)
    p = next(vae.parameters())
    z = z.to(device=p.device, dtype=torch.float32)
    mean, std = _stats(vae, z)
    video = vae.decode((z * std + mean).to(p.dtype)).sample
    return tensor_to_frames(video)
