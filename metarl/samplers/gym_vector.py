"""The ``gym`` sampler backend: any gymnasium env with ``set_task``, via ``SyncVectorEnv``.

For task families without a batched env (user envs, Meta-World on its own MuJoCo
pin). Slower than the ``batch`` backend (one Python ``step`` per simulation), same
:class:`~metarl.samplers.EpisodeBatch` out; for the same seeds and policy it gives
the same samples as the batched env of a family that has both.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from ..envs import BatchTaskEnv, ReferenceTaskSet, TaskFamilyError, TaskFamilySpec


class GymVectorEnv(BatchTaskEnv):
    """``num_envs`` copies of a family's gymnasium env behind the :class:`BatchTaskEnv` API."""

    def __init__(self, family: TaskFamilySpec, num_envs: int, horizon: int,
                 **kwargs: Any) -> None:
        make = functools.partial(family.make_env, max_episode_steps=horizon,
                                 disable_env_checker=True, **kwargs)
        self.vec = SyncVectorEnv([make] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP)
        self._units = [env.unwrapped for env in self.vec.envs]
        for name in ("set_task", "sample_tasks"):
            if not callable(getattr(self._units[0], name, None)):
                self.vec.close()
                raise TaskFamilyError(f"task family '{family.id}': its gymnasium env "
                                      f"{type(self._units[0]).__name__} has no {name}() method, "
                                      "which the gym sampler backend needs")
        self.num_envs, self.horizon = num_envs, horizon
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        return self._units[0].sample_tasks(n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        # optional for user envs: one without a test split draws held-out tasks as any
        method = getattr(self._units[0], "sample_test_tasks", None)
        return method(n, rng) if callable(method) else self.sample_tasks(n, rng)

    def reference_task_set(self) -> ReferenceTaskSet | None:
        # optional for user envs: one without the method has no reference set
        method = getattr(self._units[0], "reference_task_set", None)
        return method() if callable(method) else None

    def reset(self, tasks: Sequence[Any], seeds: Sequence[int] | None = None) -> np.ndarray:
        self._check_tasks(tasks, seeds)
        for env, task in zip(self._units, tasks):
            env.set_task(task)
        obs, _ = self.vec.reset(seed=None if seeds is None else [int(s) for s in seeds])
        return obs

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, infos = self.vec.step(actions)
        out: dict[str, Any] = {}
        for key in ("diverged", "success"):  # vector infos mask the envs that set a key as "_key"
            if key in infos:
                out[key] = np.asarray(infos[key], dtype=bool) & infos[f"_{key}"]
        return obs, reward, terminated, truncated, out

    def close(self) -> None:
        self.vec.close()
