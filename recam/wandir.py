"""Where the Wan2.1 parts live inside a local ``--wan-dir`` (no hub access at run time).

Two layouts are understood, per part, first match wins:

=================  ==========================================  ===========================================
part               diffusers layout (``*-Diffusers`` repos)    original Wan2.1 layout (``Wan2.1-T2V-1.3B``)
=================  ==========================================  ===========================================
VAE                ``vae/`` (config.json + weights)            ``Wan2.1_VAE.pth`` / ``.safetensors``
text encoder       ``text_encoder/`` (UMT5EncoderModel)        ``models_t5_umt5-xxl-enc-bf16.pth``
tokenizer          ``tokenizer/``                              ``google/umt5-xxl/``
transformer (DiT)  ``transformer/`` (saved ReCamMaster model)  ``diffusion_pytorch_model*.safetensors``
                                                               + ``config.json`` at the top level
=================  ==========================================  ===========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VAE_FILES = ("Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors")
T5_FILES = ("models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-bf16.safetensors")
TOKENIZER_DIRS = ("tokenizer", "google/umt5-xxl")


class WanDirError(FileNotFoundError):
    """A part is missing from the wan dir; the message says which paths were tried."""


@dataclass(frozen=True)
class WanPaths:
    root: Path

    def _first(self, what: str, candidates: list[Path]) -> Path:
        for c in candidates:
            if c.exists():
                return c
        tried = ", ".join(str(c.relative_to(self.root)) for c in candidates)
        raise WanDirError(f"--wan-dir {self.root}: no {what} found (looked for {tried})")

    @property
    def vae(self) -> Path:
        return self._first("VAE", [self.root / "vae" / "config.json", *(self.root / f for f in VAE_FILES)])

    @property
    def text_encoder(self) -> Path:
        return self._first(
            "T5 text encoder",
            [self.root / "text_encoder" / "config.json", *(self.root / f for f in T5_FILES)],
        )

    @property
    def tokenizer(self) -> Path:
        return self._first("tokenizer", [self.root / d for d in TOKENIZER_DIRS]).resolve()

    @property
    def transformer(self) -> Path:
        cands = [self.root / "transformer" / "config.json"]
        shards = sorted(self.root.glob("diffusion_pytorch_model*.safetensors"))
        cands += shards
        return self._first("transformer", cands or [self.root / "diffusion_pytorch_model.safetensors"])


def wan_paths(wan_dir: str | os.PathLike[str]) -> WanPaths:
    root = Path(wan_dir).expanduser().resolve()
    if not root.is_dir():
        raise WanDirError(f"--wan-dir {root}: not a directory")
    return WanPaths(root)
