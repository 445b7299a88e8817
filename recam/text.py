"""umT5 text encoder (transformers ``UMT5EncoderModel``) and tokenizer from a local wan dir.

Prompts are encoded once (``recam prepare``) and the embeddings are stored trimmed to the real
token count; :func:`pad_prompt_embeddings` pads them with zeros to the model's text length (512 for
Wan), which is what Wan's pipeline does.

The original Wan checkpoint ``models_t5_umt5-xxl-enc-bf16.pth`` uses Wan's own key names;
:func:`wan_t5_to_hf` maps them to transformers' UMT5 names (see ``tests/test_recam_pipeline.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from recam.wandir import wan_paths

#: Wan's umT5-XXL encoder (``Wan2.1/wan/modules/t5.py``: umt5_xxl encoder-only).
UMT5_XXL_CONFIG: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "dense_act_fn": "gelu_new",
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-6,
    "dropout_rate": 0.0,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "tie_word_embeddings": False,
}
TEXT_LEN = 512

_BLOCK_MAP = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def wan_t5_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Wan's T5 encoder state dict -> ``UMT5EncoderModel`` names. Unknown keys raise ``KeyError``."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k == "token_embedding.weight":
            out["shared.weight"] = v
            out["encoder.embed_tokens.weight"] = v
        elif k == "norm.weight":
            out["encoder.final_layer_norm.weight"] = v
        else:
            m = _BLOCK_KEY.match(k)
            if not m or m.group(2) not in _BLOCK_MAP:
                raise KeyError(f"unexpected key in Wan T5 checkpoint: {k!r}")
            out[f"encoder.block.{m.group(1)}.{_BLOCK_MAP[m.group(2)]}"] = v
    return out


def hf_t5_to_wan(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`wan_t5_to_hf` (used to build synthetic original-layout checkpoints)."""
    inv = {v: k for k, v in _BLOCK_MAP.items()}
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k == "shared.weight":
            out["token_embedding.weight"] = v
        elif k == "encoder.final_layer_norm.weight":
            out["norm.weight"] = v
        elif k == "encoder.embed_tokens.weight":
            continue
        else:
            m = re.match(r"^encoder\.block\.(\d+)\.(.+)$", k)
            if not m or m.group(2) not in inv:
                raise KeyError(f"unexpected UMT5 key: {k!r}")
            out[f"blocks.{m.group(1)}.{inv[m.group(2)]}"] = v
    return out


def t5_config_from_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """UMT5 config of an encoder state dict (HF names): sizes read from the weights, the rest umT5-XXL's."""
    n_layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.block."))
    buckets, heads = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
    vocab, d_model = sd["shared.weight"].shape
    inner = sd["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    d_ff = sd["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    cfg = dict(UMT5_XXL_CONFIG)
    cfg.update(vocab_size=int(vocab), d_model=int(d_model), num_layers=n_layers, num_heads=int(heads),
               d_kv=int(inner) // int(heads), d_ff=int(d_ff), relative_attention_num_buckets=int(buckets))
    return cfg


def load_tokenizer(wan_dir: str | os.PathLike[str]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(wan_paths(wan_dir).tokenizer), local_files_only=True)


def load_text_encoder(
    wan_dir: str | os.PathLike[str], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    """``UMT5EncoderModel`` from ``text_encoder/`` or Wan's original ``models_t5_umt5-xxl-enc-bf16.pth``."""
    from transformers import UMT5Config, UMT5EncoderModel

    path = wan_paths(wan_dir).text_encoder
    model: Any
    if path.name == "config.json":
        model = UMT5EncoderModel.from_pretrained(str(path.parent), local_files_only=True, dtype=dtype)
    else:
        from recam.vae import _load_state_dict

        sd = wan_t5_to_hf(_load_state_dict(path))
        with torch.device("meta"):
            model = UMT5EncoderModel(UMT5Config(**t5_config_from_state_dict(sd)))
        model.load_state_dict(sd, strict=True, assign=True)
        model = model.to(dtype)
    model.requires_grad_(False)
    model.eval()
    return model.to(device)


class PromptEncoder:
    """Tokenizer + umT5 encoder: ``encode(prompts)`` -> list of ``(L_i, D)`` float32 CPU tensors."""

    def __init__(
        self,
        wan_dir: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_length: int = TEXT_LEN,
    ) -> None:
        self.tokenizer = load_tokenizer(wan_dir)
        self.model = load_text_encoder(wan_dir, device, dtype)
        self.device = torch.device(device)
        self.max_length = min(max_length, int(getattr(self.tokenizer, "model_max_length", max_length)))

    @property
    def dim(self) -> int:
        return int(self.model.config.d_model)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        tok = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids = tok.input_ids.to(self.device)
        mask = tok.attention_mask.to(self.device)
        hidden = self.model(ids, attention_mask=mask).last_hidden_state.float().cpu()
        lengths = mask.sum(dim=1).tolist()
        return [hidden[i, : max(1, int(n))].clone() for i, n in enumerate(lengths)]


def pad_prompt_embeddings(embs: Sequence[torch.Tensor], text_len: int) -> torch.Tensor:
    """Stack ``(L_i, D)`` embeddings into ``(B, text_len, D)``, zero after each prompt (as Wan does)."""
    d = embs[0].shape[-1]
    out = torch.zeros(len(embs), text_len, d, dtype=embs[0].dtype)
    for i, e in enumerate(embs):
        n = min(text_len, e.shape[0])
        out[i, :n] = e[:n]
    return out


def tokenizer_dir(wan_dir: str | os.PathLike[str]) -> Path:
    return wan_paths(wan_dir).tokenizer
