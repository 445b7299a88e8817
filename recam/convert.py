"""Key mapping between Wan2.1's original single-file names, diffusers' names and ReCamMaster's checkpoint.

* Wan original (``diffusion_pytorch_model.safetensors`` of Wan2.1-T2V-1.3B, also DiffSynth's ``WanModel``):
  ``blocks.N.self_attn.q.weight``, ``blocks.N.norm3.weight`` (cross-attention norm), ``blocks.N.modulation``,
  ``head.head.weight``, ``time_embedding.0.weight``, ...
* diffusers (``WanTransformer3DModel``): ``blocks.N.attn1.to_q.weight``, ``blocks.N.norm2.weight``,
  ``blocks.N.scale_shift_table``, ``proj_out.weight``, ``condition_embedder.time_embedder.linear_1.weight``, ...
* ReCamMaster (DiffSynth ``step20000.ckpt``) = Wan original names plus ``blocks.N.cam_encoder.{weight,bias}`` and
  ``blocks.N.projector.{weight,bias}``; those two keep their names in every convention.

Original -> diffusers goes through diffusers' own ``convert_wan_transformer_to_diffusers``; the inverse is
:func:`diffusers_to_wan_original` (tested as an exact round trip).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

# wrappers that training frameworks put in front of the DiT's own names
_PREFIXES = ("model.diffusion_model.", "_forward_module.", "module.", "pipe.dit.", "dit.", "model.")

_TOP_LEVEL_TO_ORIGINAL = {
    "condition_embedder.time_embedder.linear_1.": "time_embedding.0.",
    "condition_embedder.time_embedder.linear_2.": "time_embedding.2.",
    "condition_embedder.text_embedder.linear_1.": "text_embedding.0.",
    "condition_embedder.text_embedder.linear_2.": "text_embedding.2.",
    "condition_embedder.time_proj.": "time_projection.1.",
    "proj_out.": "head.head.",
    "patch_embedding.": "patch_embedding.",
}

_BLOCK_PART_TO_ORIGINAL = {
    "attn1": "self_attn",
    "attn2": "cross_attn",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "add_k_proj": "k_img",
    "add_v_proj": "v_img",
    "norm_added_k": "norm_k_img",
}

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def is_camera_key(key: str) -> bool:
    """True for ReCamMaster's ``blocks.N.cam_encoder.*`` / ``blocks.N.projector.*`` keys."""
    m = _BLOCK_KEY.match(key)
    return m is not None and m.group(2).split(".")[0] in ("cam_encoder", "projector")


def load_state_dict(path_or_state_dict: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read a checkpoint: ``.safetensors`` file, a folder of (sharded) safetensors, or a torch ``.ckpt/.pt/.pth``.

    A torch checkpoint that wraps the weights in ``state_dict`` / ``module`` is unwrapped.
    """
    if isinstance(path_or_state_dict, Mapping):
        return dict(path_or_state_dict)
    path = Path(path_or_state_dict)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{path}: folder holds no *.safetensors files")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            from safetensors.torch import load_file

            out.update(load_file(str(f)))
        else:
            obj = torch.load(str(f), map_location="cpu", weights_only=True)
            for wrapper in ("state_dict", "module", "model"):
                if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
                    obj = obj[wrapper]
            if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
                raise ValueError(f"{f}: not a state dict of tensors")
            out.update(obj)
    return out


def strip_prefixes(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix shared by every key (``model.diffusion_model.``, ``module.``, ``pipe.dit.``...)."""
    out = dict(sd)
    changed = True
    while changed and out:
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in out):
                out = {k[len(p) :]: v for k, v in out.items()}
                changed = True
    return out


def is_diffusers_naming(sd: Mapping[str, torch.Tensor]) -> bool:
    """True when keys follow diffusers' ``WanTransformer3DModel`` names, False for Wan original names."""
    keys = list(sd)
    if any(k.startswith("condition_embedder.") or ".attn1." in k or k.startswith("proj_out.") for k in keys):
        return True
    if any(k.startswith(("time_embedding.", "head.")) or ".self_attn." in k for k in keys):
        return False
    raise ValueError("cannot tell the naming of this checkpoint: it has neither Wan nor diffusers transformer keys")


def wan_original_to_diffusers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Wan original (or DiffSynth / ReCamMaster) names -> diffusers names, via diffusers' converter."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    camera = {k: v for k, v in sd.items() if is_camera_key(k)}
    rest = {k: v for k, v in sd.items() if not is_camera_key(k)}
    out = convert_wan_transformer_to_diffusers(rest)
    clash = set(out) & set(camera)
    if clash:
        raise ValueError(f"converted keys collide with camera keys: {sorted(clash)[:4]}")
    out.update(camera)
    return out


def diffusers_to_wan_original(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers names -> Wan original names (= ReCamMaster/DiffSynth names for the camera modules too)."""
    return {_diffusers_key_to_original(k): v for k, v in sd.items()}


def to_diffusers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported naming (wrapped or not) -> diffusers names."""
    sd = strip_prefixes(sd)
    return dict(sd) if is_diffusers_naming(sd) else wan_original_to_diffusers(sd)


def _diffusers_key_to_original(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    for src, dst in _TOP_LEVEL_TO_ORIGINAL.items():
        if key.startswith(src):
            return dst + key[len(src) :]
    m = _BLOCK_KEY.match(key)
    if not m:
        raise KeyError(f"no Wan original name for diffusers key {key!r}")
    idx, rest = m.groups()
    if rest == "scale_shift_table":
        return f"blocks.{idx}.modulation"
    parts = rest.split(".")
    if parts[0] in ("cam_encoder", "projector"):
        return key
    if parts[0] == "norm2":  # diffusers' norm2 is the cross-attention norm = Wan's norm3
        return f"blocks.{idx}.norm3." + ".".join(parts[1:])
    if parts[0] == "ffn":  # ffn.net.0.proj.* -> ffn.0.*, ffn.net.2.* -> ffn.2.*
        if parts[1:4] == ["net", "0", "proj"]:
            return f"blocks.{idx}.ffn.0." + ".".join(parts[4:])
        if parts[1:3] == ["net", "2"]:
            return f"blocks.{idx}.ffn.2." + ".".join(parts[3:])
        raise KeyError(f"no Wan original name for diffusers key {key!r}")
    if parts[0] in ("attn1", "attn2"):
        parts = [_BLOCK_PART_TO_ORIGINAL.get(p, p) for p in parts]
        if parts[1:3] == ["to_out", "0"]:
            parts = [parts[0], "o", *parts[3:]]
        return f"blocks.{idx}." + ".".join(parts)
    raise KeyError(f"no Wan original name for diffusers key {key!r}")
