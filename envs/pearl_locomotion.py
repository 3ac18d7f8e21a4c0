"""The PEARL paper's own half-cheetah task families (Rakelly et al. 2019, reference code).

The MDPs of katerakelly/oyster, rebuilt on MuJoCo 4. oyster's classes subclass gym 0.12.1's
MuJoCo envs (``docker/environment.yml``: ``gym==0.12.1``, ``mujoco-py==1.50.1.63``; 2.0.2.5
before May 2020) and are wrapped in rlkit's ``NormalizedBoxEnv``. The ant families are in
:mod:`metarl.envs.pearl_ant`. Results are comparable only within one definition: the
Gymnasium-style (:mod:`metarl.envs.locomotion`) and MAML (:mod:`metarl.envs.maml_locomotion`)
families are different MDPs.

Reference files (katerakelly/oyster unless marked gym):

* ``rlkit/envs/half_cheetah.py`` (``HalfCheetahEnv``): observation, over gym's
  ``gym/envs/mujoco/half_cheetah.py`` (model ``half_cheetah.xml``, frame skip 5, reset noise).
* ``rlkit/envs/half_cheetah_vel.py`` (``HalfCheetahVelEnv``, ``cheetah-vel``) and
  ``rlkit/envs/half_cheetah_dir.py`` (``HalfCheetahDirEnv``, ``cheetah-dir``): rewards, tasks.
* gym ``gym/envs/mujoco/mujoco_env.py`` (``MujocoEnv``): ``do_simulation`` (``frame_skip``
  calls of ``sim.step()``, i.e. ``mj_step``), ``dt = timestep * frame_skip``, ``reset``,
  ``get_body_com(name) = data.get_body_xpos(name)``.
* ``rlkit/envs/wrappers.py`` (``NormalizedBoxEnv.step``): action scaling and clipping.
* ``launch_experiment.py``: ``train_tasks = tasks[:n_train_tasks]``,
  ``eval_tasks = tasks[-n_eval_tasks:]``; ``configs/cheetah-vel.json``,
  ``configs/cheetah-dir.json``, ``configs/default.py``: the task counts.

MjData fields read after a step (``get_body_com``) are what ``mj_step`` leaves, as
mujoco-py returns them: MuJoCo evaluates positions at the *start* of a physics step, so
after a step with the Euler integrator the torso frame ``xpos`` belongs to the state one
physics step (0.01 s) before the observed ``qpos``. The envs here read the same field
after the same ``mj_step`` calls (no extra ``mj_forward``), which reproduces it.
"""

from __future__ import annotations

from typing import Any, Mapping

import mujoco
import numpy as np

from .base import ReferenceTaskSet, TaskFamilyError
from .locomotion import _check_nonnegative, _DirectionTasks, _VelocityTasks
from .mujoco_env import ASSETS, MujocoTaskFamily, SimState, load_model, make_env_classes
from .tasks import DirectionTask, VelocityTask

#: oyster's seed for its seeded task sets (``np.random.seed(1337)`` in ``half_cheetah_vel.py``
#: and ``point_robot.py``); also ours for the sets oyster draws unseeded (the ant families).
REFERENCE_SEED = 1337

#: ``HalfCheetahEnv._get_obs`` layout: ``qpos[1:]`` (8), ``qvel`` (9), torso frame xpos (3).
OBS_QPOS = slice(0, 8)
OBS_QVEL = slice(8, 17)
OBS_TORSO_XPOS = slice(17, 20)


def body_id(model: mujoco.MjModel, name: str) -> int:
    """Index of body ``name`` in ``model`` (``ValueError`` if it has none)."""
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if index < 0:
        raise ValueError(f"the model has no body {name!r}")
    return index


def oyster_split(tasks: list[Any], num_train: int, num_test: int, source: str
                 ) -> ReferenceTaskSet:
    """oyster's split of its ``n_tasks`` tasks: ``tasks[:num_train]``, ``tasks[-num_test:]``
    (``launch_experiment.py``); the two overlap when ``num_train + num_test > len(tasks)``."""
    return ReferenceTaskSet(tuple(tasks[:num_train]), tuple(tasks[len(tasks) - num_test:]),
                            source)


class _PEARLHalfCheetah(MujocoTaskFamily):
    xml_path = ASSETS / "half_cheetah.xml"  # gym 0.12.1's half_cheetah.xml, same physics
    frame_skip = 5  # gym HalfCheetahEnv: MujocoEnv.__init__(self, 'half_cheetah.xml', 5)
    data_fields = ("xpos",)

    def __init__(self, ctrl_cost_weight: float = 0.05, reset_noise_scale: float = 0.1) -> None:
        super().__init__(reset_noise_scale)
        _check_nonnegative(ctrl_cost_weight=ctrl_cost_weight)
        self.ctrl_cost_weight = ctrl_cost_weight
        self._torso = body_id(load_model(self), "torso")

    def observation(self, state: SimState) -> np.ndarray:
        obs = np.concatenate([state.qpos[:, 1:], state.qvel,
                              state.data["xpos"][:, self._torso]], axis=1)
        # oyster's _get_obs ends with .astype(np.float32): the reference's observations
        # carry float32 precision
        return obs.astype(np.float32).astype(np.float64)

    def _terms(self, state: SimState) -> tuple[np.ndarray, np.ndarray]:
        velocity = (state.qpos[:, 0] - state.qpos_before[:, 0]) / state.dt
        ctrl_cost = self.ctrl_cost_weight * np.sum(state.action ** 2, axis=1)
        return velocity, ctrl_cost


_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (6,))``: torques of the six leg joints, times the gears 120 90 60 120 60
    30. rlkit's ``NormalizedBoxEnv`` maps the policy's ``[-1, 1]`` to the ctrlrange,
    ``clip(lb + (a + 1) / 2 * (ub - lb), lb, ub)``, with ctrlrange ``[-1, 1]`` (gym
    ``half_cheetah.xml``: ``<motor ctrllimited="true" ctrlrange="-1 1"/>``): the identity up
    to rounding, then a clip, so the env (and its control cost) sees ``clip(a, -1, 1)``.

    ## Observation space
    ``Box(-inf, inf, (20,))``, as oyster's ``HalfCheetahEnv._get_obs``
    (``rlkit/envs/half_cheetah.py``): ``obs[0:8] = qpos[1:]`` (rootz, rooty, six leg
    angles), ``obs[8:17] = qvel`` (9), ``obs[17:20] = get_body_com("torso")``. gym's
    ``get_body_com`` is ``data.get_body_xpos`` (``mujoco_env.py``): the torso *frame* origin
    ``(rootx, 0, 0.7 + rootz)``, not a centre of mass, read after ``mj_step``, so taken
    one physics step (0.01 s) before ``qpos`` (module docstring). It holds the absolute x
    position that ``qpos[1:]`` leaves out. Rounded to float32 (``.astype(np.float32)``).
    Layout: ``OBS_QPOS``, ``OBS_QVEL``, ``OBS_TORSO_XPOS``.

    ## Dynamics
    Model ``envs/assets/half_cheetah.xml``: the physical quantities of gym 0.12.1's
    ``half_cheetah.xml`` (bodies, joints, gains, masses from ``settotalmass="14"``, written
    out as a density), timestep 0.01, Euler integrator. One env step is 5 physics steps,
    ``dt = 0.05`` (gym ``HalfCheetahEnv``: ``MujocoEnv.__init__(self, 'half_cheetah.xml',
    5)``; ``do_simulation`` runs ``sim.step()`` 5 times).

    ## Starting state
    ``qpos0 + U(-0.1, 0.1)`` (all zeros, torso at z = 0.7 from its body position) and
    ``0.1 * N(0, 1)`` velocities (gym ``HalfCheetahEnv.reset_model``; ``init_qpos`` and
    ``init_qvel`` are the model's initial state), scale ``reset_noise_scale``.

    ## Episode end
    Never terminates (``done = False``); truncated after 200 steps (``max_path_length
    = 200``, ``configs/default.py``), or at a physically diverged step (``info["diverged"]``).
"""

_ARGS_COMMON = """
    | ``ctrl_cost_weight`` | 0.05 | weight of ``||a||^2`` (``0.5 * 1e-1``) |
    | ``reset_noise_scale`` | 0.1 | scale of the initial-state noise |

    ## Version history
    * v0: initial version, after katerakelly/oyster.
"""


class PEARLHalfCheetahVel(_VelocityTasks, _PEARLHalfCheetah):
    __doc__ = """Half-cheetah running at a target velocity, as PEARL's reference code defines it.

    ## Description
    ``HalfCheetahVelEnv`` (``cheetah-vel``) of katerakelly/oyster
    (``rlkit/envs/half_cheetah_vel.py``) under ``NormalizedBoxEnv``: gym's half-cheetah
    with oyster's observation. Each task is a target velocity ``v*`` the agent must infer
    from rewards.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = -|v - v*| - ctrl_cost_weight * ||a||^2`` with ``v = (x' - x) / dt`` (``qpos[0]``
    before and after ``do_simulation``, ``dt = 0.05``): ``forward_reward = -1.0 *
    abs(forward_vel - self._goal_vel)``, ``ctrl_cost = 0.5 * 1e-1 * sum(action^2)``.
    ``info`` holds ``forward_velocity`` and ``ctrl_cost``.

    ## Tasks
    ``VelocityTask(velocity)``, ``v* ~ U[velocity_low, velocity_high]``, default ``U[0, 3]``
    (``sample_tasks``: ``np.random.uniform(0.0, 3.0, size=(num_tasks,))``).
    Reference set (:meth:`reference_task_set`, ``algo.task_set: reference``):
    ``sample_tasks`` seeds numpy first (``np.random.seed(1337)``) and ``configs/cheetah-vel.json``
    asks for 130 tasks, ``n_train_tasks`` 100 and ``n_eval_tasks`` 30: the velocities are
    ``RandomState(1337).uniform(0.0, 3.0, 130)``, training ``[:100]``, held-out ``[-30:]``
    (disjoint). Defined for the default range only.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``velocity_low`` / ``velocity_high`` | 0.0 / 3.0 | target velocity (m/s) |""" + _ARGS_COMMON

    def __init__(self, velocity_low: float = 0.0, velocity_high: float = 3.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_velocity_range(velocity_low, velocity_high)

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._velocity_reward(*self._terms(state), task)

    def reference_task_set(self) -> ReferenceTaskSet:
        if (self.velocity_low, self.velocity_high) != (0.0, 3.0):
            raise TaskFamilyError(f"the reference tasks are drawn from U[0, 3], not "
                                  f"U[{self.velocity_low:g}, {self.velocity_high:g}]")
        velocities = np.random.RandomState(REFERENCE_SEED).uniform(0.0, 3.0, size=130)
        return oyster_split([VelocityTask(float(v)) for v in velocities], 100, 30,
                            "oyster rlkit/envs/half_cheetah_vel.py: np.random.seed(1337), "
                            "uniform(0.0, 3.0, 130); configs/cheetah-vel.json: 100 train, "
                            "30 eval")


class PEARLHalfCheetahDir(_DirectionTasks, _PEARLHalfCheetah):
    __doc__ = """Half-cheetah running forward or backward, as PEARL's reference code defines it.

    ## Description
    ``HalfCheetahDirEnv`` (``cheetah-dir``) of katerakelly/oyster
    (``rlkit/envs/half_cheetah_dir.py``) under ``NormalizedBoxEnv``; the model, dynamics
    and observation of :class:`PEARLHalfCheetahVel`. Each task is a direction ``d``.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = d * v - ctrl_cost_weight * ||a||^2`` (``forward_reward = self._goal_dir *
    forward_vel``), ``v`` and ``a`` as :class:`PEARLHalfCheetahVel`.

    ## Tasks
    ``DirectionTask(direction)``, ``d`` = -1 or +1 with probability 1/2 (the distribution of
    the unused ``sample_tasks``). Reference set: oyster's tasks are fixed,
    ``[{'direction': -1}, {'direction': 1}]`` (``__init__``), and ``configs/cheetah-dir.json``
    has ``n_tasks`` 2, ``n_train_tasks`` 2, ``n_eval_tasks`` 2: training and held-out tasks
    are the same two, (-1, +1).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|""" + _ARGS_COMMON

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        velocity, ctrl_cost = self._terms(state)
        reward = task["direction"] * velocity - ctrl_cost
        return reward, {"forward_velocity": velocity, "ctrl_cost": ctrl_cost}

    def reference_task_set(self) -> ReferenceTaskSet:
        return oyster_split([DirectionTask(-1), DirectionTask(1)], 2, 2,
                            "oyster rlkit/envs/half_cheetah_dir.py: directions [-1, 1]; "
                            "configs/cheetah-dir.json: 2 train, 2 eval (the same two)")


PEARLHalfCheetahVelEnv, PEARLHalfCheetahVelBatchEnv = make_env_classes(PEARLHalfCheetahVel)
PEARLHalfCheetahDirEnv, PEARLHalfCheetahDirBatchEnv = make_env_classes(PEARLHalfCheetahDir)

__all__ = ["PEARLHalfCheetahVel", "PEARLHalfCheetahDir", "PEARLHalfCheetahVelEnv",
           "PEARLHalfCheetahVelBatchEnv", "PEARLHalfCheetahDirEnv", "PEARLHalfCheetahDirBatchEnv",
           "OBS_QPOS", "OBS_QVEL", "OBS_TORSO_XPOS", "REFERENCE_SEED", "body_id", "oyster_split"]
