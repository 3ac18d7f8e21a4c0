"""PEARL's losses (Rakelly et al. 2019, sec. 4.2; soft actor-critic with a V network,
Haarnoja et al. 2018), as pure functions of networks, data and noise.

All tensors are ``[tasks, batch, ...]``: one forward/backward covers every task of
the meta-batch. Means over ``tasks x batch`` equal the mean over tasks of per-task
means (every task has the same batch size), and the KL is summed over tasks as in
the reference code, so the batched losses' gradients equal those of a loop over
tasks (``tests/test_pearl.py`` checks this).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
from torch import nn

from .replay_buffer import Transitions
from .networks import PEARLNetworks, kl_to_standard_normal


class CriticLoss(NamedTuple):
    loss: torch.Tensor  # qf + kl_lambda * kl.sum(): what the Q-functions and encoder minimize
    qf: torch.Tensor  # sum of both Q-functions' mean squared Bellman errors
    kl: torch.Tensor  # [tasks] KL(q(z|c) || N(0, I))
    z: torch.Tensor  # [tasks, latent] the sampled latents (differentiable w.r.t. the encoder)
    posterior_mean: torch.Tensor
    posterior_var: torch.Tensor
    q_pred: torch.Tensor  # [tasks, batch] the first Q-function's predictions


class ActorLoss(NamedTuple):
    loss: torch.Tensor  # vf + policy: V and the actor have disjoint parameters
    vf: torch.Tensor
    policy: torch.Tensor
    log_pi: torch.Tensor  # [tasks, batch]


def q_target(rewards: torch.Tensor, terminals: torch.Tensor, next_values: torch.Tensor,
             reward_scale: float, gamma: float) -> torch.Tensor:
    """Soft Bellman target ``reward_scale * r + (1 - done) * gamma * V_target(s', z)``.

    ``done`` marks termination only: at the time limit the target bootstraps.
    """
    return reward_scale * rewards + (1.0 - terminals) * gamma * next_values


def value_target(min_q_new_actions: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
    """``V(s, z)``'s target ``min_i Q_i(s, a~pi, z) - log pi(a | s, z)`` (the entropy
    weight is 1; ``reward_scale`` sets the trade-off instead)."""
    return min_q_new_actions - log_pi


def critic_loss(nets: PEARLNetworks, batch: Transitions, context: torch.Tensor,
                z_noise: torch.Tensor, reward_scale: float, gamma: float,
                kl_lambda: float) -> CriticLoss:
    """Twin-Q Bellman errors plus the KL of the posterior; the encoder is trained only
    through this loss (the Q-functions see the undetached ``z``).

    ``context`` is ``[tasks, N, context_dim]``, ``z_noise`` ``[tasks, latent]`` standard normal.
    """
    mean, var = nets.encoder(context)
    z = mean + var.sqrt() * z_noise
    z_b = z.unsqueeze(1).expand(*batch.rewards.shape, z.shape[-1])
    q1 = nets.qf1(batch.observations, batch.actions, z_b)
    q2 = nets.qf2(batch.observations, batch.actions, z_b)
    with torch.no_grad():
        target = q_target(batch.rewards, batch.terminals,
                          nets.target_vf(batch.next_observations, z_b), reward_scale, gamma)
    qf = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
    kl = kl_to_standard_normal(mean, var)
    return CriticLoss(qf + kl_lambda * kl.sum(), qf, kl, z, mean, var, q1)


@contextlib.contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``modules`` (gradients still flow through them)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def actor_value_loss(nets: PEARLNetworks, batch: Transitions, z: torch.Tensor,
                     action_noise: torch.Tensor, mean_reg: float, std_reg: float) -> ActorLoss:
    """V regression to :func:`value_target` and the actor's ``E[log pi - min Q]`` with
    rlkit's small penalties on the pre-tanh mean and log-std.

    ``z`` is detached here (the encoder learns from the critic only);
    ``action_noise`` is ``[tasks, batch, act_dim]`` standard normal.
    """
    z_b = z.detach().unsqueeze(1).expand(*batch.rewards.shape, z.shape[-1])
    obs = batch.observations
    sample = nets.policy.rsample(obs, z_b, action_noise)
    with _frozen(nets.qf1, nets.qf2):  # the actor's gradient must not reach the critics
        min_q = torch.min(nets.qf1(obs, sample.action, z_b), nets.qf2(obs, sample.action, z_b))
    v_pred = nets.vf(obs, z_b)
    vf = ((v_pred - value_target(min_q, sample.log_prob).detach()) ** 2).mean()
    policy = ((sample.log_prob - min_q).mean() + mean_reg * (sample.mean ** 2).mean()
              + std_reg * (sample.log_std ** 2).mean())
    return ActorLoss(vf + policy, vf, policy, sample.log_prob)
