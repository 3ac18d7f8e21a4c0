"""Padded episode storage ``[task, episode, t, ...]``, the estimators that live on it, and
the step-by-step recorder the samplers fill it with."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np
import torch


@dataclass
class EpisodeBatch:
    """Episodes of several tasks, padded to the horizon.

    Attributes:
        observations: ``[T, E, H, obs_dim]`` observation at each step.
        actions: ``[T, E, H, act_dim]`` action taken (as sampled, before any env clipping).
        rewards: ``[T, E, H]`` reward received; zero on padding.
        mask: ``[T, E, H]`` 1.0 for real steps, 0.0 for padding after an episode ended.
        terminated: ``[T, E]`` True if the episode ended by termination (not the time limit).
        diverged: ``[T, E]`` True if the episode was cut short because its simulation
            diverged (the diverged step itself is masked out).
        final_observations: ``[T, E, obs_dim]`` the observation after each episode's last
            real step (what off-policy learners bootstrap from at the time limit), or None
            when the batch was built without it.
        success: ``[T, E]`` True if ``info["success"]`` was set at any real step of the
            episode (Meta-World's criterion), or None for families that report no success.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    terminated: torch.Tensor
    diverged: torch.Tensor | None = None
    final_observations: torch.Tensor | None = None
    success: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.diverged is None:
            self.diverged = torch.zeros_like(self.terminated, dtype=torch.bool)

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def episodes_per_task(self) -> int:
        return self.rewards.shape[1]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[2]

    @property
    def num_diverged(self) -> int:
        """Episodes cut short by a diverged simulation."""
        return int(self.diverged.sum().item())

    @property
    def lengths(self) -> torch.Tensor:
        """``[T, E]`` number of real steps per episode."""
        return self.mask.sum(-1)

    @property
    def num_steps(self) -> int:
        """Total real environment steps in the batch."""
        return int(self.mask.sum().item())

    def episode_returns(self) -> torch.Tensor:
        """``[T, E]`` undiscounted return of each episode."""
        return (self.rewards * self.mask).sum(-1)

    def discounted_returns(self, gamma: float) -> torch.Tensor:
        """``[T, E, H]`` reward-to-go ``sum_k gamma^k r_{t+k}`` within each episode."""
        return self.gae(torch.zeros_like(self.rewards), gamma, 1.0)

    def gae(self, values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
        """``[T, E, H]`` generalized advantage estimates (Schulman et al. 2016, eq. 16).

        ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)``, ``A_t = delta_t + gamma*lam*A_{t+1}``.
        The value after an episode's last step is 0 whether it terminated or hit the
        horizon: the horizon is part of the task and the baseline's time features
        model it (as in the reference MAML code). Padding steps get advantage 0.
        """
        mask = self.mask
        values = values * mask
        advantages = torch.zeros_like(self.rewards)
        next_value = torch.zeros_like(self.rewards[..., 0])
        next_adv = torch.zeros_like(next_value)
        for t in range(self.horizon - 1, -1, -1):
            delta = self.rewards[..., t] + gamma * next_value - values[..., t]
            next_adv = (delta + gamma * lam * next_adv) * mask[..., t]
            advantages[..., t] = next_adv
            next_value = values[..., t]
        return advantages

    def next_observations(self) -> torch.Tensor:
        """``[T, E, H, obs_dim]`` the observation after each step; zero on padding.

        Step ``t``'s successor is step ``t + 1``'s observation, except after an
        episode's last real step, where it is ``final_observations``.
        """
        if self.final_observations is None:
            raise ValueError("EpisodeBatch.next_observations: this batch has no "
                             "final_observations (the sampler did not record them)")
        shifted = torch.cat([self.observations[:, :, 1:],
                             torch.zeros_like(self.observations[:, :, :1])], dim=2)
        shifted = shifted * self.mask.unsqueeze(-1)
        last = (self.lengths.long() - 1).clamp(min=0)  # an empty episode has nothing to fix
        index = last[..., None, None].expand(-1, -1, 1, shifted.shape[-1])
        has_steps = (self.lengths > 0).to(shifted.dtype)[..., None, None]
        return shifted.scatter(2, index, self.final_observations.unsqueeze(2) * has_steps)

    def pooled(self) -> "EpisodeBatch":
        """The same episodes as one task, ``[1, T * E, ...]`` (task-major order): what a
        learner that treats the iteration's episodes as one batch, whatever their task,
        estimates on (one baseline, one advantage standardisation)."""
        def merge(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(1, -1, *x.shape[2:])

        return EpisodeBatch(**{f.name: merge(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str) -> "EpisodeBatch":
        """A copy on ``device``."""
        return EpisodeBatch(*(None if getattr(self, f) is None else getattr(self, f).to(device)
                              for f in ("observations", "actions", "rewards", "mask",
                                        "terminated", "diverged", "final_observations",
                                        "success")))


class EpisodeRecorder:
    """One episode in each of ``num_tasks * per_task`` simulations, recorded step by step
    (numpy buffers ``[H, n, ...]``), then returned as an :class:`EpisodeBatch`.

    The samplers share it so that they end episodes alike: a step whose reward or
    observation is non-finite, or that the env flags in ``info["diverged"]``, never
    happened for learning (masked, reward 0); the episode ends at the step before it,
    whose successor is the observation that step started from. An episode also ends on
    termination, truncation or at the horizon. ``success`` is recorded for families whose
    ``info`` reports it (any real step with ``info["success"]``, Meta-World's criterion).
    """

    def __init__(self, horizon: int, num_tasks: int, per_task: int, obs_dim: int,
                 act_dim: int) -> None:
        n = num_tasks * per_task
        self.horizon, self.num_tasks, self.per_task = horizon, num_tasks, per_task
        self.obs = np.zeros((horizon, n, obs_dim), dtype=np.float32)
        self.actions = np.zeros((horizon, n, act_dim), dtype=np.float32)
        self.rewards = np.zeros((horizon, n), dtype=np.float32)
        self.mask = np.zeros((horizon, n), dtype=np.float32)
        self.final_obs = np.zeros((n, obs_dim), dtype=np.float32)
        self.active = np.ones(n, dtype=bool)  # episodes still running
        self.terminated = np.zeros(n, dtype=bool)
        self.diverged = np.zeros(n, dtype=bool)
        self.success: np.ndarray | None = None  # only for families whose info reports it

    def observe(self, t: int, obs: np.ndarray) -> np.ndarray:
        """Store the observation step ``t`` acts on; returns the stored (float32) row."""
        self.obs[t] = obs
        return self.obs[t]

    def record(self, t: int, actions: np.ndarray, obs: np.ndarray, reward: np.ndarray,
               term: np.ndarray, trunc: np.ndarray, info: Mapping[str, Any]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Record step ``t``'s actions and the env's reply; returns the next observation
        (zero on a diverged simulation) and ``live``, the simulations whose step was real."""
        with np.errstate(over="ignore"):  # what float32 cannot hold is stored as inf: flag it
            obs = np.asarray(obs, dtype=np.float32)
            reward = np.asarray(reward, dtype=np.float32)
        bad = ~(np.isfinite(reward) & np.isfinite(obs).all(axis=1))
        if "diverged" in info:
            bad |= info["diverged"]
        active = self.active
        if bad.any():
            obs = np.where(bad[:, None], 0.0, obs)
            self.diverged |= active & bad
            self.final_obs[active & bad] = self.obs[t][active & bad]
            live = active & ~bad
        else:
            live = active
        self.actions[t] = actions
        self.rewards[t] = np.where(live, reward, 0.0)
        self.mask[t] = live
        self.terminated |= live & term
        if "success" in info:
            if self.success is None:
                self.success = np.zeros(live.shape[0], dtype=bool)
            self.success |= live & np.asarray(info["success"], dtype=bool)
        self.active = live & ~(term | trunc)
        ended = live & ~self.active
        if t == self.horizon - 1:
            ended |= self.active  # still running at the sampler's horizon
        if ended.any():
            self.final_obs[ended] = obs[ended]
        return obs, live

    @property
    def done(self) -> bool:
        """Every episode has ended."""
        return not self.active.any()

    def batch(self, device: torch.device, dtype: torch.dtype) -> EpisodeBatch:
        """The recorded episodes, ``[num_tasks, per_task, H, ...]``, floats in ``dtype``."""
        shape = (self.num_tasks, self.per_task)

        def steps(buf: np.ndarray) -> torch.Tensor:  # [H, n, ...] -> [T, E, H, ...]
            arr = buf.reshape(self.horizon, *shape, *buf.shape[2:])
            return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, 0, 2))).to(device,
                                                                                     dtype)

        def flags(arr: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(arr.reshape(shape)).to(device)

        return EpisodeBatch(
            observations=steps(self.obs), actions=steps(self.actions),
            rewards=steps(self.rewards), mask=steps(self.mask),
            terminated=flags(self.terminated), diverged=flags(self.diverged),
            final_observations=torch.from_numpy(
                self.final_obs.reshape(*shape, -1)).to(device, dtype),
            success=None if self.success is None else flags(self.success))
