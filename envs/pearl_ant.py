"""The PEARL paper's own ant task families (Rakelly et al. 2019, reference code).

The ant MDPs of katerakelly/oyster on MuJoCo 4 (see :mod:`metarl.envs.pearl_locomotion` for
the software oyster ran and the half-cheetah families). Reference files (katerakelly/oyster):

* ``rlkit/envs/ant.py`` (``AntEnv``): model ``ant.xml``, frame skip 5, reset noise,
  observation ``qpos[2:]``, ``qvel``; over ``rlkit/envs/mujoco_env.py`` and gym 0.12.1's
  ``gym/envs/mujoco/mujoco_env.py`` (``do_simulation``, ``get_body_com``, ``state_vector``).
* ``rlkit/envs/ant_multitask_base.py`` (``MultitaskAntEnv``): the task list.
* ``rlkit/envs/ant_goal.py`` (``AntGoalEnv``, ``ant-goal``) and ``rlkit/envs/ant_dir.py``
  (``AntDirEnv``, ``ant-dir``): rewards, observations, termination, tasks.
* ``rlkit/envs/assets/ant.xml``: gym's ant with two massless sites added.
* ``configs/ant-goal.json``, ``configs/ant-dir.json``, ``launch_experiment.py``: task counts
  and the train/held-out split.

Positions are the torso *frame* origin as ``mj_step`` leaves ``data.xpos`` (gym's
``get_body_com`` is ``get_body_xpos``), read with no extra ``mj_forward`` as mujoco-py does.
With RK4, MuJoCo's last evaluation inside a physics step is its fourth stage (``qpos +
h * qvel`` of the third stage), so this ``xpos`` is close to, not equal to, the torso
position in ``qpos``. Contact forces ``cfrc_ext``: MuJoCo 2.0's changelog says
``mj_rnePostConstraint`` "is no longer called by default", only when force-related sensors
need it (quoted in openai/gym#1711; openai/gym#1541: Ant's contact forces read 0 with
mujoco-py 2.x), so MuJoCo 1.50 filled them in every step. Our model has an accelerometer,
so MuJoCo 4 fills them in the sensor stage of the step's first evaluation, for the state at
the start of its last physics step (RK4's intermediate stages skip sensors). Assumption,
not checkable (MuJoCo 1.50 is a closed binary): 1.50 filled them at that point too. Under
mujoco-py 2.x (oyster's Docker image until May 2020) they were 0 in the reference: no
contact cost and a zero contact block.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .base import ReferenceTaskSet, TaskFamilyError
from .locomotion import _check_nonnegative, _check_range, _tasks_of
from .mujoco_env import ASSETS, MujocoTaskFamily, SimState, load_model, make_env_classes
from .pearl_locomotion import REFERENCE_SEED, body_id, oyster_split
from .tasks import GoalTask, HeadingTask

#: ``AntGoalEnv._get_obs`` layout: ``qpos`` (15, with the torso's x and y), ``qvel`` (14),
#: ``clip(cfrc_ext, -1, 1)`` of all 14 bodies, the world body first (84).
GOAL_OBS_QPOS = slice(0, 15)
GOAL_OBS_QVEL = slice(15, 29)
GOAL_OBS_CONTACT = slice(29, 113)
#: ``AntEnv._get_obs`` layout (ant-dir): ``qpos[2:]`` (13), ``qvel`` (14).
DIR_OBS_QPOS = slice(0, 13)
DIR_OBS_QVEL = slice(13, 27)


class _PEARLAnt(MujocoTaskFamily):
    xml_path = ASSETS / "ant.xml"  # oyster's rlkit/envs/assets/ant.xml, same physics
    frame_skip = 5  # AntEnv: MujocoEnv(xml_path, frame_skip=5, ...)
    data_fields = ("xpos", "cfrc_ext")

    def __init__(self, ctrl_cost_weight: float, contact_cost_weight: float,
                 survive_reward: float, reset_noise_scale: float) -> None:
        super().__init__(reset_noise_scale)
        _check_nonnegative(ctrl_cost_weight=ctrl_cost_weight,
                           contact_cost_weight=contact_cost_weight)
        self.ctrl_cost_weight, self.contact_cost_weight = ctrl_cost_weight, contact_cost_weight
        self.survive_reward = survive_reward
        self._torso = body_id(load_model(self), "torso")

    def torso_xpos(self, state: SimState) -> np.ndarray:
        """``[N, 3]`` torso frame origin after the step (``get_body_com("torso")``)."""
        return state.data["xpos"][:, self._torso]

    @staticmethod
    def contact_forces(state: SimState) -> np.ndarray:
        """``[N, 84]`` ``clip(cfrc_ext, -1, 1)`` of every body, the world body first."""
        forces = state.data["cfrc_ext"]
        return np.clip(forces, -1.0, 1.0).reshape(forces.shape[0], -1)

    def _costs(self, state: SimState) -> dict[str, np.ndarray]:
        return {"ctrl_cost": self.ctrl_cost_weight * np.sum(state.action ** 2, axis=1),
                "contact_cost": self.contact_cost_weight
                * np.sum(self.contact_forces(state) ** 2, axis=1)}

    def _common(self, terms: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.survive_reward - terms["ctrl_cost"] - terms["contact_cost"]


_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (8,))``: joint torques ``150 * a`` (gear 150, ctrlrange ``[-1, 1]`` in
    oyster's ``ant.xml``). ``NormalizedBoxEnv`` maps ``[-1, 1]`` to that ctrlrange (the
    identity up to rounding) and clips, so the env and its control cost see
    ``clip(a, -1, 1)``. Actuator order hip_4 ankle_4 hip_1 ankle_1 hip_2 ankle_2 hip_3 ankle_3.

    ## Dynamics
    Model ``envs/assets/ant.xml``: the physical quantities of oyster's
    ``rlkit/envs/assets/ant.xml`` (gym's ant; oyster adds two massless sites, ours a site
    and an accelerometer that make MuJoCo compute ``cfrc_ext``), timestep 0.01, RK4. One
    env step is 5 physics steps, ``dt = 0.05`` (``AntEnv.__init__``: ``frame_skip=5``).

    ## Starting state
    ``qpos0 + U(-0.1, 0.1)`` on all 15 coordinates (quaternion included) and ``0.1 * N(0,
    1)`` velocities (``AntEnv.reset_model``), scale ``reset_noise_scale``. ``qpos0`` has the
    torso at z = 0.75 and every hinge at 0: gym's ``init_qpos`` is ``sim.data.qpos`` at
    construction, and the model's ``init_qpos`` numeric (z 0.55) is read by no one. The
    ant starts with its legs in the air and falls to the floor in its first steps.
"""

_ARGS_NOISE = """
    | ``reset_noise_scale`` | 0.1 | scale of the initial-state noise |

    ## Version history
    * v0: initial version, after katerakelly/oyster.
"""


class PEARLAntGoal(_PEARLAnt):
    __doc__ = """Ant walking to a hidden goal position, as PEARL's reference code defines it.

    ## Description
    ``AntGoalEnv`` (``ant-goal``) of katerakelly/oyster (``rlkit/envs/ant_goal.py``, task
    structure from ProMP's ``ant_rand_goal.py``) under ``NormalizedBoxEnv``. Each task is a
    goal ``g`` in the plane the agent must infer from rewards.
""" + _DOC_COMMON + """
    ## Observation space
    ``Box(-inf, inf, (113,))`` (``AntGoalEnv._get_obs``): ``qpos`` (15: torso x, y, z,
    quaternion wxyz, hip_1 ankle_1 ... hip_4 ankle_4; the x-y position IS observed),
    ``qvel`` (14), ``clip(cfrc_ext, -1, 1)`` of all 14 bodies, world body first (84,
    row-major). Layout: ``GOAL_OBS_QPOS``, ``GOAL_OBS_QVEL``, ``GOAL_OBS_CONTACT``.

    ## Rewards
    ``r = -||p_xy - g||_1 - ctrl - contact + survive_reward`` with ``p`` the torso frame
    origin after the step (``goal_reward = -np.sum(np.abs(xposafter[:2] - self._goal))``,
    ``xposafter = get_body_com("torso")``), ``ctrl = ctrl_cost_weight * ||a||^2``
    (``.1 * np.square(action).sum()``), ``contact = contact_cost_weight *
    ||clip(cfrc_ext, -1, 1)||^2`` (``0.5 * 1e-3``), ``survive_reward = 0.0``. ``info``
    holds ``goal_distance``, ``ctrl_cost`` and ``contact_cost``.

    ## Episode end
    Never terminates (``done = False``, whatever the torso height); truncated after 200
    steps (``max_path_length``, ``configs/default.py``) or at a diverged step.

    ## Tasks
    ``GoalTask(goal)``, uniform in the disk of radius ``goal_radius`` (3): angle
    ``2 pi u1``, radius ``3 sqrt(u2)`` (``sample_tasks``: ``a = np.random.random(n) * 2 *
    np.pi``, then ``r = 3 * np.random.random(n) ** 0.5``). Reference set:
    ``configs/ant-goal.json`` asks for 180 tasks, ``n_train_tasks`` 150 and
    ``n_eval_tasks`` 30 (training ``[:150]``, held-out ``[-30:]``, disjoint). oyster draws
    them from numpy's global generator UNSEEDED (nothing seeds it before the env is built;
    ``set_seed`` runs later, in ``setup_logger``), so every oyster run had other goals and
    none can be reproduced; ours are oyster's procedure and counts on
    ``RandomState(1337)`` (the seed of oyster's seeded families), the same in every run.
    Defined for ``goal_radius`` 3 only.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``goal_radius`` | 3.0 | radius of the goal disk (m) |
    | ``ctrl_cost_weight`` | 0.1 | weight of ``||a||^2`` |
    | ``contact_cost_weight`` | 0.0005 | weight of ``||clip(cfrc_ext, -1, 1)||^2`` |
    | ``survive_reward`` | 0.0 | bonus per step |""" + _ARGS_NOISE

    def __init__(self, goal_radius: float = 3.0, ctrl_cost_weight: float = 0.1,
                 contact_cost_weight: float = 0.0005, survive_reward: float = 0.0,
                 reset_noise_scale: float = 0.1) -> None:
        super().__init__(ctrl_cost_weight, contact_cost_weight, survive_reward,
                         reset_noise_scale)
        if not goal_radius > 0:
            raise ValueError(f"goal_radius must be > 0, got {goal_radius}")
        self.goal_radius = goal_radius

    @staticmethod
    def _goals(angle_u: np.ndarray, radius_u: np.ndarray, radius: float) -> list[GoalTask]:
        a, r = angle_u * 2 * np.pi, radius * radius_u ** 0.5
        return [GoalTask((float(x), float(y))) for x, y in zip(r * np.cos(a), r * np.sin(a))]

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        angle_u = rng.random(n)  # angles first, as the reference
        return self._goals(angle_u, rng.random(n), self.goal_radius)

    def reference_task_set(self) -> ReferenceTaskSet:
        if self.goal_radius != 3.0:
            raise TaskFamilyError(f"the reference goals lie in the disk of radius 3, not "
                                  f"{self.goal_radius:g}")
        rs = np.random.RandomState(REFERENCE_SEED)
        angle_u = rs.random_sample(180)
        goals = self._goals(angle_u, rs.random_sample(180), 3.0)
        return oyster_split(goals, 150, 30, "oyster rlkit/envs/ant_goal.py procedure (unseeded "
                            "there) on RandomState(1337); configs/ant-goal.json: 150 train, "
                            "30 eval")

    def task_arrays(self, tasks: Sequence[GoalTask]) -> dict[str, np.ndarray]:
        _tasks_of(tasks, GoalTask, type(self).__name__)
        return {"goal": np.array([t.goal for t in tasks], dtype=np.float64).reshape(-1, 2)}

    def observation(self, state: SimState) -> np.ndarray:
        return np.concatenate([state.qpos, state.qvel, self.contact_forces(state)], axis=1)

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        terms = self._costs(state)
        terms["goal_distance"] = np.sum(np.abs(self.torso_xpos(state)[:, :2] - task["goal"]),
                                        axis=1)
        return -terms["goal_distance"] + self._common(terms), terms


class PEARLAntDir(_PEARLAnt):
    __doc__ = """Ant running in a hidden heading in the plane, as PEARL's reference code defines it.

    ## Description
    ``AntDirEnv`` (``ant-dir``) of katerakelly/oyster (``rlkit/envs/ant_dir.py``) under
    ``NormalizedBoxEnv``. Each task is a heading ``theta``. ``forward_backward=True`` is the
    forward/backward task (theta 0 or pi); ``configs/ant-dir.json`` leaves ``AntDirEnv``'s
    default ``forward_backward=False``, so the reference code as shipped runs two random
    headings.
""" + _DOC_COMMON + """
    ## Observation space
    ``Box(-inf, inf, (27,))`` (``AntEnv._get_obs``, "gym ant obs"): ``qpos[2:]`` (13: torso
    z, quaternion, 8 hinges; no x-y position), ``qvel`` (14); no contact forces. Layout:
    ``DIR_OBS_QPOS``, ``DIR_OBS_QVEL``.

    ## Rewards
    ``r = v . (cos theta, sin theta) - ctrl - contact + survive_reward`` with ``v = (p' -
    p)_xy / dt``, ``p`` the torso frame origin before and after ``do_simulation``
    (``torso_velocity = torso_xyz_after - torso_xyz_before``, ``forward_reward =
    np.dot(torso_velocity[:2] / self.dt, direct)``), ``ctrl = ctrl_cost_weight * ||a||^2``
    (``.5 * np.square(action).sum()``), ``contact = contact_cost_weight *
    ||clip(cfrc_ext, -1, 1)||^2`` (``0.5 * 1e-3``), ``survive_reward = 1.0``. ``info``
    holds ``forward_velocity`` (along the heading), ``ctrl_cost`` and ``contact_cost``.

    ## Episode end
    Terminates when the torso height ``qpos[2]`` leaves ``[healthy_z_low, healthy_z_high]``
    = ``[0.2, 1.0]`` (``notdone = np.isfinite(state).all() and state[2] >= 0.2 and state[2]
    <= 1.0``); a non-finite state is a diverged step (truncated, ``info["diverged"]``).
    Truncated after 200 steps.

    ## Tasks
    ``HeadingTask(angle)``: ``theta ~ U[0, 2 pi]`` (``sample_tasks``: ``np.random.uniform(0.,
    2.0 * np.pi, size=(num_tasks,))``); with ``forward_backward``, 0 or pi with probability
    1/2 (the reference's fixed pair ``[0., np.pi]``). Reference set:
    ``configs/ant-dir.json`` has ``n_tasks`` 2, ``n_train_tasks`` 2, ``n_eval_tasks`` 2,
    so training and held-out tasks are the same two: ``(0, pi)`` with ``forward_backward``,
    else two headings oyster draws UNSEEDED (as ant-goal), here
    ``RandomState(1337).uniform(0, 2 pi, 2)``.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``forward_backward`` | false | tasks are the headings 0 and pi (forward/backward) |
    | ``ctrl_cost_weight`` | 0.5 | weight of ``||a||^2`` |
    | ``contact_cost_weight`` | 0.0005 | weight of ``||clip(cfrc_ext, -1, 1)||^2`` |
    | ``survive_reward`` | 1.0 | bonus per step |
    | ``healthy_z_low`` / ``healthy_z_high`` | 0.2 / 1.0 | torso height range |""" + _ARGS_NOISE

    data_fields_before = ("xpos",)  # get_body_com("torso") before do_simulation

    def __init__(self, forward_backward: bool = False, ctrl_cost_weight: float = 0.5,
                 contact_cost_weight: float = 0.0005, survive_reward: float = 1.0,
                 healthy_z_low: float = 0.2, healthy_z_high: float = 1.0,
                 reset_noise_scale: float = 0.1) -> None:
        super().__init__(ctrl_cost_weight, contact_cost_weight, survive_reward,
                         reset_noise_scale)
        if not isinstance(forward_backward, bool):
            raise ValueError(f"forward_backward must be true or false, got {forward_backward!r}")
        _check_range("healthy_z", healthy_z_low, healthy_z_high)
        self.forward_backward = forward_backward
        self.healthy_z_low, self.healthy_z_high = healthy_z_low, healthy_z_high

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[HeadingTask]:
        if self.forward_backward:
            return [HeadingTask(float(np.pi * k)) for k in rng.integers(0, 2, size=n)]
        return [HeadingTask(float(a)) for a in rng.uniform(0.0, 2 * np.pi, size=n)]

    def reference_task_set(self) -> ReferenceTaskSet:
        if self.forward_backward:
            return oyster_split([HeadingTask(0.0), HeadingTask(float(np.pi))], 2, 2,
                                "oyster rlkit/envs/ant_dir.py forward_backward: [0, pi]; "
                                "configs/ant-dir.json: 2 train, 2 eval (the same two)")
        angles = np.random.RandomState(REFERENCE_SEED).uniform(0.0, 2.0 * np.pi, size=2)
        return oyster_split([HeadingTask(float(a)) for a in angles], 2, 2,
                            "oyster rlkit/envs/ant_dir.py uniform(0, 2 pi, 2) (unseeded there) "
                            "on RandomState(1337); configs/ant-dir.json: 2 train, 2 eval "
                            "(the same two)")

    def task_arrays(self, tasks: Sequence[HeadingTask]) -> dict[str, np.ndarray]:
        _tasks_of(tasks, HeadingTask, type(self).__name__)
        angle = np.array([t.angle for t in tasks], dtype=np.float64)
        return {"heading": np.stack([np.cos(angle), np.sin(angle)], axis=1)}

    def observation(self, state: SimState) -> np.ndarray:
        return np.concatenate([state.qpos[:, 2:], state.qvel], axis=1)

    def terminated(self, state: SimState, task: Mapping[str, np.ndarray]) -> np.ndarray:
        z = state.qpos[:, 2]
        return (z < self.healthy_z_low) | (z > self.healthy_z_high)

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        before = state.data_before["xpos"][:, self._torso]
        velocity = (self.torso_xpos(state)[:, :2] - before[:, :2]) / state.dt
        terms = self._costs(state)
        terms["forward_velocity"] = np.sum(velocity * task["heading"], axis=1)
        return terms["forward_velocity"] + self._common(terms), terms


PEARLAntGoalEnv, PEARLAntGoalBatchEnv = make_env_classes(PEARLAntGoal)
PEARLAntDirEnv, PEARLAntDirBatchEnv = make_env_classes(PEARLAntDir)

__all__ = ["PEARLAntGoal", "PEARLAntDir", "PEARLAntGoalEnv", "PEARLAntGoalBatchEnv",
           "PEARLAntDirEnv", "PEARLAntDirBatchEnv", "GOAL_OBS_QPOS", "GOAL_OBS_QVEL",
           "GOAL_OBS_CONTACT", "DIR_OBS_QPOS", "DIR_OBS_QVEL"]
