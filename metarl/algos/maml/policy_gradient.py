"""Policy-gradient losses and advantages, batched over tasks.

All losses return one value per task (shape ``[T]``): a task's loss is the mean
over its real (unmasked) steps, as in rllab's MAML implementation.
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ...policies import GaussianMLPPolicy
from ...samplers import EpisodeBatch
from .linear_value_baseline import fit_linear_baseline, predict_linear_baseline


def masked_task_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[T]`` mean of ``values[T, E, H]`` over each task's real steps."""
    dims = tuple(range(1, values.dim()))
    return (values * mask).sum(dims) / mask.sum(dims).clamp(min=1.0)


def normalize_per_task(advantages: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8
                       ) -> torch.Tensor:
    """Standardize advantages to zero mean and unit variance within each task."""
    mean = masked_task_mean(advantages, mask).view(-1, 1, 1)
    var = masked_task_mean((advantages - mean) ** 2, mask).view(-1, 1, 1)
    return (advantages - mean) / (var.sqrt() + eps) * mask


def compute_advantages(batch: EpisodeBatch, gamma: float, gae_lambda: float, baseline_reg: float,
                       normalize: bool) -> torch.Tensor:
    """``[T, E, H]`` GAE advantages against a linear baseline fitted per task on ``batch``."""
    returns = batch.discounted_returns(gamma)
    coeffs = fit_linear_baseline(batch, returns, baseline_reg)
    return advantages_from_values(batch, predict_linear_baseline(batch, coeffs), gamma,
                                  gae_lambda, normalize)


def advantages_from_values(batch: EpisodeBatch, values: torch.Tensor, gamma: float,
                           gae_lambda: float, normalize: bool) -> torch.Tensor:
    """``[T, E, H]`` GAE advantages against the given ``values``, standardised per task
    when ``normalize``."""
    advantages = batch.gae(values, gamma, gae_lambda)
    return normalize_per_task(advantages, batch.mask) if normalize else advantages


def reinforce_loss(policy: GaussianMLPPolicy, params: dict[str, torch.Tensor],
                   batch: EpisodeBatch, advantages: torch.Tensor) -> torch.Tensor:
    """``[T]`` vanilla policy-gradient loss ``-mean(log pi(a|s) * A)`` (Williams 1992)."""
    log_probs = policy(batch.observations, params).log_prob(batch.actions)
    return -masked_task_mean(log_probs * advantages, batch.mask)


def surrogate_loss(policy: GaussianMLPPolicy, params: dict[str, torch.Tensor],
                   batch: EpisodeBatch, advantages: torch.Tensor, old_dist: Distribution
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``([T], [T])``: TRPO surrogate ``-mean(pi/pi_old * A)`` and ``mean KL(pi_old || pi)``."""
    dist = policy(batch.observations, params)
    ratio = torch.exp(dist.log_prob(batch.actions) - old_dist.log_prob(batch.actions))
    loss = -masked_task_mean(ratio * advantages, batch.mask)
    kl = masked_task_mean(torch.distributions.kl_divergence(old_dist, dist), batch.mask)
    return loss, kl
