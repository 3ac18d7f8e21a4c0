"""PEARL's networks and Gaussian kernels (Rakelly et al. 2019, sec. 4).

Every network is shared by all tasks, so "batched over tasks" means one forward
pass over ``[tasks, batch, ...]`` tensors; the kernels reduce over the batch
dimension per task.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...policies.tanh_gaussian import TanhGaussianPolicy, mlp

MIN_VARIANCE = 1e-7  # factor variances are clamped here, as in the reference code


def product_of_gaussians(means: torch.Tensor, variances: torch.Tensor,
                         mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized product of diagonal Gaussian factors along dimension ``-2``.

    ``means`` and ``variances`` are ``[..., N, d]``; returns ``[..., d]`` mean and variance:
    ``1/var = sum_n 1/var_n``, ``mean = var * sum_n mean_n / var_n`` (PEARL eq. 6's
    posterior ``q(z|c) ∝ prod_n Psi(z|c_n)``). ``mask`` (``[..., N]``, 1 = real factor)
    drops factors by giving them zero precision; a product with no factor left is
    the prior ``N(0, I)``.
    """
    precisions = 1.0 / variances.clamp(min=MIN_VARIANCE)
    if mask is not None:
        precisions = precisions * mask.unsqueeze(-1).to(precisions.dtype)
    total = precisions.sum(-2)
    empty = total == 0
    variance = 1.0 / torch.where(empty, torch.ones_like(total), total)
    mean = variance * (precisions * means).sum(-2)
    return mean, torch.where(empty, torch.ones_like(variance), variance)


def kl_to_standard_normal(mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, diag variance) || N(0, I))`` summed over the last dimension:
    ``0.5 * sum(variance + mean^2 - 1 - log variance)``."""
    return 0.5 * (variance + mean ** 2 - 1.0 - variance.log()).sum(-1)


class ContextEncoder(nn.Module):
    """``q(z | c)``: an MLP maps each transition to a Gaussian factor; the posterior is
    their product (the reference's permutation-invariant encoder)."""

    def __init__(self, context_dim: int, latent_dim: int,
                 hidden_sizes: Sequence[int] = (200, 200, 200), last_init: float = 3e-3) -> None:
        super().__init__()
        self.context_dim, self.latent_dim = context_dim, latent_dim
        self.net = mlp(context_dim, hidden_sizes, 2 * latent_dim, last_init)

    def factors(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition factor means and variances, ``[..., N, latent_dim]`` each."""
        if context.shape[-1] != self.context_dim:
            raise ValueError(f"ContextEncoder: context has {context.shape[-1]} features per "
                             f"transition, expected {self.context_dim}")
        mean, pre_variance = self.net(context).split(self.latent_dim, dim=-1)
        return mean, F.softplus(pre_variance)

    def forward(self, context: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance ``[..., latent_dim]`` from ``[..., N, context_dim]``."""
        return product_of_gaussians(*self.factors(context), mask)


class QFunction(nn.Module):
    """``Q(s, a, z)``; rlkit's FlattenMlp with a near-zero output layer."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int,
                 hidden_sizes: Sequence[int] = (300, 300, 300), last_init: float = 3e-3) -> None:
        super().__init__()
        self.net = mlp(obs_dim + act_dim + latent_dim, hidden_sizes, 1, last_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action, z], dim=-1)).squeeze(-1)


class ValueFunction(nn.Module):
    """``V(s, z)``."""

    def __init__(self, obs_dim: int, latent_dim: int,
                 hidden_sizes: Sequence[int] = (300, 300, 300), last_init: float = 3e-3) -> None:
        super().__init__()
        self.net = mlp(obs_dim + latent_dim, hidden_sizes, 1, last_init)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, z], dim=-1)).squeeze(-1)


class PEARLNetworks(nn.Module):
    """Everything PEARL learns: context encoder, tanh-Gaussian actor, twin Q, V and the
    slowly-tracking target V (Polyak averaging)."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, context_dim: int,
                 encoder_hidden_sizes: Sequence[int], hidden_sizes: Sequence[int],
                 action_low: Sequence[float] | None = None,
                 action_high: Sequence[float] | None = None) -> None:
        super().__init__()
        self.encoder = ContextEncoder(context_dim, latent_dim, encoder_hidden_sizes)
        self.policy = TanhGaussianPolicy(obs_dim, act_dim, latent_dim, hidden_sizes,
                                         action_low, action_high)
        self.qf1 = QFunction(obs_dim, act_dim, latent_dim, hidden_sizes)
        self.qf2 = QFunction(obs_dim, act_dim, latent_dim, hidden_sizes)
        self.vf = ValueFunction(obs_dim, latent_dim, hidden_sizes)
        self.target_vf = ValueFunction(obs_dim, latent_dim, hidden_sizes)
        self.target_vf.load_state_dict(self.vf.state_dict())
        self.target_vf.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``target <- (1 - tau) * target + tau * vf``."""
        for target, source in zip(self.target_vf.parameters(), self.vf.parameters()):
            target.lerp_(source, tau)
