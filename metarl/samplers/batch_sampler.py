"""Sampler that steps every (task, episode) simulation of a meta-batch at once."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..envs import BatchTaskEnv, TaskFamilySpec
from ..policies import GaussianMLPPolicy
from .episode_batch import EpisodeBatch


class NonFiniteSimulationError(RuntimeError):
    """A simulation produced NaN or Inf observations or rewards."""


class BatchSampler:
    """Roll out a functional policy in a family's batched env.

    One call to :meth:`sample` steps ``len(tasks) * episodes_per_task`` simulations
    together; at each step the policy is evaluated once for all of them (with
    per-task parameters when ``params`` are stacked). Action noise comes from a
    CPU ``torch.Generator`` so a seed gives the same samples on CPU and GPU.
    """

    def __init__(self, family: TaskFamilySpec, env_kwargs: dict[str, Any] | None = None,
                 horizon: int | None = None, device: torch.device | str = "cpu",
                 seed: int = 0) -> None:
        self.family = family
        self.env_kwargs = dict(env_kwargs or {})
        self.horizon = horizon or family.max_episode_steps
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self._envs: dict[int, BatchTaskEnv] = {}
        probe = self._env(1)
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        self.act_dim = int(np.prod(probe.action_space.shape))

    def _env(self, num_envs: int) -> BatchTaskEnv:
        if num_envs not in self._envs:
            self._envs[num_envs] = self.family.make_batch_env(num_envs, horizon=self.horizon,
                                                              **self.env_kwargs)
        return self._envs[num_envs]

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """``n`` tasks from the family's distribution."""
        return self._env(1).sample_tasks(n, rng)

    @torch.no_grad()
    def sample(self, policy: GaussianMLPPolicy, params: dict[str, torch.Tensor],
               tasks: Sequence[Any], episodes_per_task: int) -> EpisodeBatch:
        """Roll out ``episodes_per_task`` episodes of every task; returns a padded batch
        (floating tensors in the parameters' dtype, on the sampler's device).

        ``params`` are shared (one policy for all tasks) or stacked with a leading
        dimension of ``len(tasks)`` (one policy per task).
        """
        num_tasks, horizon = len(tasks), self.horizon
        n = num_tasks * episodes_per_task
        env = self._env(n)
        obs = env.reset([task for task in tasks for _ in range(episodes_per_task)])
        obs_buf = np.zeros((horizon, n, self.obs_dim), dtype=np.float32)
        act_buf = np.zeros((horizon, n, self.act_dim), dtype=np.float32)
        rew_buf = np.zeros((horizon, n), dtype=np.float32)
        mask_buf = np.zeros((horizon, n), dtype=np.float32)
        active = np.ones(n, dtype=bool)
        terminated = np.zeros(n, dtype=bool)
        dtype = next(iter(params.values())).dtype
        for t in range(horizon):
            obs_buf[t] = obs.reshape(n, self.obs_dim)
            obs_t = torch.from_numpy(obs_buf[t]).to(self.device, dtype)
            dist = policy(obs_t.view(num_tasks, episodes_per_task, self.obs_dim), params)
            noise = torch.randn(dist.mean.shape, generator=self.generator).to(self.device, dtype)
            actions = (dist.mean + dist.stddev * noise).reshape(n, self.act_dim).cpu().numpy()
            obs, reward, term, trunc = env.step(actions)
            if not (np.isfinite(reward[active]).all() and np.isfinite(obs[active]).all()):
                raise NonFiniteSimulationError(
                    f"task family '{self.family.id}': non-finite observation or reward at step {t}")
            act_buf[t] = actions
            rew_buf[t] = np.where(active, reward, 0.0)
            mask_buf[t] = active
            terminated |= active & term
            active &= ~(term | trunc)
            if not active.any():
                break

        def to_tensor(buf: np.ndarray) -> torch.Tensor:
            arr = buf.reshape(horizon, num_tasks, episodes_per_task, *buf.shape[2:])
            return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, 0, 2))).to(self.device,
                                                                                     dtype)

        return EpisodeBatch(
            observations=to_tensor(obs_buf), actions=to_tensor(act_buf),
            rewards=to_tensor(rew_buf), mask=to_tensor(mask_buf),
            terminated=torch.from_numpy(terminated.reshape(num_tasks, episodes_per_task)
                                        ).to(self.device))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
