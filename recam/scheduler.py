"""Flow-matching schedule of ReCamMaster / Wan2.1 (DiffSynth ``FlowMatchScheduler`` with shift 5).

Sigmas: ``s = linspace(1, 0, num_steps + 1)[:-1]`` shifted by ``shift * s / (1 + (shift - 1) * s)``;
timesteps are ``sigma * 1000``. Noising is ``x_t = (1 - sigma) x_0 + sigma * noise`` and the model predicts the
velocity ``noise - x_0``; one Euler step moves ``x += v * (sigma_next - sigma)`` with ``sigma_next = 0`` after the
last step. Training draws one of 1000 training timesteps and weights the loss with the reference's bell-shaped
weighting (``training_weights``).
"""

from __future__ import annotations

import torch

NUM_TRAIN_TIMESTEPS = 1000


def _check_steps(num_steps: int, shift: float) -> None:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift!r}")


def recammaster_sigmas(num_steps: int = 50, shift: float = 5.0) -> torch.Tensor:
    """Inference sigmas (num_steps,), float32, decreasing from 1.0 (exactly) towards 0 (exclusive)."""
    _check_steps(num_steps, shift)
    s = torch.linspace(1.0, 0.0, num_steps + 1)[:-1]
    return shift * s / (1 + (shift - 1) * s)


def timesteps_from_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Model timesteps in [0, 1000]: ``sigmas * 1000``."""
    return sigmas * NUM_TRAIN_TIMESTEPS


def training_sigmas(shift: float = 5.0) -> torch.Tensor:
    """The 1000 training sigmas (same construction as inference with 1000 steps)."""
    return recammaster_sigmas(NUM_TRAIN_TIMESTEPS, shift)


def training_weights(shift: float = 5.0) -> torch.Tensor:
    """Loss weight of each of the 1000 training timesteps (bell-shaped, mean 1), as in the reference trainer."""
    x = timesteps_from_sigmas(training_sigmas(shift))
    n = NUM_TRAIN_TIMESTEPS
    y = torch.exp(-2 * ((x - n / 2) / n) ** 2)
    y = y - y.min()
    return y * (n / y.sum())


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``(1 - sigma) * x0 + sigma * noise``; a tensor sigma of shape (B,) broadcasts over the batch dimension."""
    s = _per_sample(sigma, x0)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Flow-matching training target ``noise - x0``."""
    return noise - x0


def euler_step(
    sample: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float
) -> torch.Tensor:
    """One Euler step of the flow ODE: ``sample + velocity * (sigma_next - sigma)``."""
    return sample + velocity * (_per_sample(sigma_next, sample) - _per_sample(sigma, sample))


def next_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """``sigma_next`` for each step: the following sigma, 0 after the last."""
    return torch.cat([sigmas[1:], sigmas.new_zeros(1)])


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float = 5.0) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)`` (the reference uses 5.0)."""
    return uncond + scale * (cond - uncond)


def _per_sample(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor) and value.ndim == 1 and like.ndim > 1:
        return value.to(like.device, like.dtype).view(-1, *([1] * (like.ndim - 1)))
    if isinstance(value, torch.Tensor):
        return value.to(like.device, like.dtype)
    return value
