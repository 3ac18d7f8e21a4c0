"""Env wrappers a config can ask for.

:class:`TaskInObservation` appends the task's parameters (:func:`~metarl.envs.task_features`)
to every observation of a batched env: the MAML paper's *oracle* baseline
(``env.task_in_observation: true``), which sees the task it is in.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np

from .base import BatchTaskEnv, ReferenceTaskSet
from .tasks import task_features


class TaskInObservation(BatchTaskEnv):
    """``env``'s observations followed by each simulation's task features."""

    def __init__(self, env: BatchTaskEnv) -> None:
        self.env = env
        self.num_envs, self.horizon = env.num_envs, env.horizon
        self.action_space = env.action_space
        probe = env.sample_tasks(1, np.random.default_rng(0))[0]
        self.task_dim = len(task_features(probe))
        inner = env.observation_space
        low = np.concatenate([inner.low.ravel(), np.full(self.task_dim, -np.inf)])
        high = np.concatenate([inner.high.ravel(), np.full(self.task_dim, np.inf)])
        self.observation_space = gymnasium.spaces.Box(low, high, dtype=inner.dtype)
        self._features = np.zeros((self.num_envs, self.task_dim), dtype=np.float32)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        return self.env.sample_tasks(n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        return self.env.sample_test_tasks(n, rng)

    def reference_task_set(self) -> ReferenceTaskSet | None:
        return self.env.reference_task_set()

    def _augment(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs.reshape(self.num_envs, -1), self._features], axis=1)

    def reset(self, tasks: Sequence[Any], seeds: Sequence[int] | None = None) -> np.ndarray:
        self._features = np.stack([task_features(t) for t in tasks]).astype(np.float32)
        return self._augment(self.env.reset(tasks, seeds))

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return self._augment(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()
