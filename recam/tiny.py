"""A tiny random "wan dir" for tests and CPU demos: VAE, umT5, tokenizer and transformer, all small.

The layout is the diffusers one understood by :mod:`recam.wandir` (``vae/``, ``text_encoder/``,
``tokenizer/``, ``transformer/``); nothing is downloaded. The tokenizer is a character-level BPE
built in code with the ``tokenizers`` library (pad 0, eos 1, unk 2 like umT5).
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import torch

TINY_TEXT_DIM = 32
TINY_TEXT_LEN = 32


def build_tiny_tokenizer(max_length: int = TINY_TEXT_LEN) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    chars = sorted(set(string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation))
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def make_tiny_wan_dir(
    out: str | os.PathLike[str], seed: int = 0, text_len: int = TINY_TEXT_LEN, full_size: bool = False
) -> Path:
    """Write a tiny random wan dir to ``out`` (created); returns its path.

    ``full_size``: the transformer (Wan2.1-T2V-1.3B config) and the VAE (Wan2.1 config) are full size with
    random weights and the umT5 encoder is one layer wide enough for ``text_dim`` 4096, to exercise the
    pipeline at 81 x 480 x 832 on a GPU without the real weights.
    """
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from recam.model import ReCamMasterTransformer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer(text_len)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    vae: Any = (
        AutoencoderKLWan()
        if full_size
        else AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1)
    )
    vae.save_pretrained(str(out / "vae"))
    cfg = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=4096 if full_size else TINY_TEXT_DIM,
        d_kv=64 if full_size else 8,
        d_ff=256 if full_size else 64,
        num_layers=1 if full_size else 2,
        num_heads=64 if full_size else 4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=128,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
    )
    UMT5EncoderModel(cfg).save_pretrained(str(out / "text_encoder"))
    model = (
        ReCamMasterTransformer.from_config_file(None)
        if full_size
        else ReCamMasterTransformer.tiny(text_dim=TINY_TEXT_DIM)
    )
    model.save_pretrained(str(out / "transformer"))
    return out
