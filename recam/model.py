"""ReCamMaster transformer: diffusers' Wan2.1 DiT with ReCamMaster's per-block camera modules.

Input layout (ReCamMaster, arXiv 2503.11647): the noisy TARGET latents and the clean SOURCE latents are
concatenated along frames, target first, ``(B, 16, 2T, h, w)``; RoPE positions run over frames ``0 .. 2T-1``.
Per DiT block, with ``x`` the block input and ``t`` the block's modulation
``(shift, scale, gate, c_shift, c_scale, c_gate) = scale_shift_table + temb``::

    cam  = cam_encoder(cam_emb)                     # (B, T, 12) -> (B, T, dim), zero-initialised
    cam  = cat([cam, cam], frames)                  # the source half gets the same camera rows
    a    = norm1(x) * (1 + scale) + shift + cam     # cam broadcast over each frame's h*w/4 tokens
    x    = x + gate * projector(self_attn(a))       # projector identity-initialised
    x    = x + cross_attn(norm2(x), text)
    x    = x + c_gate * ffn(norm3(x) * (1 + c_scale) + c_shift)

The module names ``blocks.N.cam_encoder`` and ``blocks.N.projector`` are ReCamMaster's, so a state dict
converted with :mod:`recam.convert` matches the released DiffSynth checkpoint key for key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanTransformer3DModel,
    WanTransformerBlock,
)
from torch import nn
from torch.utils.checkpoint import checkpoint

from recam import convert
from recam.attention import INFERENCE_FUSIONS, ReCamAttnProcessor, qkv_heads, self_attention
from recam.attn_kernels import ATTENTION_BACKENDS, check_backend, linear_gelu_tanh, qk_norm_rope, rope_fp32
from recam.attn_kernels import sdpa_backend as _sdpa_backend
from recam.flops import flops_per_forward, flops_per_train_step
from recam.recompute import RECOMPUTE_POLICIES

# names other modules import from here (the model's public surface predates the split into
# attention / attn_kernels / flops / recompute)
__all__ = [
    "ATTENTION_BACKENDS",
    "CAM_DIM",
    "INFERENCE_FUSIONS",
    "ReCamAttnProcessor",
    "ReCamMasterTransformer",
    "ReCamMasterTransformerBlock",
    "_sdpa_backend",
    "flops_per_forward",
    "flops_per_train_step",
    "linear_gelu_tanh",
    "load_config",
    "qk_norm_rope",
    "qkv_heads",
    "rope_fp32",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
FULL_CONFIG = CONFIG_DIR / "wan2.1_t2v_1.3b.json"
TINY_CONFIG = CONFIG_DIR / "tiny.json"
CAM_DIM = 12
TRAINABLE_KEYWORDS = ("attn1", "cam_encoder", "projector")


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A transformer config as a dict: None -> Wan2.1-T2V-1.3B, "tiny", a JSON path, or a mapping."""
    if config is None:
        path: Path | None = FULL_CONFIG
    elif isinstance(config, Mapping):
        path = None
        data = dict(config)
    elif str(config) == "tiny":
        path = TINY_CONFIG
    else:
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"transformer config not found: {path}")
        data = json.loads(path.read_text())
    return {k: (tuple(v) if k == "patch_size" else v) for k, v in data.items() if not k.startswith("_")}


class ReCamMasterTransformerBlock(WanTransformerBlock):
    """``WanTransformerBlock`` plus ``cam_encoder`` (12 -> dim, zero init) and ``projector`` (dim -> dim, identity)."""

    cam_encoder: nn.Linear
    projector: nn.Linear

    @classmethod
    def upgrade(cls, block: WanTransformerBlock) -> ReCamMasterTransformerBlock:
        """Turn a freshly built ``WanTransformerBlock`` into this class in place (no re-initialisation)."""
        dim = block.scale_shift_table.shape[-1]
        block.__class__ = cls
        assert isinstance(block, cls)
        block.cam_encoder = nn.Linear(CAM_DIM, dim)
        block.projector = nn.Linear(dim, dim)
        block.reset_camera_modules()
        return block

    @torch.no_grad()
    def reset_camera_modules(self) -> None:
        """ReCamMaster's initialisation: cam_encoder = 0, projector = identity (the block then equals Wan's)."""
        self.cam_encoder.weight.zero_()
        self.cam_encoder.bias.zero_()
        self.projector.weight.copy_(torch.eye(self.projector.in_features))
        self.projector.bias.zero_()

    # selective recomputation in training: None = off; else a mode of recam.recompute.RECOMPUTE_POLICIES
    selective_recompute: str | None = None
    # inference-only FFN rewrite used when autograd is off: ("gelu",) = GELU in the up-projection's GEMM epilogue
    inference_fusions: tuple[str, ...] = ()

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        cam_emb: torch.Tensor,
        target_only: bool = False,
    ) -> torch.Tensor:
        """One block over the ``2T`` target-then-source frames. ``target_only``: return only the target half
        ``(B, S/2, D)`` and skip the work that only the source half's outputs need (their self-attention
        queries with :class:`ReCamAttnProcessor`, their cross-attention and FFN everywhere); for the last block,
        whose source-half outputs nobody reads. Keys and values still cover all ``2T`` frames."""
        args = (hidden_states, encoder_hidden_states, temb, rotary_emb, cam_emb, target_only)
        if self.selective_recompute is not None and torch.is_grad_enabled():
            context_fn = RECOMPUTE_POLICIES[self.selective_recompute]
            return checkpoint(self._block_forward, *args, use_reentrant=False, context_fn=context_fn)
        return self._block_forward(*args)

    def _block_forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        cam_emb: torch.Tensor,
        target_only: bool = False,
    ) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)
        dtype = hidden_states.dtype

        # camera: (B, T, 12) -> (B, T, dim), added to every token of its latent frame in both halves
        cam = self.cam_encoder(cam_emb.to(self.cam_encoder.weight.dtype)).float()
        b, s, d = hidden_states.shape
        t = cam.shape[1]
        norm_x = self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa
        norm_x = (norm_x.view(b, 2, t, -1, d) + cam.view(b, 1, t, 1, d)).view(b, s, d).to(dtype)

        # 1. self-attention, projector before the gate (target_only keeps the target rows)
        rows = s // 2 if target_only else None
        attn_output = self_attention(self.attn1, norm_x, rotary_emb, self.projector, rows)
        hidden_states = (hidden_states[:, :rows].float() + attn_output * gate_msa).to(dtype)

        # 2. cross-attention (processor as set)
        norm_x = self.norm2(hidden_states.float()).to(dtype)
        hidden_states = hidden_states + self.attn2(norm_x, encoder_hidden_states, None, None)

        # 3. feed-forward (net = GELU(up), dropout, down[, dropout])
        norm_x = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).to(dtype)
        up = self.ffn.net[0]
        if "gelu" in self.inference_fusions and not torch.is_grad_enabled():
            assert isinstance(up.proj, nn.Linear)
            h = linear_gelu_tanh(norm_x, up.proj.weight, up.proj.bias)
        else:
            h = up(norm_x)
        for layer in self.ffn.net[1:]:
            h = layer(h)
        return (hidden_states.float() + h.float() * c_gate_msa).to(dtype)


class ReCamMasterTransformer(WanTransformer3DModel):
    """Wan2.1 DiT (diffusers) with ReCamMaster's camera conditioning; defaults are Wan2.1-T2V-1.3B."""

    _no_split_modules = ["ReCamMasterTransformerBlock"]
    _repeated_blocks = ["ReCamMasterTransformerBlock"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
    ) -> None:
        if image_dim is not None or added_kv_proj_dim is not None:
            raise ValueError(
                "ReCamMaster is built on the text-to-video Wan model: image_dim/added_kv_proj_dim unsupported"
            )
        super().__init__(
            patch_size=tuple(patch_size),
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim,
            rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        for block in self.blocks:
            ReCamMasterTransformerBlock.upgrade(block)  # type: ignore[arg-type]
        # with gradient checkpointing on: recompute only the first N blocks (None = all of them)
        self.recompute_blocks: int | None = None

    # ------------------------------------------------------------------ construction / loading
    @classmethod
    def from_config_file(
        cls, config: str | os.PathLike[str] | Mapping[str, Any] | None = None, **overrides: Any
    ) -> ReCamMasterTransformer:
        """Randomly initialised model from a local config (None = Wan2.1-T2V-1.3B), camera modules at init."""
        cfg = load_config(config)
        cfg.update(overrides)
        return cls(**cfg)

    @classmethod
    def tiny(cls, **overrides: Any) -> ReCamMasterTransformer:
        """Tiny random model for CPU tests (2 blocks, dim 24, text_dim 32)."""
        return cls.from_config_file("tiny", **overrides)

    @classmethod
    def from_wan_original(
        cls,
        path_or_state_dict: str | os.PathLike[str] | Mapping[str, torch.Tensor],
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        dtype: torch.dtype | None = None,
    ) -> ReCamMasterTransformer:
        """Build from Wan2.1 original single-file weights (Wan / DiffSynth names) with a local config.

        Uses diffusers' own converter; no hub access. Camera modules keep their ReCamMaster initialisation unless
        the file already holds them (then they are loaded too). Missing or unexpected Wan weights raise KeyError.
        """
        source = str(path_or_state_dict) if not isinstance(path_or_state_dict, Mapping) else "<state dict>"
        sd = convert.to_diffusers(convert.load_state_dict(path_or_state_dict))
        model = cls.from_config_file(config)
        expected = set(model.state_dict())
        camera = {k for k in expected if convert.is_camera_key(k)}
        missing = sorted(expected - camera - set(sd))
        unexpected = sorted(set(sd) - expected)
        if missing or unexpected:
            raise KeyError(_key_report(source, missing, unexpected))
        model.load_state_dict(sd, strict=False)
        if dtype is not None:
            model.to_mixed_precision(dtype)
        return model

    def load_recammaster_checkpoint(
        self, path_or_state_dict: str | os.PathLike[str] | Mapping[str, torch.Tensor], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        """Load a ReCamMaster checkpoint (DiffSynth ``step20000.ckpt`` names, or diffusers names).

        Returns (missing, unexpected) key lists (diffusers names); with ``strict`` any of them raises KeyError
        naming the file and the first offending keys. Shape mismatches always raise.
        """
        source = str(path_or_state_dict) if not isinstance(path_or_state_dict, Mapping) else "<state dict>"
        sd = convert.to_diffusers(convert.load_state_dict(path_or_state_dict))
        expected = self.state_dict()
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        if strict and (missing or unexpected):
            raise KeyError(_key_report(source, missing, unexpected))
        for k in sorted(set(sd) & set(expected)):
            if sd[k].shape != expected[k].shape:
                raise ValueError(
                    f"{source}: key {k} has shape {tuple(sd[k].shape)}, model expects {tuple(expected[k].shape)}"
                )
        self.load_state_dict(sd, strict=False)
        return missing, unexpected

    def recammaster_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights in ReCamMaster/DiffSynth (= Wan original + camera modules) names."""
        return convert.diffusers_to_wan_original(self.state_dict())

    def to_mixed_precision(self, dtype: torch.dtype = torch.bfloat16) -> ReCamMasterTransformer:
        """Cast to ``dtype`` but keep ``_keep_in_fp32_modules`` (time embedder, modulation tables, norms, RoPE)
        in float32, as diffusers' ``from_pretrained(torch_dtype=...)`` does."""
        keep = self._keep_in_fp32_modules or []
        tensors: dict[str, torch.Tensor] = dict(self.named_parameters())
        tensors.update(self.named_buffers())
        kept = {n: t.detach().float().clone() for n, t in tensors.items() if any(k in n.split(".") for k in keep)}
        nn.Module.to(self, dtype)
        for n, t in self.named_parameters():
            if n in kept:
                t.data = kept[n].to(t.device)
        for n, b in self.named_buffers():
            if n in kept:
                b.data = kept[n].to(b.device)
        return self

    # ------------------------------------------------------------------ training helpers
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters ReCamMaster trains: self-attention (attn1), cam_encoder, projector."""
        return [p for n, p in self.named_parameters() if _is_trainable_name(n)]

    def trainable_parameter_names(self) -> list[str]:
        return [n for n, _ in self.named_parameters() if _is_trainable_name(n)]

    def freeze_for_recammaster(self) -> list[nn.Parameter]:
        """Freeze everything except :meth:`trainable_parameters` (which are returned)."""
        self.requires_grad_(False)
        params = self.trainable_parameters()
        for p in params:
            p.requires_grad_(True)
        return params

    # ------------------------------------------------------------------ speed options
    def set_fast_attention(
        self,
        enabled: bool = True,
        self_backend: str | None = None,
        cross_backend: str | None = None,
        contiguous_heads: bool = False,
        inference_fusions: Iterable[str] | str = (),
    ) -> None:
        """Use :class:`ReCamAttnProcessor` (fused QKV GEMM, fp32 RoPE on half-width tables) in every block,
        optionally pinning the kernel of self-attention and of cross-attention: a name of
        :data:`ATTENTION_BACKENDS` (SDPA backends, ``"fa4"`` FlashAttention-4, ``"fp8"`` inference-only FP8;
        None = PyTorch's SDPA choice). ``fa4``/``fp8`` need CUDA and fall back to SDPA elsewhere.

        ``inference_fusions`` (only with ``enabled``; used only while autograd is off, i.e. denoising): names from
        :data:`INFERENCE_FUSIONS` or ``"all"``: ``qk_norm_rope`` and ``out_proj`` in the self-attention processor,
        ``gelu`` in the block's FFN (see :mod:`recam.attention`).

        On torch 2.11 + cuDNN 9.19 do not mix eager and compiled cuDNN attention backward passes of the same
        shape in one process (see BENCHMARKS.md: a reused cuDNN plan gave wrong gradients)."""
        check_backend(self_backend)
        check_backend(cross_backend)
        fusions = tuple(INFERENCE_FUSIONS) if inference_fusions == "all" else tuple(inference_fusions)
        unknown = sorted(set(fusions) - set(INFERENCE_FUSIONS))
        if unknown:
            raise ValueError(f"unknown inference fusion(s) {unknown}; choose from {list(INFERENCE_FUSIONS)} or 'all'")
        fusions = tuple(f for f in INFERENCE_FUSIONS if f in fusions) if enabled else ()
        attn_fusions = tuple(f for f in fusions if f != "gelu")
        for block in self.blocks:
            for attn, backend, fus in ((block.attn1, self_backend, attn_fusions), (block.attn2, cross_backend, ())):
                assert isinstance(attn, WanAttention)
                proc = ReCamAttnProcessor(backend, contiguous_heads, fus) if enabled else attn._default_processor_cls()
                attn.set_processor(proc)  # type: ignore[arg-type]
            block.inference_fusions = tuple(f for f in fusions if f == "gelu")  # type: ignore[assignment]

    def set_selective_recompute(self, mode: str | None) -> None:
        """Training memory/speed trade-off per block: None, "attention" or "attention+qkv" (see the block)."""
        if mode is not None and mode not in RECOMPUTE_POLICIES:
            raise ValueError(f"selective recompute mode must be one of {sorted(RECOMPUTE_POLICIES)} or None")
        for block in self.blocks:
            block.selective_recompute = mode  # type: ignore[assignment]

    def compile_blocks(
        self, coordinate_descent_tuning: bool = False, skip_last: bool = False, **compile_kwargs: Any
    ) -> None:
        """``torch.compile`` each transformer block (identical blocks share one compiled graph).

        ``coordinate_descent_tuning``: let inductor tune the block sizes of its generated (norm / modulation)
        kernels (inductor option of that name; ~+15 s compilation on an H100, see BENCHMARKS.md).
        ``skip_last``: leave the last block eager. ``target_only`` calls reach only that block, and they would
        compile a second graph for 1/30 of the work: worth it for a training run, not for the 50 steps of one
        video (``recam infer``)."""
        if coordinate_descent_tuning:
            options = dict(compile_kwargs.pop("options", None) or {})
            options["coordinate_descent_tuning"] = True
            compile_kwargs["options"] = options
        blocks = list(self.blocks)
        for block in blocks[:-1] if skip_last else blocks:
            block.compile(**compile_kwargs)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cam_emb: torch.Tensor,
        return_dict: bool = False,
        attention_kwargs: dict[str, Any] | None = None,
        target_only: bool = False,
    ) -> tuple[torch.Tensor]:
        """hidden_states (B, C, 2T, h, w) target-then-source latents; timestep (B,) in [0, 1000];
        encoder_hidden_states (B, L, text_dim); cam_emb (B, T, 12). Returns ``(velocity (B, C, 2T, h, w),)``,
        or with ``target_only`` ``(velocity (B, C, T, h, w),)``: only the target half, which is all that sampling
        and the training loss read; equal to ``velocity[:, :, :T]`` of the full output up to float rounding, and
        cheaper (the last block skips the source half's queries, cross-attention and FFN, the head runs on half
        the tokens)."""
        if attention_kwargs:
            raise ValueError("attention_kwargs (LoRA scale) is not supported by ReCamMasterTransformer")
        batch_size, _, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config["patch_size"]
        post_f, post_h, post_w = num_frames // p_t, height // p_h, width // p_w
        if post_f % 2 or post_f == 0:
            raise ValueError(f"hidden_states needs an even number of latent frames (target+source), got {num_frames}")
        if cam_emb.shape != (batch_size, post_f // 2, CAM_DIM):
            raise ValueError(
                f"cam_emb must have shape (B, T, 12) = ({batch_size}, {post_f // 2}, 12), got {tuple(cam_emb.shape)}"
            )
        if timestep.ndim != 1:
            raise ValueError(f"timestep must have shape (B,), got {tuple(timestep.shape)}")

        rotary_emb = self.rope(hidden_states)
        hidden_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()

        temb, timestep_proj, encoder_hidden_states, _ = self.condition_embedder(timestep, encoder_hidden_states, None)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))

        recompute = torch.is_grad_enabled() and self.gradient_checkpointing
        n_recompute = len(self.blocks) if self.recompute_blocks is None else self.recompute_blocks
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # passed (positionally: diffusers' checkpoint function takes no keywords) only to the last block, so
            # hooks and compiled graphs of the other blocks see the usual call
            args: tuple[Any, ...] = (hidden_states, encoder_hidden_states, timestep_proj, rotary_emb, cam_emb)
            if target_only and i == last:
                args = (*args, True)
            if recompute and i < n_recompute:
                hidden_states = self._gradient_checkpointing_func(block, *args)
            else:
                hidden_states = block(*args)
        if target_only:
            post_f //= 2

        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(batch_size, post_f, post_h, post_w, p_t, p_h, p_w, -1)
        hidden_states = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return (hidden_states.flatten(6, 7).flatten(4, 5).flatten(2, 3),)


def _is_trainable_name(name: str) -> bool:
    parts = name.split(".")
    return any(k in parts for k in TRAINABLE_KEYWORDS)


def _key_report(source: str, missing: Iterable[str], unexpected: Iterable[str], limit: int = 8) -> str:
    missing, unexpected = list(missing), list(unexpected)
    msg = [f"{source}: checkpoint does not match the ReCamMaster transformer"]
    if missing:
        msg.append(f"{len(missing)} missing key(s), e.g. {missing[:limit]}")
    if unexpected:
        msg.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:limit]}")
    return "; ".join(msg)
