"""Tanh-Gaussian actor conditioned on a task latent ``z`` (SAC; PEARL's policy).

``u ~ N(mean(s, z), std(s, z)^2)``, ``a = tanh(u)`` in ``[-1, 1]^d``; the env receives
``low + (a + 1) * (high - low) / 2`` (the reference code's normalized action space).
Learners work with the normalized ``a``; the sampler stores what the env received.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as in rlkit's TanhGaussianPolicy
_LOG_2 = math.log(2.0)


def log_one_minus_tanh_squared(u: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` without cancellation: ``2 * (log 2 - u - softplus(-2u))``.

    The naive form is ``-inf`` once ``tanh(u)`` rounds to 1 (|u| > ~9 in float32);
    this one is exact for all ``u`` (Haarnoja et al. 2018, appendix C; the identity is
    ``1 - tanh(u)^2 = 4 / (e^u + e^-u)^2``).
    """
    return 2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))


def tanh_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor,
                           log_std: torch.Tensor) -> torch.Tensor:
    """Log-density of ``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)`` (diagonal), at
    ``a = tanh(pre_tanh)``: summed over the last dimension.

    Change of variables: ``log p(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)``.
    Taking ``u`` rather than ``a`` avoids ``atanh`` of values rounded to +-1.
    """
    normal = (-0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 - log_std
              - 0.5 * math.log(2 * math.pi))
    return (normal - log_one_minus_tanh_squared(pre_tanh)).sum(-1)


class ActionSample(NamedTuple):
    """A reparameterized sample of the actor (all ``[..., act_dim]`` but ``log_prob``)."""

    action: torch.Tensor  # tanh(pre_tanh), in [-1, 1]
    log_prob: torch.Tensor  # [...], log-density of action
    mean: torch.Tensor  # pre-tanh Gaussian mean
    log_std: torch.Tensor  # pre-tanh Gaussian log-std (clamped)
    pre_tanh: torch.Tensor


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int,
        last_init: float | None = None) -> nn.Sequential:
    """ReLU MLP; ``last_init`` draws the output layer from ``U[-last_init, last_init]``
    so initial outputs are near zero (rlkit's init for Q/V heads and policy heads)."""
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden_sizes]
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    out = nn.Linear(sizes[-1], out_dim)
    if last_init is not None:
        nn.init.uniform_(out.weight, -last_init, last_init)
        nn.init.uniform_(out.bias, -last_init, last_init)
    layers.append(out)
    return nn.Sequential(*layers)


class TanhGaussianPolicy(nn.Module):
    """``pi(a | s, z)``: state- and latent-dependent mean and log-std, squashed by tanh.

    ``action_low`` / ``action_high`` (per dimension) describe the env's action box;
    the policy itself acts in ``[-1, 1]`` and :meth:`to_env_action` rescales.
    """

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int,
                 hidden_sizes: Sequence[int] = (300, 300, 300),
                 action_low: Sequence[float] | torch.Tensor | None = None,
                 action_high: Sequence[float] | torch.Tensor | None = None,
                 last_init: float = 1e-3) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent_dim
        self.net = mlp(obs_dim + latent_dim, hidden_sizes, 2 * act_dim, last_init)
        low = torch.full((act_dim,), -1.0) if action_low is None else torch.as_tensor(
            action_low, dtype=torch.float32).reshape(act_dim)
        high = torch.full((act_dim,), 1.0) if action_high is None else torch.as_tensor(
            action_high, dtype=torch.float32).reshape(act_dim)
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (low < high).all()):
            raise ValueError(f"TanhGaussianPolicy: the action box must be finite with "
                             f"low < high, got low={low.tolist()} high={high.tolist()}")
        # buffers: they follow .to(device) and are saved with the weights
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and clamped log-std at ``obs`` given ``z`` (same leading dims)."""
        out = self.net(torch.cat([obs, z], dim=-1))
        mean, log_std = out.split(self.act_dim, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def rsample(self, obs: torch.Tensor, z: torch.Tensor, noise: torch.Tensor) -> ActionSample:
        """Reparameterized action ``tanh(mean + std * noise)`` and its log-density."""
        mean, log_std = self(obs, z)
        pre_tanh = mean + log_std.exp() * noise
        return ActionSample(torch.tanh(pre_tanh), tanh_gaussian_log_prob(pre_tanh, mean, log_std),
                            mean, log_std, pre_tanh)

    # -- the sampler's interface (see metarl.samplers.batch_sampler.SamplerPolicy) ----------

    def mean_std(self, obs: torch.Tensor, params: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and std; ``params["z"]`` holds one latent per simulation
        (``[tasks, episodes, latent_dim]``, or anything broadcastable to ``obs``)."""
        z = params["z"].to(obs.dtype).expand(*obs.shape[:-1], self.latent_dim)
        mean, log_std = self(obs, z)
        return mean, log_std.exp()

    def actions_from_noise(self, mean: torch.Tensor, std: torch.Tensor,
                           noise: torch.Tensor) -> torch.Tensor:
        """Env actions for standard-normal ``noise`` (zero noise: the deterministic action)."""
        return self.to_env_action(torch.tanh(mean + std * noise))

    def to_env_action(self, action: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` actions -> the env's action box."""
        return self.action_bias + self.action_scale * action

    def normalize_action(self, env_action: torch.Tensor) -> torch.Tensor:
        """The env's action box -> ``[-1, 1]`` (inverse of :meth:`to_env_action`)."""
        return ((env_action - self.action_bias) / self.action_scale).clamp(-1.0, 1.0)
