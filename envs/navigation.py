"""2D navigation: a point robot must reach a goal it cannot see (Finn et al. 2017, sec. 5.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from .base import BatchTaskEnv, TaskEnvMixin
from .tasks import GoalTask

DISTANCES = ("euclidean", "squared")


def sample_goal_tasks(n: int, rng: np.random.Generator, low: float, high: float) -> list[GoalTask]:
    """``n`` goals uniform in the square ``[low, high]^2``."""
    goals = rng.uniform(low, high, size=(n, 2))
    return [GoalTask((float(x), float(y))) for x, y in goals]


@dataclass(frozen=True)
class NavigationParams:
    """Reward and dynamics parameters shared by the single and batched envs."""

    distance: str = "euclidean"
    goal_low: float = -0.5
    goal_high: float = 0.5
    max_action: float = 0.1
    goal_tolerance: float = 0.01
    start_range: float = 0.0

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"Navigation2D: distance={self.distance!r} is not one of {DISTANCES}")
        if not self.goal_low < self.goal_high:
            raise ValueError(f"Navigation2D: goal_low ({self.goal_low}) must be < "
                             f"goal_high ({self.goal_high})")
        if self.max_action <= 0:
            raise ValueError(f"Navigation2D: max_action must be > 0, got {self.max_action}")
        if self.goal_tolerance < 0:
            raise ValueError(f"Navigation2D: goal_tolerance must be >= 0, got {self.goal_tolerance}")
        if not self.start_range >= 0:
            raise ValueError(f"Navigation2D: start_range must be >= 0, got {self.start_range}")

    def start_state(self, rng: np.random.Generator) -> np.ndarray:
        """The origin, or ``U[-start_range, start_range]^2`` when ``start_range > 0``."""
        if self.start_range == 0:
            return np.zeros(2, dtype=np.float64)
        return rng.uniform(-self.start_range, self.start_range, size=2)


def navigation_step(state: np.ndarray, goal: np.ndarray, action: np.ndarray,
                    params: NavigationParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for any leading batch shape: returns ``(next_state, reward, terminated)``."""
    action = np.clip(np.asarray(action, dtype=np.float64), -params.max_action, params.max_action)
    next_state = state + action.reshape(state.shape)
    offset = next_state - goal
    squared = np.sum(offset * offset, axis=-1)
    dist = np.sqrt(squared)
    reward = -(dist if params.distance == "euclidean" else squared)
    return next_state, reward, dist < params.goal_tolerance


def _spaces(max_action: float) -> tuple[spaces.Box, spaces.Box]:
    obs = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    act = spaces.Box(-max_action, max_action, shape=(2,), dtype=np.float32)
    return obs, act


class Navigation2DEnv(TaskEnvMixin, gymnasium.Env):
    """Point robot in the plane that must reach a hidden goal.

    ## Description
    The robot starts at the origin and moves by its (clipped) action each step. Each
    task is a goal position; the agent only observes its own position, so it has to
    infer the goal from rewards, which is what meta-learning is tested on.

    ## Action space
    ``Box(-max_action, max_action, (2,))``: displacement per step. Larger actions are clipped.

    ## Observation space
    ``Box(-inf, inf, (2,))``: the robot's position ``s``.

    ## Rewards
    ``r = -||s' - g||_2`` (``distance="euclidean"``, the reference code's choice, default) or
    ``r = -||s' - g||_2^2`` (``distance="squared"``, as the paper's text says), with
    ``s' = s + clip(a, -max_action, max_action)``. Standing still for 100 steps scores
    about -38 (Euclidean).

    ## Starting state
    ``s = (0, 0)`` (MAML's setting), or ``s ~ U[-start_range, start_range]^2`` when
    ``start_range > 0`` (PEARL's point robot starts anywhere in ``[-1, 1]^2``: transitions
    from all over the plane tell the goal apart, where starts at the origin all look alike).

    ## Episode end
    Terminates when ``||s' - g||_2 < goal_tolerance``; truncated after 100 steps (time limit).

    ## Tasks
    ``GoalTask(goal)`` with ``goal ~ U[goal_low, goal_high]^2``. ``info["task"]`` carries it.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``distance`` | ``"euclidean"`` | reward distance, ``"euclidean"`` or ``"squared"`` |
    | ``goal_low`` / ``goal_high`` | -0.5 / 0.5 | goal range per coordinate |
    | ``max_action`` | 0.1 | action clip per coordinate |
    | ``goal_tolerance`` | 0.01 | distance that ends the episode |
    | ``start_range`` | 0.0 | start uniform in ``[-start_range, start_range]^2`` (0: the origin) |

    ## Version history
    * v0: initial version, after Finn et al. 2017 and its reference code.
    """

    metadata = {"render_modes": []}

    def __init__(self, distance: str = "euclidean", goal_low: float = -0.5, goal_high: float = 0.5,
                 max_action: float = 0.1, goal_tolerance: float = 0.01,
                 start_range: float = 0.0) -> None:
        self.params = NavigationParams(distance, goal_low, goal_high, max_action, goal_tolerance,
                                       start_range)
        self.observation_space, self.action_space = _spaces(max_action)
        self._task: GoalTask | None = None
        self._state = np.zeros(2, dtype=np.float64)

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[GoalTask]:
        return sample_goal_tasks(n, rng if rng is not None else self.np_random,
                                 self.params.goal_low, self.params.goal_high)

    def set_task(self, task: GoalTask) -> None:
        if not isinstance(task, GoalTask):
            raise TypeError(f"Navigation2D.set_task expects a GoalTask, got {task!r}")
        self._task = task

    def get_task(self) -> GoalTask:
        if self._task is None:
            raise RuntimeError("Navigation2D: no task set; call set_task() or reset() first")
        return self._task

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        elif self._task is None:
            self._task = self.sample_tasks(1)[0]
        self._state = self.params.start_state(self.np_random)
        return self._state.astype(np.float32), {"task": self._task}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        task = self.get_task()
        goal = np.asarray(task.goal, dtype=np.float64)
        self._state, reward, terminated = navigation_step(self._state, goal, action, self.params)
        info = {"task": task, "distance": float(np.linalg.norm(self._state - goal))}
        return self._state.astype(np.float32), float(reward), bool(terminated), False, info


class Navigation2DBatchEnv(BatchTaskEnv):
    """``num_envs`` Navigation2D simulations stepped with numpy array operations.

    Same dynamics and reward as :class:`Navigation2DEnv` (see its docstring).
    """

    def __init__(self, num_envs: int, horizon: int = 100, threads: int = 0,
                 distance: str = "euclidean", goal_low: float = -0.5, goal_high: float = 0.5,
                 max_action: float = 0.1, goal_tolerance: float = 0.01,
                 start_range: float = 0.0) -> None:
        del threads  # numpy steps all simulations in one thread; accepted for a uniform API
        self.params = NavigationParams(distance, goal_low, goal_high, max_action, goal_tolerance,
                                       start_range)
        self._seed_rng = np.random.default_rng()  # start states when reset gets no seeds
        if num_envs < 1 or horizon < 1:
            raise ValueError(f"Navigation2D: num_envs and horizon must be >= 1, "
                             f"got {num_envs} and {horizon}")
        self.num_envs, self.horizon = num_envs, horizon
        self.observation_space, self.action_space = _spaces(max_action)
        self._state = np.zeros((num_envs, 2), dtype=np.float64)
        self._goals = np.zeros((num_envs, 2), dtype=np.float64)
        self._t = 0

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        return sample_goal_tasks(n, rng, self.params.goal_low, self.params.goal_high)

    def reset(self, tasks: Sequence[GoalTask], seeds: Sequence[int] | None = None) -> np.ndarray:
        self._check_tasks(tasks, seeds)
        self._goals = np.array([t.goal for t in tasks], dtype=np.float64).reshape(self.num_envs, 2)
        if self.params.start_range == 0:  # deterministic start: seeds are not needed
            self._state = np.zeros((self.num_envs, 2), dtype=np.float64)
        else:
            if seeds is None:
                seeds = self._seed_rng.integers(0, 2**63 - 1, size=self.num_envs)
            self._state = np.stack([self.params.start_state(np.random.default_rng(int(s)))
                                    for s in seeds])
        self._t = 0
        return self._state.astype(np.float32)

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self._state, reward, terminated = navigation_step(self._state, self._goals, actions,
                                                          self.params)
        self._t += 1
        truncated = np.full(self.num_envs, self._t >= self.horizon)
        return self._state.astype(np.float32), reward, terminated, truncated, {}
