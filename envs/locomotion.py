"""Half-cheetah and ant locomotion task families (Finn et al. 2017; Rakelly et al. 2019).

Each family is a :class:`~metarl.envs.mujoco_env.MujocoTaskFamily`; the module-level
``*Env`` / ``*BatchEnv`` classes are its gymnasium and batched envs. ``v_x`` is the
torso's x velocity over one control step, ``(x' - x) / dt`` with ``dt = 0.05``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .mujoco_env import ASSETS, MujocoTaskFamily, SimState, make_env_classes
from .tasks import DirectionTask, GoalTask, VelocityTask


def _check_range(name: str, low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"{name}_low ({low}) must be < {name}_high ({high})")


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _tasks_of(tasks: Sequence[Any], kind: type, family: str) -> None:
    for task in tasks:
        if not isinstance(task, kind):
            raise TypeError(f"{family} expects {kind.__name__} tasks, got {task!r}")


def sample_directions(n: int, rng: np.random.Generator) -> list[DirectionTask]:
    """``n`` directions, each -1 or +1 with probability 1/2."""
    return [DirectionTask(int(d)) for d in rng.choice([-1, 1], size=n)]


def sample_velocities(n: int, rng: np.random.Generator, low: float, high: float
                      ) -> list[VelocityTask]:
    """``n`` target velocities uniform in ``[low, high]``."""
    return [VelocityTask(float(v)) for v in rng.uniform(low, high, size=n)]


class _VelocityTasks:
    """Tasks: target velocities uniform in ``[velocity_low, velocity_high]``."""

    velocity_low: float
    velocity_high: float

    def _set_velocity_range(self, low: float, high: float) -> None:
        _check_range("velocity", low, high)
        self.velocity_low, self.velocity_high = low, high

    def _velocity_reward(self, velocity: np.ndarray, ctrl_cost: np.ndarray,
                         task: Mapping[str, np.ndarray], weight: float = 1.0
                         ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``-weight |v - v*| - ctrl_cost`` and its terms."""
        reward = -weight * np.abs(velocity - task["velocity"]) - ctrl_cost
        return reward, {"forward_velocity": velocity, "ctrl_cost": ctrl_cost}

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[VelocityTask]:
        return sample_velocities(n, rng, self.velocity_low, self.velocity_high)

    def task_arrays(self, tasks: Sequence[VelocityTask]) -> dict[str, np.ndarray]:
        _tasks_of(tasks, VelocityTask, type(self).__name__)
        return {"velocity": np.array([t.velocity for t in tasks], dtype=np.float64)}


class _DirectionTasks:
    """Tasks: a direction along x, -1 or +1 with probability 1/2."""

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        return sample_directions(n, rng)

    def task_arrays(self, tasks: Sequence[DirectionTask]) -> dict[str, np.ndarray]:
        _tasks_of(tasks, DirectionTask, type(self).__name__)
        return {"direction": np.array([t.direction for t in tasks], dtype=np.float64)}


# -- half-cheetah ---------------------------------------------------------------------------


class _HalfCheetah(MujocoTaskFamily):
    xml_path = ASSETS / "half_cheetah.xml"
    frame_skip = 5

    def __init__(self, ctrl_cost_weight: float = 0.05, reset_noise_scale: float = 0.1,
                 exclude_current_positions_from_observation: bool = True) -> None:
        super().__init__(reset_noise_scale)
        _check_nonnegative(ctrl_cost_weight=ctrl_cost_weight)
        if not isinstance(exclude_current_positions_from_observation, bool):
            raise ValueError("exclude_current_positions_from_observation must be true or false, "
                             f"got {exclude_current_positions_from_observation!r}")
        self.ctrl_cost_weight = ctrl_cost_weight
        self.exclude_current_positions_from_observation = exclude_current_positions_from_observation

    def observation(self, state: SimState) -> np.ndarray:
        first = 1 if self.exclude_current_positions_from_observation else 0
        return np.concatenate([state.qpos[:, first:], state.qvel], axis=1)

    def _terms(self, state: SimState) -> tuple[np.ndarray, np.ndarray]:
        velocity = (state.qpos[:, 0] - state.qpos_before[:, 0]) / state.dt
        ctrl_cost = self.ctrl_cost_weight * np.sum(state.action ** 2, axis=1)
        return velocity, ctrl_cost


class HalfCheetahVel(_VelocityTasks, _HalfCheetah):
    """Half-cheetah that must run at a target forward velocity.

    ## Description
    The planar half-cheetah of Gymnasium's ``HalfCheetah-v5`` (same model, frame skip
    and reset noise). Each task is a target velocity ``v*``; the agent does not observe
    it and has to infer it from rewards (Finn et al. 2017, sec. 5.3).

    ## Action space
    ``Box(-1, 1, (6,))``: torques of the six leg joints (actions outside are clipped).

    ## Observation space
    ``Box(-inf, inf, (17,))``: ``qpos[1:]`` (8) and ``qvel`` (9); the x position is excluded
    (as Gymnasium's ``HalfCheetah-v5``). With
    ``exclude_current_positions_from_observation=False`` it is ``qpos`` and ``qvel`` (18),
    the information of the MAML reference code's observation, which appends the torso's
    position (x, y = 0 and z) to these 17.

    ## Rewards
    ``r = -|v_x - v*| - ctrl_cost_weight * ||a||^2`` with ``v_x = (x' - x) / dt``,
    ``dt = 0.05``, ``a`` the clipped action. ``info`` holds ``forward_velocity`` and
    ``ctrl_cost``. Standing still for 200 steps scores about ``-200 * E[v*]``.

    ## Starting state
    ``qpos0 + U(-0.1, 0.1)`` and ``0.1 * N(0, 1)`` velocities (``reset_noise_scale``).

    ## Episode end
    Never terminates; truncated after 200 steps. A physically diverged step truncates
    (``info["diverged"]``).

    ## Tasks
    ``VelocityTask(velocity)`` with ``v* ~ U[velocity_low, velocity_high]`` (default
    ``U[0, 2]`` as MAML; PEARL uses ``U[0, 3]``).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``velocity_low`` / ``velocity_high`` | 0.0 / 2.0 | target velocity range (m/s) |
    | ``ctrl_cost_weight`` | 0.05 | weight of ``||a||^2`` |
    | ``reset_noise_scale`` | 0.1 | scale of the initial-state noise |
    | ``exclude_current_positions_from_observation`` | true | leave the x position out |

    ## Version history
    * v0: initial version, after Finn et al. 2017 and its reference code.
    """

    def __init__(self, velocity_low: float = 0.0, velocity_high: float = 2.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_velocity_range(velocity_low, velocity_high)

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._velocity_reward(*self._terms(state), task)


class HalfCheetahDir(_DirectionTasks, _HalfCheetah):
    """Half-cheetah that must run forward or backward.

    ## Description
    The half-cheetah of :class:`HalfCheetahVel`; each task is a direction ``d`` along x
    that the agent must discover from rewards (Finn et al. 2017, sec. 5.3).

    ## Action space
    ``Box(-1, 1, (6,))`` joint torques (clipped).

    ## Observation space
    ``Box(-inf, inf, (17,))``: ``qpos[1:]`` and ``qvel`` (18 with the x position, see
    :class:`HalfCheetahVel`).

    ## Rewards
    ``r = d * v_x - ctrl_cost_weight * ||a||^2``, ``v_x = (x' - x) / dt``, ``dt = 0.05``.

    ## Starting state
    As :class:`HalfCheetahVel`.

    ## Episode end
    Never terminates; truncated after 200 steps (or at a diverged step).

    ## Tasks
    ``DirectionTask(direction)`` with ``d`` = -1 or +1, each with probability 1/2.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``ctrl_cost_weight`` | 0.05 | weight of ``||a||^2`` |
    | ``reset_noise_scale`` | 0.1 | scale of the initial-state noise |
    | ``exclude_current_positions_from_observation`` | true | leave the x position out |

    ## Version history
    * v0: initial version, after Finn et al. 2017 and its reference code.
    """

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        velocity, ctrl_cost = self._terms(state)
        reward = task["direction"] * velocity - ctrl_cost
        return reward, {"forward_velocity": velocity, "ctrl_cost": ctrl_cost}


# -- ant --------------------------------------------------------------------------------------


class _Ant(MujocoTaskFamily):
    xml_path = ASSETS / "ant.xml"
    frame_skip = 5
    data_fields = ("cfrc_ext",)

    def __init__(self, ctrl_cost_weight: float = 0.005, contact_cost_weight: float = 0.0005,
                 survive_reward: float = 1.0, healthy_z_low: float = 0.2,
                 healthy_z_high: float = 1.0, include_contact_forces: bool = False,
                 reset_noise_scale: float = 0.1) -> None:
        super().__init__(reset_noise_scale)
        _check_nonnegative(ctrl_cost_weight=ctrl_cost_weight,
                           contact_cost_weight=contact_cost_weight)
        _check_range("healthy_z", healthy_z_low, healthy_z_high)
        if not isinstance(include_contact_forces, bool):
            raise ValueError(f"include_contact_forces must be true or false, "
                             f"got {include_contact_forces!r}")
        self.ctrl_cost_weight = ctrl_cost_weight
        self.contact_cost_weight = contact_cost_weight
        self.survive_reward = survive_reward
        self.healthy_z_low, self.healthy_z_high = healthy_z_low, healthy_z_high
        self.include_contact_forces = include_contact_forces

    @staticmethod
    def _contact_forces(state: SimState) -> np.ndarray:
        # bodies 1.. (the world body's entry is not the robot's)
        forces = state.data["cfrc_ext"][:, 1:]
        return np.clip(forces, -1.0, 1.0).reshape(forces.shape[0], -1)

    def observation(self, state: SimState) -> np.ndarray:
        parts = [state.qpos[:, 2:], state.qvel]
        if self.include_contact_forces:
            parts.append(self._contact_forces(state))
        return np.concatenate(parts, axis=1)

    def terminated(self, state: SimState, task: Mapping[str, np.ndarray]) -> np.ndarray:
        z = state.qpos[:, 2]
        return (z < self.healthy_z_low) | (z > self.healthy_z_high)

    def _terms(self, state: SimState) -> dict[str, np.ndarray]:
        return {
            "forward_velocity": (state.qpos[:, 0] - state.qpos_before[:, 0]) / state.dt,
            "ctrl_cost": self.ctrl_cost_weight * np.sum(state.action ** 2, axis=1),
            "contact_cost": self.contact_cost_weight * np.sum(self._contact_forces(state) ** 2,
                                                              axis=1),
        }

    def _common(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        return self.survive_reward - terms["ctrl_cost"] - terms["contact_cost"]


_ANT_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (8,))``: torques of the eight leg joints (clipped).

    ## Observation space
    ``Box(-inf, inf, (27,))``: ``qpos[2:]`` (13) and ``qvel`` (14); with
    ``include_contact_forces=True`` also the clipped contact forces of the 13 bodies
    (78 more).

    ## Starting state
    ``qpos0`` (torso at z = 0.75) ``+ U(-0.1, 0.1)`` and ``0.1 * N(0, 1)`` velocities.

    ## Episode end
    Terminates when the torso height leaves ``[healthy_z_low, healthy_z_high]``
    (``[0.2, 1.0]``); truncated after 200 steps (or at a diverged step).
"""

_ANT_ARGS = """
    | ``ctrl_cost_weight`` | 0.005 | weight of ``||a||^2`` (ctrl) |
    | ``contact_cost_weight`` | 0.0005 | weight of ``||clip(cfrc_ext, -1, 1)||^2`` (contact) |
    | ``survive_reward`` | 1.0 | bonus per step alive |
    | ``healthy_z_low`` / ``healthy_z_high`` | 0.2 / 1.0 | torso height range |
    | ``include_contact_forces`` | false | append contact forces to observations |
    | ``reset_noise_scale`` | 0.1 | scale of the initial-state noise |

    ## Version history
    * v0: initial version, after Finn et al. 2017 / Rakelly et al. 2019 and their code.
"""


class AntVel(_VelocityTasks, _Ant):
    __doc__ = """Ant that must run along x at a target velocity.

    ## Description
    The rllab/Gymnasium quadruped ant (RK4 integrator); each task is a target
    velocity ``v*`` (Finn et al. 2017, sec. 5.3).
""" + _ANT_DOC_COMMON + """
    ## Rewards
    ``r = -|v_x - v*| - ctrl - contact + survive_reward`` with ``v_x = (x' - x) / dt``,
    ``ctrl = 0.005 ||a||^2``, ``contact = 0.0005 ||clip(cfrc_ext, -1, 1)||^2``.

    ## Tasks
    ``VelocityTask(velocity)``, ``v* ~ U[velocity_low, velocity_high]`` (default ``U[0, 3]``).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``velocity_low`` / ``velocity_high`` | 0.0 / 3.0 | target velocity range (m/s) |""" + _ANT_ARGS

    def __init__(self, velocity_low: float = 0.0, velocity_high: float = 3.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_velocity_range(velocity_low, velocity_high)

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._terms(state)
        reward = -np.abs(terms["forward_velocity"] - task["velocity"]) + self._common(terms)
        return reward, terms


class AntDir(_DirectionTasks, _Ant):
    __doc__ = """Ant that must run forward or backward along x.

    ## Description
    The ant of :class:`AntVel`; each task is a direction ``d`` (Finn et al. 2017).
""" + _ANT_DOC_COMMON + """
    ## Rewards
    ``r = d * v_x - ctrl - contact + survive_reward`` (terms as :class:`AntVel`).

    ## Tasks
    ``DirectionTask(direction)``, ``d`` = -1 or +1 with probability 1/2.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|""" + _ANT_ARGS

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._terms(state)
        reward = task["direction"] * terms["forward_velocity"] + self._common(terms)
        return reward, terms


class AntGoal(_Ant):
    __doc__ = """Ant that must walk to a hidden goal position in the plane.

    ## Description
    The ant of :class:`AntVel`; each task is a goal ``g`` in a disk (Rakelly et al. 2019).
""" + _ANT_DOC_COMMON + """
    ## Rewards
    ``r = -||xy' - g||_1 - ctrl - contact + survive_reward`` with ``xy'`` the torso's
    position after the step (terms as :class:`AntVel`).

    ## Tasks
    ``GoalTask(goal)``, ``g`` uniform in the disk of radius ``goal_radius`` (3.0).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``goal_radius`` | 3.0 | radius of the goal disk (m) |""" + _ANT_ARGS

    def __init__(self, goal_radius: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not goal_radius > 0:
            raise ValueError(f"goal_radius must be > 0, got {goal_radius}")
        self.goal_radius = goal_radius

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        radius = self.goal_radius * np.sqrt(rng.uniform(0.0, 1.0, size=n))  # uniform in area
        angle = rng.uniform(0.0, 2 * np.pi, size=n)
        return [GoalTask((float(r * np.cos(a)), float(r * np.sin(a))))
                for r, a in zip(radius, angle)]

    def task_arrays(self, tasks: Sequence[GoalTask]) -> dict[str, np.ndarray]:
        _tasks_of(tasks, GoalTask, "AntGoal")
        return {"goal": np.array([t.goal for t in tasks], dtype=np.float64).reshape(-1, 2)}

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._terms(state)
        terms["goal_distance"] = np.sum(np.abs(state.qpos[:, :2] - task["goal"]), axis=1)
        return -terms["goal_distance"] + self._common(terms), terms


HalfCheetahVelEnv, HalfCheetahVelBatchEnv = make_env_classes(HalfCheetahVel)
HalfCheetahDirEnv, HalfCheetahDirBatchEnv = make_env_classes(HalfCheetahDir)
AntVelEnv, AntVelBatchEnv = make_env_classes(AntVel)
AntDirEnv, AntDirBatchEnv = make_env_classes(AntDir)
AntGoalEnv, AntGoalBatchEnv = make_env_classes(AntGoal)
