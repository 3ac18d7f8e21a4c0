"""Padded episode storage ``[task, episode, t, ...]`` and the estimators that live on it."""

from __future__ import annotations

from dataclasses import dataclass

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

    def to(self, device: torch.device | str) -> "EpisodeBatch":
        """A copy on ``device``."""
        return EpisodeBatch(*(None if getattr(self, f) is None else getattr(self, f).to(device)
                              for f in ("observations", "actions", "rewards", "mask",
                                        "terminated", "diverged", "final_observations")))
