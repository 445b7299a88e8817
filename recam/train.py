"""``recam train``: fine-tune ReCamMaster's trainable modules on a prepared latent cache.

One step (ReCamMaster's recipe): draw a (condition, target) pair of one scene, a training timestep
``t`` of the 1000 shifted flow-matching timesteps and noise; feed ``cat([noisy target, clean
source], frames)`` with the camera embedding and the target's prompt; the loss is the MSE between the
predicted and true velocity ``noise - x0`` on the target half only, times the reference's timestep
weight. AdamW over the model's trainable parameters (self-attention, cam_encoder, projector).

bf16 autocast with bf16 frozen weights on GPU, float32 on CPU; DDP over all visible GPUs through
accelerate (``accelerate launch -m recam.cli train ...`` or ``torchrun``). Every ``--save-every``
steps a checkpoint folder ``RUN/checkpoints/stepNNNNNNN/`` (``trainable.safetensors``,
``optimizer.safetensors``, ``state.json``) is written atomically; a rerun with the same ``--out``
resumes from the newest. ``RUN/log.csv`` gets one row per ``--log-every`` steps (and TensorBoard
events in ``RUN/tb`` when tensorboard is installed). At the end ``RUN/recammaster.safetensors``
holds the whole DiT in ReCamMaster/DiffSynth names (loadable by ``recam infer --checkpoint``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from multicam.io import atomic_write_json, replace_dir
from recam.data import PairDataset, read_cache_settings
from recam.pipeline import latest_checkpoint, load_transformer

LOG_FIELDS = ("step", "loss", "loss_ema", "lr", "sigma", "seconds", "samples_per_s", "peak_gib")


@dataclass
class TrainConfig:
    cache: str
    wan_dir: str
    out: str
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    max_grad_norm: float = 0.0
    shift: float = 5.0
    gradient_checkpointing: bool = False
    #: With gradient checkpointing: recompute only the first N blocks (None = all), to trade memory for speed.
    recompute_blocks: int | None = None
    #: The model's fused-QKV / fp32-RoPE attention processor (same function, less elementwise work).
    fast_attention: bool = True
    #: ``torch.compile`` each transformer block (GPU; the first steps are slow while it compiles).
    compile: bool = False
    save_every: int = 500
    log_every: int = 10
    #: Every this many steps (and before the first), the loss on a fixed set of pairs, timesteps and
    #: noise goes to ``RUN/eval.csv`` (0 = off): a noise-free measure of progress.
    eval_every: int = 0
    eval_items: int = 8
    seed: int = 0
    num_workers: int = 0
    transformer_config: str | None = None
    init_checkpoint: str | None = None
    export: bool = True
    precision: str = "auto"  # auto | bf16 | fp32
    progress: bool = True


class StepBatches(torch.utils.data.Sampler[list[int]]):
    """Batch indices of steps ``start..steps-1`` for rank ``rank`` of ``world_size``.

    Step ``s`` draws one global batch of ``batch * world_size`` indices from ``default_rng([seed, s])`` and rank
    ``r`` takes its slice ``[r batch, (r+1) batch)``. Deterministic per step (a resumed run sees exactly the batches
    it would have seen) and independent of how the global batch is split: 2 processes of batch 1 see the samples
    of 1 process of batch 2.
    """

    def __init__(
        self, n: int, batch: int, seed: int, start: int, steps: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.batch, self.seed, self.start, self.steps = n, batch, seed, start, steps
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        lo = self.rank * self.batch
        for s in range(self.start, self.steps):
            idx = np.random.default_rng([self.seed, s]).integers(0, self.n, self.batch * self.world_size)
            yield idx[lo : lo + self.batch].tolist()

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


def sample_noise(
    seed: int, step: int, first: int, shape: tuple[int, ...], n_sigmas: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Timestep indices ``(B,)`` and noise ``(B, *shape[1:])`` of samples ``first .. first+B-1`` of the global
    batch of ``step``: each sample from its own generator seeded by ``(seed, step, global sample index)``, so the
    draws do not depend on the number of processes the global batch is split over."""
    idx, noise = [], []
    for j in range(shape[0]):
        state = np.random.SeedSequence([seed, step, first + j]).generate_state(1)[0]
        gen = torch.Generator("cpu").manual_seed(int(state))
        idx.append(torch.randint(0, n_sigmas, (1,), generator=gen))
        noise.append(torch.randn(shape[1:], generator=gen))
    return torch.cat(idx), torch.stack(noise)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("target", "source", "cam_emb", "prompt_emb"):
        out[k] = torch.stack([it[k] for it in items])
    return out


def _save_checkpoint(
    run: Path,
    step: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    names: list[str],
    extra: dict[str, Any],
) -> Path:
    from safetensors.torch import save_file

    params = dict(model.named_parameters())
    final = run / "checkpoints" / f"step{step:07d}"
    tmp = run / "checkpoints" / f".step{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {n: params[n].detach().float().cpu().contiguous() for n in names}, str(tmp / "trainable.safetensors")
    )
    opt: dict[str, torch.Tensor] = {}
    for i, p in enumerate(optimizer.param_groups[0]["params"]):
        for k, v in optimizer.state.get(p, {}).items():
            opt[f"{i}.{k}"] = (
                (v if torch.is_tensor(v) else torch.tensor(v)).detach().float().cpu().contiguous()
            )
    save_file(opt, str(tmp / "optimizer.safetensors"))
    atomic_write_json(tmp / "state.json", {"step": step, **extra})
    replace_dir(tmp, final)
    return final


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    from safetensors.torch import load_file

    sd = load_file(str(path))
    params = optimizer.param_groups[0]["params"]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in sd.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = v
    for i, st in state.items():
        p = params[i]
        optimizer.state[p] = {k: (v.to(p.device) if k != "step" else v) for k, v in st.items()}


def flow_matching_loss(
    model: Any,
    x0: torch.Tensor,
    source: torch.Tensor,
    prompt_emb: torch.Tensor,
    cam_emb: torch.Tensor,
    noise: torch.Tensor,
    sigma: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """ReCamMaster's loss: noise the target only, keep the source clean, MSE on the target half.

    ``x0``/``source``/``noise`` ``(B, 16, T, h, w)``; ``sigma`` ``(B,)``; the model sees
    ``cat([(1 - sigma) x0 + sigma noise, source], frames)`` at timestep ``1000 sigma``; the per-sample
    MSE against ``noise - x0`` over the first ``T`` output frames is scaled by ``weight`` ``(B,)``.
    """
    from recam.scheduler import add_noise, velocity_target

    inp = torch.cat([add_noise(x0, noise, sigma), source], dim=2)
    (pred,) = model(inp, sigma * 1000.0, prompt_emb, cam_emb, return_dict=False, target_only=True)
    err = (pred[:, :, : x0.shape[2]].float() - velocity_target(x0, noise).float()) ** 2
    per_sample = err.flatten(1).mean(1)
    if weight is not None:
        per_sample = per_sample * weight
    return per_sample.mean()


EVAL_SIGMAS = (0.3, 0.6, 0.8, 0.95)


@torch.no_grad()
def fixed_eval_loss(
    model: Any,
    ds: PairDataset,
    device: torch.device,
    n_items: int = 8,
    seed: int = 1234,
    autocast: Any = None,
) -> float:
    """Unweighted velocity MSE on the target half over fixed pairs x ``EVAL_SIGMAS`` x fixed noise."""
    from recam.scheduler import add_noise, velocity_target

    was_training = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds), size=min(n_items, len(ds)), replace=False)
    total, count = 0.0, 0
    for j, i in enumerate(idx.tolist()):
        b = _collate([ds[i]])
        x0, src = b["target"].to(device), b["source"].to(device)
        gen = torch.Generator("cpu").manual_seed(seed + j)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        for s in EVAL_SIGMAS:
            sig = torch.full((1,), s, device=device)
            inp = torch.cat([add_noise(x0, noise, sig), src], dim=2)
            with autocast() if autocast is not None else torch.autocast("cpu", enabled=False):
                (pred,) = model(
                    inp,
                    sig * 1000.0,
                    b["prompt_emb"].to(device),
                    b["cam_emb"].to(device),
                    return_dict=False,
                    target_only=True,
                )
            err = (pred[:, :, : x0.shape[2]].float() - velocity_target(x0, noise)) ** 2
            total += float(err.mean())
            count += 1
    model.train(was_training)
    return total / count


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; returns a summary (steps done, first/last logged losses, paths)."""
    from accelerate import Accelerator

    from recam.parallel import set_nccl_env
    from recam.scheduler import training_sigmas, training_weights

    set_nccl_env()  # NVLink multicast off before accelerate creates the NCCL process group

    run = Path(cfg.out)
    settings = read_cache_settings(cfg.cache)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_available())
    acc = Accelerator(mixed_precision="bf16" if use_bf16 else "no", cpu=not torch.cuda.is_available())
    torch.manual_seed(cfg.seed)

    model = load_transformer(cfg.wan_dir, cfg.transformer_config, cfg.init_checkpoint)
    if settings.get("text_dim") not in (None, model.config.text_dim):
        raise ValueError(
            f"cache {cfg.cache} has text embeddings of dim {settings['text_dim']}, "
            f"the transformer expects text_dim={model.config.text_dim}"
        )
    if use_bf16:
        model.to_mixed_precision(torch.bfloat16)
    params = model.freeze_for_recammaster()
    names = model.trainable_parameter_names()
    for p in params:
        p.data = p.data.float()
    if cfg.fast_attention:
        model.set_fast_attention(True)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
        model.recompute_blocks = cfg.recompute_blocks
    if cfg.compile:
        model.compile_blocks()
    model.train()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    start = 0
    ck = latest_checkpoint(run) if run.exists() else None
    if ck is not None:
        from safetensors.torch import load_file

        sd = load_file(str(ck / "trainable.safetensors"))
        model.load_state_dict(sd, strict=False)
        _load_optimizer(ck / "optimizer.safetensors", optimizer)
        start = int(json.loads((ck / "state.json").read_text())["step"])
    model, optimizer = acc.prepare(model, optimizer)

    ds = PairDataset.from_cache(cfg.cache)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_sampler=StepBatches(
            len(ds), cfg.batch_size, cfg.seed, start, cfg.steps, acc.process_index, acc.num_processes
        ),
        collate_fn=_collate,
        num_workers=cfg.num_workers,
        pin_memory=acc.device.type == "cuda",
    )

    sigmas_all = training_sigmas(cfg.shift)
    weights_all = training_weights(cfg.shift)
    main = acc.is_main_process
    tb = None
    if main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            run / "train_config.json",
            {**asdict(cfg), "cache_settings": settings, "world_size": acc.num_processes},
        )
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run / "tb"))
        except ImportError:
            tb = None
        new_log = not (run / "log.csv").exists()
        log_fh = (run / "log.csv").open("a", newline="")
        log = csv.writer(log_fh)
        if new_log:
            log.writerow(LOG_FIELDS)

    def _eval(at: int) -> None:
        if cfg.eval_every <= 0 or not main:
            return
        v = fixed_eval_loss(acc.unwrap_model(model), ds, acc.device, cfg.eval_items, autocast=acc.autocast)
        new = not (run / "eval.csv").exists()
        with (run / "eval.csv").open("a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(("step", "eval_loss"))
            w.writerow((at, f"{v:.6g}"))
        evals.append((at, v))
        if tb is not None:
            tb.add_scalar("eval_loss", v, at)

    evals: list[tuple[int, float]] = []
    if start == 0:
        _eval(0)
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", disable=not (main and cfg.progress))
    ema: float | None = None
    losses: list[float] = []
    t0 = time.perf_counter()
    step = start
    for batch in loader:
        x0 = batch["target"].to(acc.device)
        src = batch["source"].to(acc.device)
        ctx = batch["prompt_emb"].to(acc.device)
        cam = batch["cam_emb"].to(acc.device)
        idx, noise = sample_noise(
            cfg.seed, step, acc.process_index * cfg.batch_size, tuple(x0.shape), len(sigmas_all)
        )
        noise = noise.to(acc.device)
        sigma = sigmas_all[idx].to(acc.device)
        with acc.autocast():
            loss = flow_matching_loss(model, x0, src, ctx, cam, noise, sigma, weights_all[idx].to(acc.device))
        acc.backward(loss)
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        lv = float(acc.reduce(loss.detach(), reduction="mean").item())
        losses.append(lv)
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        bar.update(1)
        bar.set_postfix(loss=f"{lv:.4f}", ema=f"{ema:.4f}")
        if main and (step % cfg.log_every == 0 or step == cfg.steps):
            dt = time.perf_counter() - t0
            row = [
                step,
                f"{lv:.6g}",
                f"{ema:.6g}",
                f"{cfg.lr:.3g}",
                f"{float(sigma.mean()):.4f}",
                f"{dt:.2f}",
                f"{(step - start) * cfg.batch_size * acc.num_processes / max(dt, 1e-9):.3f}",
                f"{torch.cuda.max_memory_allocated(acc.device) / 2**30:.2f}" if acc.device.type == "cuda" else "",
            ]
            log.writerow(row)
            log_fh.flush()
            if tb is not None:
                tb.add_scalar("loss", lv, step)
                tb.add_scalar("loss_ema", ema, step)
        if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
            _eval(step)
        if step % cfg.save_every == 0 or step == cfg.steps:
            acc.wait_for_everyone()
            if main:
                _save_checkpoint(
                    run,
                    step,
                    acc.unwrap_model(model),
                    optimizer,
                    names,
                    {"seed": cfg.seed, "world_size": acc.num_processes},
                )
    bar.close()
    acc.wait_for_everyone()
    out: dict[str, Any] = {
        "start_step": start,
        "steps": step,
        "losses": losses,
        "evals": evals,
        "run": str(run),
    }
    if main:
        log_fh.close()
        if tb is not None:
            tb.close()
        if cfg.export and step > start:
            from safetensors.torch import save

            from multicam.io import atomic_write_bytes

            sd = acc.unwrap_model(model).recammaster_state_dict()
            blob = save({k: v.detach().cpu().contiguous() for k, v in sd.items()})
            atomic_write_bytes(run / "recammaster.safetensors", blob)
            out["export"] = str(run / "recammaster.safetensors")
    return out


def read_log(run: str | os.PathLike[str], name: str = "log.csv") -> list[dict[str, float]]:
    """``RUN/log.csv`` (or ``eval.csv``) rows as dicts of floats."""
    with (Path(run) / name).open(newline="") as fh:
        return [{k: float(v) if v else float("nan") for k, v in row.items()} for row in csv.DictReader(fh)]
