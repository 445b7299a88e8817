"""Inference parallelism for the ReCamMaster DiT across GPUs (or CPU processes): CFG and sequence parallel.

Modes (``recam infer --parallel MODE`` under ``torchrun --nproc-per-node N``):

``none``
    every process runs the whole model (no speed-up; the default).
``cfg``
    classifier-free guidance parallel: the model is called with a batch of 2 (prompt, negative prompt); rank ``r``
    of ``N = 2`` runs batch row ``r`` and the predictions are all-gathered. Exactly the 1-process computation.
``ulysses``
    sequence (context) parallel, DeepSpeed-Ulysses style: every rank holds ``1/N`` of the tokens of every latent
    frame through all token-wise work (norms, camera add, projections, cross-attention, FFN); for self-attention an
    all-to-all trades the token split for a head split (each rank attends over all ``2T h w / 4`` tokens with
    ``heads / N`` heads), and a second all-to-all trades it back. Needs ``heads % N == 0`` and
    ``tokens per frame % N == 0``.
``allgather``
    sequence parallel with the keys/values all-gathered instead (each rank: local queries, all keys/values, all
    heads). No head constraint (e.g. 8 GPUs with 12 heads); more communication than ``ulysses``.
``cfg+ulysses`` / ``cfg+allgather``
    both: ``N = 2 M`` ranks, two CFG groups of ``M`` sequence-parallel ranks each.

How the sequence split stays exact without touching the model: the transformer's forward calls each block with
``(hidden_states, encoder_hidden_states, temb, rotary_emb, cam_emb)``. A forward pre-hook on each block gives the
block this rank's tokens (for every latent frame ``f``, tokens ``[r n/N, (r+1) n/N)`` of its ``n``), and the
matching rows of the RoPE tables; the block's camera add (``view(B, 2T, -1, dim) + cam``) therefore still sees
``2T`` equal groups, one per frame. Self-attention runs :class:`SequenceParallelAttnProcessor`, which applies
RoPE locally before any exchange, so the gathered key order (rank-major) does not matter: attention without a mask
is invariant to a common permutation of keys and values. A forward hook on the last block all-gathers the tokens
back into the original order before the output head. Inference only (the collectives carry no gradients).

NCCL: every helper here sets ``NCCL_NVLS_ENABLE=0`` (NVLink multicast off, as the lent machines require) before the
process group is created; launchers should export it too.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

PARALLEL_MODES = ("none", "cfg", "ulysses", "allgather", "cfg+ulysses", "cfg+allgather")
#: Environment every NCCL process of this package starts with (NVLink multicast off).
NCCL_ENV = {"NCCL_NVLS_ENABLE": "0"}


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def set_nccl_env() -> None:
    """Put :data:`NCCL_ENV` into ``os.environ`` (without overriding an explicit setting)."""
    for k, v in NCCL_ENV.items():
        os.environ.setdefault(k, v)


def init_distributed(device: str | torch.device = "auto") -> DistInfo:
    """Join the ``torchrun`` process group (NCCL on GPU, gloo on CPU) if ``WORLD_SIZE > 1``; idempotent.

    ``device="auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
    """
    set_nccl_env()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if str(device) == "auto":
        cuda = torch.cuda.is_available()
        dev = torch.device("cuda", local % torch.cuda.device_count()) if cuda else torch.device("cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=dev if dev.type == "cuda" else None)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world, local, dev)


def _world(group: Any) -> int:
    return dist.get_world_size(group) if dist.is_initialized() else 1


def _rank(group: Any) -> int:
    return dist.get_rank(group) if dist.is_initialized() else 0


def _all_gather_parts(x: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """``x`` of every rank of ``group`` in rank order (equal shapes); ``[x]`` without a process group."""
    n = _world(group)
    if n == 1:
        return [x]
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(n)]
    dist.all_gather(parts, x, group=group)
    return parts


def all_gather_cat(x: torch.Tensor, dim: int, group: Any = None) -> torch.Tensor:
    """Concatenate ``x`` of every rank of ``group`` along ``dim`` (rank order). Needs equal shapes."""
    parts = _all_gather_parts(x, group)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


# ---------------------------------------------------------------------------------------------------- CFG parallel
class CFGParallel(nn.Module):
    """Wrap the transformer: the batch (prompt rows, then negative-prompt rows) is split over the ranks of
    ``group``; each rank runs its rows and the velocities are all-gathered, so callers (``recam.pipeline.sample``)
    see the full-batch output. A batch not divisible by the group size (no CFG) runs whole on every rank."""

    def __init__(self, model: nn.Module, group: Any = None) -> None:
        super().__init__()
        self.model = model
        self.group = group
        self._warned = False

    @property
    def config(self) -> Any:
        return self.model.config

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cam_emb: torch.Tensor,
        return_dict: bool = False,
        target_only: bool = False,
    ) -> tuple[torch.Tensor]:
        n, b = _world(self.group), hidden_states.shape[0]
        if n == 1 or b % n:
            if n > 1 and not self._warned:
                msg = f"CFG parallel: batch {b} does not split over {n} ranks; every rank runs it whole"
                warnings.warn(msg, stacklevel=2)
                self._warned = True
            return self.model(
                hidden_states, timestep, encoder_hidden_states, cam_emb, return_dict=False, target_only=target_only
            )
        k, r = b // n, _rank(self.group)
        sl = slice(r * k, (r + 1) * k)
        (v,) = self.model(
            hidden_states[sl],
            timestep[sl],
            encoder_hidden_states[sl],
            cam_emb[sl],
            return_dict=False,
            target_only=target_only,
        )
        return (all_gather_cat(v, 0, self.group),)


# ----------------------------------------------------------------------------------------------- sequence parallel
def shard_tokens(x: torch.Tensor, frames: int, rank: int, world: int) -> torch.Tensor:
    """This rank's tokens of ``x`` ``(B, frames * n, ...)``: tokens ``[rank n/world, (rank+1) n/world)`` of every
    frame, in frame order -> ``(B, frames * n / world, ...)``."""
    b, s = x.shape[:2]
    n = s // frames
    if frames * n != s or n % world:
        raise ValueError(
            f"sequence parallel over {world} ranks needs tokens per latent frame divisible by {world}; "
            f"got {s} tokens in {frames} frames"
        )
    return x.reshape(b, frames, world, n // world, *x.shape[2:])[:, :, rank].reshape(b, s // world, *x.shape[2:])


def gather_tokens(x: torch.Tensor, frames: int, group: Any = None) -> torch.Tensor:
    """Inverse of :func:`shard_tokens` over the ranks of ``group``: ``(B, frames m, D)`` -> ``(B, frames m N, D)``."""
    parts = _all_gather_parts(x, group)
    n = len(parts)
    if n == 1:
        return x
    b, s = x.shape[:2]
    stacked = torch.stack([p.reshape(b, frames, s // frames, *x.shape[2:]) for p in parts], dim=2)
    return stacked.reshape(b, s * n, *x.shape[2:])


def _all_to_all(x: torch.Tensor, group: Any) -> torch.Tensor:
    """``x`` ``(N, ...)``: chunk ``j`` goes to rank ``j``; returns ``(N, ...)`` with chunk ``i`` from rank ``i``."""
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # contiguous (empty_like keeps x's strides)
    dist.all_to_all_single(out, x, group=group)
    return out


class SequenceParallelAttnProcessor:
    """Self-attention over tokens split across the ranks of ``group`` (``mode`` "ulysses" or "allgather").

    Same projections, across-heads RMS norm and float32 RoPE as :class:`recam.model.ReCamAttnProcessor` (on the
    local tokens), then the distributed attention, then the output projection on the local tokens.
    """

    def __init__(self, group: Any = None, mode: str = "ulysses", backend: str | None = None) -> None:
        if mode not in ("ulysses", "allgather"):
            raise ValueError(f"sequence-parallel mode must be ulysses or allgather, got {mode!r}")
        self.group, self.mode = group, mode
        # SDPA backend pinned by the processor this one replaces (ReCamAttnProcessor.backend), None = PyTorch's choice
        self.backend = backend

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of (B, S, H, D) tensors -> (B, S, H, D)."""
        import contextlib

        ctx: Any = contextlib.nullcontext()
        if self.backend is not None:
            from recam.attn_kernels import sdpa_backend as _sdpa_backend

            ctx = _sdpa_backend(self.backend)
        with ctx:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        from recam.attention import qkv_heads

        if encoder_hidden_states is not None or attention_mask is not None:
            raise NotImplementedError("SequenceParallelAttnProcessor is for unmasked self-attention only")
        query, key, value = qkv_heads(attn, hidden_states, None, rotary_emb)
        n = _world(self.group)
        b, s_local, heads, hd = query.shape
        if self.mode == "ulysses":
            if heads % n:
                raise ValueError(f"ulysses needs attention heads ({heads}) divisible by ranks ({n}); use allgather")
            h = heads // n

            def seq_to_heads(t: torch.Tensor) -> torch.Tensor:  # (B, S/N, H, D) -> (B, S, H/N, D)
                t = t.reshape(b, s_local, n, h, hd).permute(2, 0, 1, 3, 4)
                return _all_to_all(t, self.group).permute(1, 0, 2, 3, 4).reshape(b, n * s_local, h, hd)

            out = self._sdpa(seq_to_heads(query), seq_to_heads(key), seq_to_heads(value))
            out = out.reshape(b, n, s_local, h, hd).permute(1, 0, 2, 3, 4)  # chunk i -> rank i
            out = _all_to_all(out, self.group).permute(1, 2, 0, 3, 4).reshape(b, s_local, heads, hd)
        else:
            out = self._sdpa(query, all_gather_cat(key, 1, self.group), all_gather_cat(value, 1, self.group))
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[0](out)


class SequenceParallel:
    """Make a ``ReCamMasterTransformer`` run sequence-parallel over ``group`` (in place; :meth:`remove` undoes).

    Registers the token-splitting hooks on its blocks and :class:`SequenceParallelAttnProcessor` on every
    self-attention (``attn1``); cross-attention, FFN and everything outside the blocks are unchanged.
    """

    _BLOCK_ARGS = ("hidden_states", "encoder_hidden_states", "temb", "rotary_emb", "cam_emb", "target_only")

    def __init__(self, model: Any, mode: str = "ulysses", group: Any = None) -> None:
        self.model, self.mode, self.group = model, mode, group
        self.world, self.rank = _world(group), _rank(group)
        heads = model.config["num_attention_heads"]
        if mode == "ulysses" and heads % self.world:
            raise ValueError(
                f"--parallel ulysses needs the attention heads ({heads}) divisible by the sequence-parallel ranks "
                f"({self.world}); use --parallel allgather"
            )
        self._old_processors = [blk.attn1.processor for blk in model.blocks]
        for blk, old in zip(model.blocks, self._old_processors, strict=True):
            blk.attn1.set_processor(SequenceParallelAttnProcessor(group, mode, getattr(old, "backend", None)))
        self._frames = 0
        self._handles = [blk.register_forward_pre_hook(self._pre_hook, with_kwargs=True) for blk in model.blocks]
        self._handles.append(model.blocks[-1].register_forward_hook(self._post_hook))

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        vals = dict(zip(self._BLOCK_ARGS, args, strict=False))
        vals.update(kwargs)
        hidden, rotary, cam = vals["hidden_states"], vals["rotary_emb"], vals["cam_emb"]
        frames = 2 * cam.shape[1]
        full = rotary[0].shape[1]
        self._frames = frames
        if hidden.shape[1] == full:  # first block: split the tokens
            vals["hidden_states"] = shard_tokens(hidden, frames, self.rank, self.world)
        vals["rotary_emb"] = tuple(shard_tokens(t, frames, self.rank, self.world) for t in rotary)
        n_pos = min(len(args), len(self._BLOCK_ARGS))
        new_args = tuple(vals[k] for k in self._BLOCK_ARGS[:n_pos])
        new_kwargs = {k: vals[k] for k in kwargs}
        return new_args, new_kwargs

    def _post_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # a target_only last block returns the first half of this rank's frames (shards keep frame order)
        frames = self._frames * output.shape[1] // args[0].shape[1]
        return gather_tokens(output, frames, self.group)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        for blk, proc in zip(self.model.blocks, self._old_processors, strict=True):
            blk.attn1.set_processor(proc)
        self._handles = []


def _sp_mode(mode: str) -> str | None:
    return mode.split("+")[-1] if mode in ("ulysses", "allgather", "cfg+ulysses", "cfg+allgather") else None


def parallelize(model: Any, mode: str) -> Any:
    """The model to sample with under ``mode`` (see the module docstring); the process group must be up
    (:func:`init_distributed`) when ``WORLD_SIZE > 1``. Returns ``model`` itself, modified in place for sequence
    parallelism, or a :class:`CFGParallel` wrapper around it."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"--parallel must be one of {', '.join(PARALLEL_MODES)}, got {mode!r}")
    world = _world(None)
    if mode == "none" or world == 1:
        return model
    rank = _rank(None)
    if mode == "cfg":
        return CFGParallel(model, None)
    sp = _sp_mode(mode)
    assert sp is not None
    if mode.startswith("cfg+"):
        if world % 2:
            raise ValueError(f"--parallel {mode} needs an even number of processes, got {world}")
        m = world // 2
        # ranks [0, m) run the prompt, [m, 2m) the negative prompt; sequence groups are those halves,
        # CFG groups pair rank i with rank i + m. Every rank creates every group (collective calls).
        sp_groups = [dist.new_group(list(range(c * m, (c + 1) * m))) for c in range(2)]
        cfg_groups = [dist.new_group([i, i + m]) for i in range(m)]
        SequenceParallel(model, sp, sp_groups[rank // m])
        return CFGParallel(model, cfg_groups[rank % m])
    SequenceParallel(model, sp, None)
    return model
