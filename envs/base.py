"""Interfaces shared by all task families.

Tasks are small frozen dataclasses (e.g. ``GoalTask(goal=(0.1, -0.3))``). Every
family provides a gymnasium env implementing :class:`TaskEnvMixin`'s methods and,
optionally, a :class:`BatchTaskEnv` that steps ``num_envs`` simulations at once,
each with its own task. For the same task and actions both give the same
observations and rewards; the tests hold every built-in family to that.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium
import numpy as np


class TaskFamilyError(ValueError):
    """Invalid family definition, keyword arguments or model file; the message names them."""


@dataclass(frozen=True)
class ReferenceTaskSet:
    """A paper's fixed training and held-out tasks, as its reference code draws them.

    ``train`` and ``test`` are in the reference's order. :meth:`split` takes the first
    ``num_train`` training tasks and the last ``num_test`` held-out tasks, the slicing of
    PEARL's reference code (oyster ``launch_experiment.py``: ``tasks[:n_train_tasks]``,
    ``tasks[-n_eval_tasks:]``), so smaller sets are subsets of the reference's.
    ``source`` names the reference file and procedure the numbers come from.
    """

    train: tuple[Any, ...]
    test: tuple[Any, ...]
    source: str

    def split(self, num_train: int, num_test: int) -> tuple[list[Any], list[Any]]:
        """The first ``num_train`` training and the last ``num_test`` held-out tasks."""
        if not (1 <= num_train <= len(self.train) and 1 <= num_test <= len(self.test)):
            raise ValueError(f"the reference task set has {len(self.train)} training and "
                             f"{len(self.test)} held-out tasks; asked for {num_train} and "
                             f"{num_test}")
        return list(self.train[:num_train]), list(self.test[len(self.test) - num_test:])


class TaskEnvMixin:
    """Methods a single gymnasium env of a task family provides."""

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[Any]:
        """Draw ``n`` tasks from the family's distribution (``rng`` defaults to ``np_random``)."""
        raise NotImplementedError

    def set_task(self, task: Any) -> None:
        """Make ``task`` the task of subsequent episodes."""
        raise NotImplementedError

    def get_task(self) -> Any:
        """The current task."""
        raise NotImplementedError

    def reference_task_set(self) -> ReferenceTaskSet | None:
        """The fixed train/test tasks of the family's reference code (``None``: it has none)."""
        return None


class BatchTaskEnv(abc.ABC):
    """``num_envs`` simulations of one family stepped together, numpy in and out.

    ``reset(tasks, seeds)`` starts one episode per simulation (``len(tasks) == num_envs``);
    simulation ``i`` draws its initial-state noise from ``np.random.default_rng(seeds[i])``,
    exactly as the gymnasium env does after ``reset(seed=seeds[i])``. ``step(actions)``
    returns ``(obs, reward, terminated, truncated, info)`` with shapes ``[N, obs_dim]``,
    ``[N]``, ``[N]``, ``[N]``. ``info["diverged"]`` (``[N]`` bool, when present) marks
    simulations whose physics became unstable during this step: their episode is
    truncated there, their reward is 0 and their observation finite but meaningless.
    After a simulation's episode ended, its outputs are finite but meaningless until
    the next reset (an env may stop simulating it); callers mask them out.
    """

    num_envs: int
    horizon: int
    observation_space: gymnasium.spaces.Box  # of one simulation
    action_space: gymnasium.spaces.Box  # of one simulation

    @abc.abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` tasks from the family's distribution."""

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` held-out tasks: from the family's test split where it has one (e.g.
        Meta-World's held-out classes), else from the same distribution as
        :meth:`sample_tasks`."""
        return self.sample_tasks(n, rng)

    def reference_task_set(self) -> ReferenceTaskSet | None:
        """The fixed train/test tasks of the family's reference code (``None``: it has none)."""
        return None

    @abc.abstractmethod
    def reset(self, tasks: Sequence[Any], seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start an episode in every simulation; ``tasks[i]`` is simulation i's task."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every simulation by one control step."""

    def close(self) -> None:
        """Release resources (threads, processes); the env is unusable afterwards."""

    def _check_tasks(self, tasks: Sequence[Any], seeds: Sequence[int] | None = None) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"{type(self).__name__}.reset: got {len(tasks)} tasks for "
                             f"{self.num_envs} simulations")
        if seeds is not None and len(seeds) != self.num_envs:
            raise ValueError(f"{type(self).__name__}.reset: got {len(seeds)} seeds for "
                             f"{self.num_envs} simulations")
