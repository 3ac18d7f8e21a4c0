"""The MAML paper's own ant task families (Finn et al. 2017, reference code).

The MDPs of cbfinn/maml_rl's ``AntEnvRand`` / ``AntEnvRandDirec`` / ``AntEnvRandGoal``
under ``normalize()``, rebuilt on MuJoCo 4: rllab's ant model (``assets/rllab_ant.xml``),
ONE physics step of 0.02 s (RK4) per env step, a 125-dimensional observation with the
clipped external contact forces, the torso's orientation and the torso subtree's centre of
mass, and velocities that are the torso subtree's centre-of-mass velocity (rllab's
``get_body_comvel("torso")``). Today's Gymnasium-style ant families
(:mod:`metarl.envs.locomotion`: frame skip 5, 27-dim observation, ``(x' - x) / dt``) are a
different MDP; results are comparable only within one definition.

Reference files (cbfinn/maml_rl):

* ``rllab/envs/mujoco/ant_env_rand.py`` (``AntEnvRand``): velocity task.
* ``rllab/envs/mujoco/ant_env_rand_direc.py`` (``AntEnvRandDirec``): direction task.
* ``rllab/envs/mujoco/ant_env_rand_goal.py`` (``AntEnvRandGoal``): goal task.
* ``rllab/envs/mujoco/mujoco_env.py`` (``MujocoEnv``): ``frame_skip`` / ``init_qpos``
  numerics, ``reset_mujoco`` noise, ``forward_dynamics``, ``_state``, ``get_body_xmat``,
  ``get_body_com``, ``get_body_comvel``.
* ``rllab/mujoco_py/mjcore.py`` (``MjModel.forward``: ``mj_forward`` + ``mj_sensor`` +
  ``mj_energy``; ``body_comvels`` / ``_compute_subtree``).
* ``rllab/envs/normalized_env.py`` (``NormalizedEnv.step``): action scaling.
* ``vendor/mujoco_models/ant.xml``: the model.
* ``maml_examples/cluster_maml_trpo_ant.py``: ``normalize(AntEnvRand())`` etc.,
  ``max_path_length = 200``.

State after the step: rllab's ``forward_dynamics`` runs ``model.step()`` then
``model.forward()`` (``mj_forward``), and everything the reference reads (``cfrc_ext``,
``xmat``, ``com_subtree``, ``body_comvels``) describes the NEW state (``cfrc_ext``
included: MuJoCo 1.31's ``mj_forward`` called ``mj_rnePostConstraint``; MuJoCo 2.0's
changelog says it "is no longer called by default", only for force-related sensors, see
openai/gym#1711). After ``mj_step`` MuJoCo's derived fields describe the state before the
last substep, so these envs run ``mj_forward``
once per simulation after every step, exactly as rllab (``forward_after_step``): the
gymnasium env calls ``mujoco.mj_forward``, the batched env has ``Batch.step`` compute the
forward stages of the simulations it stepped. The model's
accelerometer makes ``mj_forward`` run ``mj_rnePostConstraint`` (``cfrc_ext``), its
``subtreelinvel`` sensor gives the torso subtree's COM velocity. ``mj_forward`` leaves
the state alone, so the dynamics are those of plain ``mj_step`` (tested bit for bit).
A vectorised forward kinematics (as the half-cheetah's) cannot give ``cfrc_ext``: it
needs collision detection and the constraint solve at the new state.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import mujoco
import numpy as np

from .locomotion import _check_nonnegative, _check_range, _DirectionTasks, _tasks_of, \
    _VelocityTasks
from .mujoco_env import ASSETS, MujocoTaskFamily, SimState, load_model, make_env_classes
from .tasks import DirectionTask, GoalTask

#: rllab's ``get_current_obs`` layout for the ant (``AntEnvRand`` and its siblings).
OBS_QPOS = slice(0, 15)  # qpos: torso xyz, quaternion wxyz, 8 hinges
OBS_QVEL = slice(15, 29)  # qvel (14)
OBS_CONTACT = slice(29, 113)  # clip(cfrc_ext, -1, 1), 14 bodies (world first) x 6
OBS_TORSO_XMAT = slice(113, 122)  # torso rotation matrix, row-major
OBS_TORSO_COM = slice(122, 125)  # torso subtree centre of mass


class _MAMLAnt(MujocoTaskFamily):
    xml_path = ASSETS / "rllab_ant.xml"
    frame_skip = 1  # rllab MujocoEnv: 1 unless the model has a "frame_skip" <numeric>
    data_fields = ("cfrc_ext", "xmat", "subtree_com", "sensordata")
    forward_after_step = True  # rllab's forward_dynamics: mj_forward after model.step()

    def __init__(self, ctrl_cost_weight: float = 0.005, contact_cost_weight: float = 0.0005,
                 survive_reward: float = 0.05, healthy_z_low: float = 0.2,
                 healthy_z_high: float = 1.0, qpos_noise_std: float = 0.01,
                 qvel_noise_std: float = 0.1) -> None:
        super().__init__(reset_noise_scale=0.0)  # unused: initial_state is rllab's below
        _check_nonnegative(ctrl_cost_weight=ctrl_cost_weight,
                           contact_cost_weight=contact_cost_weight,
                           qpos_noise_std=qpos_noise_std, qvel_noise_std=qvel_noise_std)
        _check_range("healthy_z", healthy_z_low, healthy_z_high)
        self.ctrl_cost_weight, self.contact_cost_weight = ctrl_cost_weight, contact_cost_weight
        self.survive_reward = survive_reward
        self.healthy_z_low, self.healthy_z_high = healthy_z_low, healthy_z_high
        self.qpos_noise_std, self.qvel_noise_std = qpos_noise_std, qvel_noise_std
        model = load_model(self)
        low, high = model.actuator_ctrlrange.T
        if not (model.actuator_ctrllimited.all() and np.all(low == -1) and np.all(high == 1)):
            # rllab's normalize() maps [-1, 1] to ctrlrange; the model folds it into the gear
            raise ValueError("the MAML ant model must have ctrlrange [-1, 1]")
        self._torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        sensor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, "torso_subtreelinvel")
        adr = model.sensor_adr[sensor]
        self._comvel = slice(adr, adr + 3)
        key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "init_qpos")
        self._init_qpos = model.key_qpos[key].copy()

    def initial_state(self, model: mujoco.MjModel, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
        # rllab MujocoEnv.reset_mujoco: init_qpos + N(0, 1) * 0.01, init_qvel + N(0, 1) * 0.1,
        # qpos drawn first; init_qpos is the model's "init_qpos" numeric (our keyframe),
        # init_qvel the model's initial qvel (0). The quaternion is not renormalised there.
        qpos = self._init_qpos + self.qpos_noise_std * rng.standard_normal(model.nq)
        qvel = self.qvel_noise_std * rng.standard_normal(model.nv)
        return qpos, qvel

    @staticmethod
    def _contact(state: SimState) -> np.ndarray:
        forces = state.data["cfrc_ext"]  # every body, the world body first (always 0)
        return np.clip(forces, -1.0, 1.0).reshape(forces.shape[0], -1)

    def torso_com(self, state: SimState) -> np.ndarray:
        """``[N, 3]`` torso subtree centre of mass (``get_body_com("torso")``)."""
        return state.data["subtree_com"][:, self._torso]

    def torso_comvel(self, state: SimState) -> np.ndarray:
        """``[N, 3]`` torso subtree COM velocity (``get_body_comvel("torso")``)."""
        return state.data["sensordata"][:, self._comvel]

    def observation(self, state: SimState) -> np.ndarray:
        return np.concatenate([state.qpos, state.qvel, self._contact(state),
                               state.data["xmat"][:, self._torso], self.torso_com(state)],
                              axis=1)

    def terminated(self, state: SimState, task: Mapping[str, np.ndarray]) -> np.ndarray:
        # rllab: done = not (isfinite(state).all() and 0.2 <= state[2] <= 1.0); a non-finite
        # state is a diverged step here (truncated, info["diverged"])
        z = state.qpos[:, 2]
        return (z < self.healthy_z_low) | (z > self.healthy_z_high)

    def _terms(self, state: SimState) -> dict[str, np.ndarray]:
        return {
            "forward_velocity": self.torso_comvel(state)[:, 0],
            "ctrl_cost": self.ctrl_cost_weight * np.sum(state.action ** 2, axis=1),
            "contact_cost": self.contact_cost_weight * np.sum(self._contact(state) ** 2, axis=1),
        }

    def _common(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        return self.survive_reward - terms["ctrl_cost"] - terms["contact_cost"]


_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (8,))``: the policy's action in rllab's ``normalize()`` range. rllab maps
    it to the ctrlrange, ``clip(lb + (a + 1) / 2 * (ub - lb), lb, ub)``
    (``normalized_env.py``, ``NormalizedEnv.step``), ``[-150, 150]`` with gear 1
    (``ant.xml``, ``<motor ctrlrange="-150.0 150.0">``): joint torque ``150 clip(a, -1, 1)``.
    The model here has gear 150 and ctrlrange ``[-1, 1]``: the same torque, with the
    control ``clip(a, -1, 1)``. Actuator order hip_4 ankle_4 hip_1 ankle_1 hip_2 ankle_2
    hip_3 ankle_3 (``ant.xml``).

    ## Observation space
    ``Box(-inf, inf, (125,))``, as ``get_current_obs``: ``qpos`` (15: torso xyz,
    quaternion wxyz, hip_1 ankle_1 ... hip_4 ankle_4), ``qvel`` (14),
    ``clip(cfrc_ext, -1, 1)`` of all 14 bodies, the world body first (84, row-major),
    ``get_body_xmat("torso")`` (9, row-major) and ``get_body_com("torso")`` =
    ``com_subtree[torso]`` (3, MuJoCo 4's ``subtree_com``), all for the state after the
    step (``forward_dynamics`` runs ``model.forward()`` after ``model.step()``). Layout:
    ``OBS_QPOS``, ``OBS_QVEL``, ``OBS_CONTACT``, ``OBS_TORSO_XMAT``, ``OBS_TORSO_COM``.

    ## Dynamics
    One env step is ONE physics step of 0.02 s with RK4 (``MujocoEnv.__init__``:
    ``frame_skip`` is 1 unless the model has a ``frame_skip`` numeric, which ``ant.xml``
    has not; ``<option timestep="0.02" integrator="RK4">``). No action noise
    (``MujocoEnv(action_noise=0.0)``).

    ## Forward velocity and costs
    ``v`` = x component of ``get_body_comvel("torso")`` (``mjcore.py``,
    ``_compute_subtree``: mass-weighted linear velocities of ``mj_objectVelocity`` over the
    torso's subtree), the velocity of the torso subtree's centre of mass, MuJoCo's
    ``subtree_linvel[torso]``. ``ctrl = ctrl_cost_weight * ||clip(a, -1, 1)||^2``
    (``0.5 * 1e-2 * sum((action / scaling)^2)`` with ``scaling = (ub - lb) / 2 = 150`` and
    ``action`` the scaled control), ``contact = contact_cost_weight *
    ||clip(cfrc_ext, -1, 1)||^2`` (``0.5 * 1e-3 * sum(...)``, all bodies), ``survive =
    survive_reward`` (0.05). ``info`` holds ``forward_velocity``, ``ctrl_cost`` and
    ``contact_cost``.

    ## Starting state
    ``qpos = init_qpos + qpos_noise_std * N(0, 1)``, ``qvel = qvel_noise_std * N(0, 1)``
    (0.01 and 0.1: ``MujocoEnv.reset_mujoco``), with ``init_qpos`` the model's
    ``<numeric name="init_qpos">`` (``ant.xml``: torso at z = 0.55, identity quaternion,
    hips 0, ankles 1 -1 -1 1 rad; the keyframe ``init_qpos`` here).

    ## Episode end
    Terminates when the torso height ``qpos[2]`` leaves ``[healthy_z_low, healthy_z_high]``
    = ``[0.2, 1.0]`` (``step``: ``notdone = isfinite(state).all() and 0.2 <= state[2] <=
    1.0``); a non-finite state truncates instead (``info["diverged"]``). Truncated after
    200 steps (``max_path_length = 200``, ``maml_examples/cluster_maml_trpo_ant.py``).
"""

_ARGS_COMMON = """
    | ``ctrl_cost_weight`` | 0.005 | weight of ``||clip(a, -1, 1)||^2`` (``0.5 * 1e-2``) |
    | ``contact_cost_weight`` | 0.0005 | weight of ``||clip(cfrc_ext)||^2`` (``0.5 * 1e-3``) |
    | ``survive_reward`` | 0.05 | bonus per step (``survive_reward = 0.05``) |
    | ``healthy_z_low`` / ``healthy_z_high`` | 0.2 / 1.0 | torso height range |
    | ``qpos_noise_std`` | 0.01 | std of the Gaussian noise on the initial ``qpos`` |
    | ``qvel_noise_std`` | 0.1 | std of the Gaussian initial ``qvel`` |

    ## Version history
    * v0: initial version, after cbfinn/maml_rl.
"""


class MAMLAntVel(_VelocityTasks, _MAMLAnt):
    __doc__ = """Ant running along x at a target velocity, as the MAML reference code defines it.

    ## Description
    ``AntEnvRand`` of cbfinn/maml_rl (``rllab/envs/mujoco/ant_env_rand.py``) under
    ``normalize()`` (see the module docstring for the reference files). Each task is a
    target velocity ``v*`` the agent must infer from rewards.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = -|v - v*| + task_bonus + survive - ctrl - contact`` (``forward_reward =
    -np.abs(comvel[0] - self._goal_vel) + 1.0``; ``reward = forward_reward - ctrl_cost -
    contact_cost + survive_reward``).

    ## Tasks
    ``VelocityTask(velocity)``, ``v* ~ U[velocity_low, velocity_high]``, default ``U[0, 3]``
    (``sample_goals``: ``np.random.uniform(0.0, 3.0, (num_goals, ))``).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``velocity_low`` / ``velocity_high`` | 0.0 / 3.0 | target velocity (m/s) |
    | ``task_bonus`` | 1.0 | constant added to the velocity term (the reference's ``+ 1.0``) |""" \
        + _ARGS_COMMON

    def __init__(self, velocity_low: float = 0.0, velocity_high: float = 3.0,
                 task_bonus: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_velocity_range(velocity_low, velocity_high)
        self.task_bonus = task_bonus

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._terms(state)
        reward = (-np.abs(terms["forward_velocity"] - task["velocity"]) + self.task_bonus
                  + self._common(terms))
        return reward, terms


class MAMLAntDir(_DirectionTasks, _MAMLAnt):
    __doc__ = """Ant running forward or backward along x, as the MAML reference code defines it.

    ## Description
    ``AntEnvRandDirec`` of cbfinn/maml_rl (``rllab/envs/mujoco/ant_env_rand_direc.py``)
    under ``normalize()``; the model, dynamics and observation of :class:`MAMLAntVel`.
    Each task is a direction ``d`` along x.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = d * v + survive - ctrl - contact`` (``forward_reward = self.goal_direction *
    comvel[0]``, no ``+ 1.0`` bonus).

    ## Tasks
    ``DirectionTask(direction)``: as the reference, ``u ~ U[0, 3]`` (``sample_goals``) and
    ``d = -1 if u < 1.5 else +1`` (``reset``), i.e. -1 or +1 with probability 1/2.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|""" + _ARGS_COMMON

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        u = rng.uniform(0.0, 3.0, size=n)
        return [DirectionTask(-1 if x < 1.5 else 1) for x in u]

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._terms(state)
        return task["direction"] * terms["forward_velocity"] + self._common(terms), terms


class MAMLAntGoal(_MAMLAnt):
    __doc__ = """Ant walking to a hidden goal position, as the MAML reference code defines it.

    ## Description
    ``AntEnvRandGoal`` of cbfinn/maml_rl (``rllab/envs/mujoco/ant_env_rand_goal.py``) under
    ``normalize()``; the model, dynamics and observation of :class:`MAMLAntVel`. Each task
    is a goal ``g`` in the plane. The position is the torso subtree's centre of mass
    (``get_body_com("torso")``), not the torso's origin.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = -||com_xy - g||_1 + task_bonus + survive - ctrl - contact`` (``goal_reward =
    -np.sum(np.abs(com[:2] - self._goal_pos)) + 4.0``). ``info`` also holds
    ``goal_distance`` (the L1 distance).

    ## Tasks
    ``GoalTask(goal)``, ``g ~ U[goal_low, goal_high]^2``, default ``U[-3, 3]^2``, a square
    (``sample_goals``: ``np.random.uniform(-3.0, 3.0, (num_goals, 2, ))``).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``goal_low`` / ``goal_high`` | -3.0 / 3.0 | range of each goal coordinate (m) |
    | ``task_bonus`` | 4.0 | constant added to the goal term (the reference's ``+ 4.0``) |""" \
        + _ARGS_COMMON

    def __init__(self, goal_low: float = -3.0, goal_high: float = 3.0,
                 task_bonus: float = 4.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_range("goal", goal_low, goal_high)
        self.goal_low, self.goal_high, self.task_bonus = goal_low, goal_high, task_bonus

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        goals = rng.uniform(self.goal_low, self.goal_high, size=(n, 2))
        return [GoalTask((float(x), float(y))) for x, y in goals]

    def task_arrays(self, tasks: Sequence[GoalTask]) -> dict[str, np.ndarray]:
        _tasks_of(tasks, GoalTask, type(self).__name__)
        return {"goal": np.array([t.goal for t in tasks], dtype=np.float64).reshape(-1, 2)}

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._terms(state)
        terms["goal_distance"] = np.sum(np.abs(self.torso_com(state)[:, :2] - task["goal"]),
                                        axis=1)
        return -terms["goal_distance"] + self.task_bonus + self._common(terms), terms


MAMLAntVelEnv, MAMLAntVelBatchEnv = make_env_classes(MAMLAntVel)
MAMLAntDirEnv, MAMLAntDirBatchEnv = make_env_classes(MAMLAntDir)
MAMLAntGoalEnv, MAMLAntGoalBatchEnv = make_env_classes(MAMLAntGoal)

__all__ = ["MAMLAntVel", "MAMLAntDir", "MAMLAntGoal", "MAMLAntVelEnv", "MAMLAntVelBatchEnv",
           "MAMLAntDirEnv", "MAMLAntDirBatchEnv", "MAMLAntGoalEnv", "MAMLAntGoalBatchEnv",
           "OBS_QPOS", "OBS_QVEL", "OBS_CONTACT", "OBS_TORSO_XMAT", "OBS_TORSO_COM"]
