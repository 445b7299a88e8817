"""Model loading and ReCamMaster sampling shared by ``recam train`` and ``recam infer``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from recam.wandir import wan_paths


def load_transformer(
    wan_dir: str | os.PathLike[str],
    config: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Any:
    """The ReCamMaster transformer (float32, CPU) from ``wan_dir``, optionally with a checkpoint on top.

    ``wan_dir`` holds either ``transformer/`` (a saved ReCamMaster model, e.g. the tiny test one) or
    Wan2.1's original ``diffusion_pytorch_model*.safetensors``; ``config`` is the transformer config
    for the latter (default: Wan2.1-T2V-1.3B). ``checkpoint`` is either a full ReCamMaster checkpoint
    (``step20000.ckpt`` or ``recam train``'s ``recammaster.safetensors``; loaded strictly) or a
    ``recam train`` checkpoint folder / run folder (its trainable weights are loaded over the base).
    """
    from recam import convert
    from recam.model import ReCamMasterTransformer

    path = wan_paths(wan_dir).transformer
    if path.name == "config.json":
        model = ReCamMasterTransformer.from_pretrained(str(path.parent), local_files_only=True)
    else:
        shards = sorted(path.parent.glob("diffusion_pytorch_model*.safetensors"))
        sd: dict[str, torch.Tensor] = {}
        for s in shards:
            sd.update(convert.load_state_dict(s))
        model = ReCamMasterTransformer.from_wan_original(sd, config)
    if checkpoint is not None:
        load_checkpoint_into(model, checkpoint)
    return model.float()


def latest_checkpoint(run_or_ckpt: str | os.PathLike[str]) -> Path | None:
    """A ``recam train`` checkpoint folder: ``path`` itself, or the newest one under ``path/checkpoints``."""
    p = Path(run_or_ckpt)
    if (p / "state.json").exists():
        return p
    done = sorted(c for c in (p / "checkpoints").glob("step*") if (c / "state.json").exists())
    return done[-1] if done else None


def load_checkpoint_into(model: Any, checkpoint: str | os.PathLike[str]) -> None:
    """Load a full ReCamMaster checkpoint file (strict) or a ``recam train`` checkpoint (trainable weights)."""
    from safetensors.torch import load_file

    p = Path(checkpoint)
    if p.is_file():
        model.load_recammaster_checkpoint(p, strict=True)
        return
    ck = latest_checkpoint(p)
    if ck is None:
        raise FileNotFoundError(f"{p}: neither a checkpoint file nor a recam train run/checkpoint folder")
    sd = load_file(str(ck / "trainable.safetensors"))
    expected = set(model.trainable_parameter_names())
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - set(model.state_dict()))
    if missing or unexpected:
        raise KeyError(
            f"{ck}: trainable weights do not match the model: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}"
        )
    model.load_state_dict(sd, strict=False)


@torch.no_grad()
def sample(
    model: Any,
    source: torch.Tensor,
    prompt_emb: torch.Tensor,
    cam_emb: torch.Tensor,
    *,
    negative_emb: torch.Tensor | None = None,
    steps: int = 50,
    cfg: float = 5.0,
    shift: float = 5.0,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """Denoise target latents ``(1, 16, T, h, w)`` given source latents ``(1, 16, T, h, w)``.

    ``prompt_emb``/``negative_emb`` ``(1, L, D)``, ``cam_emb`` ``(1, T, 12)``. Each step feeds
    ``cat([x, source], frames)`` (target first) with one timestep; CFG batches the two prompts.
    """
    from recam.scheduler import (
        cfg_combine,
        euler_step,
        next_sigmas,
        recammaster_sigmas,
        timesteps_from_sigmas,
    )

    p = next(model.parameters())
    dev = p.device
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    gen = torch.Generator("cpu").manual_seed(seed)
    x = torch.randn(source.shape, generator=gen, dtype=torch.float32).to(dev)
    src = source.to(dev, dtype)
    use_cfg = cfg != 1.0 and negative_emb is not None
    ctx = torch.cat([prompt_emb, negative_emb], 0) if use_cfg else prompt_emb  # type: ignore[list-item]
    ctx = ctx.to(dev, dtype)
    nb = ctx.shape[0]
    cam = cam_emb.to(dev, dtype).expand(nb, -1, -1)
    sigmas = recammaster_sigmas(steps, shift)
    timesteps, nxt = timesteps_from_sigmas(sigmas), next_sigmas(sigmas)
    n_t = x.shape[2]
    auto = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    for i in tqdm(range(steps), desc="denoise", unit="step", disable=not progress):
        inp = torch.cat([x.to(dtype), src], dim=2).expand(nb, -1, -1, -1, -1)
        t = timesteps[i].to(dev).expand(nb)
        with auto:
            (v,) = model(inp, t, ctx, cam, return_dict=False, target_only=True)
        v = v[:, :, :n_t].float()
        v = cfg_combine(v[:1], v[1:], cfg) if use_cfg else v
        x = euler_step(x, v, float(sigmas[i]), float(nxt[i]))
    return x
