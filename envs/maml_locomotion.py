"""The MAML paper's own half-cheetah task families (Finn et al. 2017, reference code).

The MDPs of cbfinn/maml_rl, rebuilt on MuJoCo 4: rllab's half-cheetah model
(``assets/rllab_half_cheetah.xml``), ONE physics step of 0.01 s per env step, a
20-dimensional observation that ends with the torso subtree's centre of mass, and
velocities that are the torso subtree's centre-of-mass velocity (rllab's
``get_body_comvel("torso")``), not ``(x' - x) / dt``. Today's Gymnasium-style families
(:mod:`metarl.envs.locomotion`: ``HalfCheetah-v5`` model use, frame skip 5, 17-dim
observation) are a different MDP; results are comparable only within one definition.

Reference files (cbfinn/maml_rl; rll/rllab has the same model and MujocoEnv):

* ``rllab/envs/mujoco/half_cheetah_env_rand.py`` (``HalfCheetahEnvRand``): velocity task.
* ``rllab/envs/mujoco/half_cheetah_env_rand_direc.py`` (``HalfCheetahEnvRandDirec``):
  direction task.
* ``rllab/envs/mujoco/mujoco_env.py`` (``MujocoEnv``): frame skip, reset noise,
  ``forward_dynamics``, ``get_body_comvel``.
* ``rllab/mujoco_py/mjcore.py`` (``MjModel.forward``, ``body_comvels``,
  ``_compute_subtree``): how ``get_body_comvel`` is computed.
* ``rllab/envs/normalized_env.py`` (``NormalizedEnv.step``): action scaling.
* ``vendor/mujoco_models/half_cheetah.xml``: the model.
* ``maml_examples/cluster_maml_trpo_cheetah.py``: ``normalize(...)`` wrapping,
  ``max_path_length = 200``.
* ``sandbox/rocky/tf/algos/batch_maml_polopt.py`` (``train``): tasks come from the
  env's ``sample_goals(meta_batch_size)`` and reach ``reset(reset_args=goal)``.

Centre of mass and its velocity: MuJoCo computes position-dependent quantities
(``subtree_com``, ``cvel``) at the *start* of ``mj_step``, so after a step they are one
step stale; rllab calls ``model.forward()`` after stepping (``MujocoEnv.forward_dynamics``)
and reads them for the new state. The batched env cannot run ``mj_forward`` per
simulation from a family, so this module computes the torso subtree's centre of mass
and its velocity from ``qpos``/``qvel`` with the model's own planar kinematics
(:class:`_PlanarSubtreeCOM`, vectorised over simulations; the tests check it against
MuJoCo's ``mj_forward`` + ``subtree_com``, ``mj_subtreeVel`` + ``subtree_linvel`` and
rllab's ``_compute_subtree`` algorithm run with ``mj_objectVelocity``, to 1e-12).
"""

from __future__ import annotations

from typing import Any, Mapping

import mujoco
import numpy as np

from .locomotion import _check_nonnegative, _DirectionTasks, _VelocityTasks
from .mujoco_env import ASSETS, MujocoTaskFamily, SimState, load_model, make_env_classes
from .tasks import DirectionTask

#: rllab's ``get_current_obs`` layout: ``qpos[1:]`` (8), ``qvel`` (9), torso COM (3).
OBS_QPOS = slice(0, 8)
OBS_QVEL = slice(8, 17)
OBS_TORSO_COM = slice(17, 20)


class _PlanarSubtreeCOM:
    """Centre of mass of a body's subtree and its velocity, from ``qpos`` and ``qvel``.

    For planar models moving in the x-z plane: every body's joints are slides in the x-z
    plane (before any hinge of that body) or hinges about y at the body origin, and no
    body frame is rotated. These are checked against the compiled model, so a model
    outside this class fails at construction.

    Body ``b``'s origin is ``o_b = o_p + R(theta_p) (pos_b + sum_slides u q)`` (``p`` its
    parent, ``theta`` the summed hinge angles from the root), its COM
    ``c_b = o_b + R(theta_b) ipos_b``. Unrolled, the mass-weighted subtree COM is
    ``sum_j R(theta_j) v_j`` plus the slides' terms, with constant vectors ``v_j`` per
    body, so one step of all simulations costs two small matrix products of
    ``cos theta`` and ``sin theta`` (a loop over bodies cost 4.5 ms per call at 800
    simulations, a quarter of the sampler's time on this family). Velocities follow with
    ``d/dt R(theta) v = omega * (y x R(theta) v) = omega * (r_z, 0, -r_x)``.
    """

    def __init__(self, model: mujoco.MjModel, body: str) -> None:
        root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if root < 0:
            raise ValueError(f"model has no body {body!r}")
        if not np.allclose(model.body_quat[1:], [1, 0, 0, 0]):
            raise ValueError("planar COM kinematics need unrotated body frames")
        nbody, parent = model.nbody, model.body_parentid
        path = np.zeros((nbody, nbody), dtype=bool)  # path[a, b]: a is b or an ancestor of b
        for b in range(nbody):
            a = b
            while True:
                path[a, b] = True
                if a == 0:
                    break
                a = parent[a]
        in_subtree = path[root]
        mass = np.where(in_subtree, model.body_mass, 0.0)
        weights = mass / mass.sum()
        carried = path.astype(float) @ weights  # carried[a]: subtree weight that body a moves
        hinge_q, hinge_d, hinge_body = [], [], []
        slides: list[tuple[int, int, int, np.ndarray]] = []
        for j in range(model.njnt):
            b, kind, axis = model.jnt_bodyid[j], model.jnt_type[j], model.jnt_axis[j]
            if kind == mujoco.mjtJoint.mjJNT_HINGE:
                if not (np.allclose(axis, [0, 1, 0]) and np.allclose(model.jnt_pos[j], 0)):
                    raise ValueError("planar COM kinematics need y hinges at body origins")
                hinge_q.append(model.jnt_qposadr[j])
                hinge_d.append(model.jnt_dofadr[j])
                hinge_body.append(b)
            elif kind == mujoco.mjtJoint.mjJNT_SLIDE:
                if b in hinge_body or abs(axis[1]) > 0:
                    raise ValueError("planar COM kinematics need x-z slides before hinges")
                # rotated by the parent's angle, moving every subtree body below b
                slides.append((model.jnt_qposadr[j], model.jnt_dofadr[j], parent[b],
                               axis * carried[b]))
            else:
                raise ValueError("planar COM kinematics support slide and hinge joints only")
        # theta_j = sum of the hinge angles of j and its ancestors: qpos[:, hinge_q] @ cumulate
        self.hinge_q, self.hinge_d = np.array(hinge_q, int), np.array(hinge_d, int)
        self.cumulate = path[hinge_body].astype(float)  # [hinges, bodies]
        # v_j: pos_a of every body a whose parent is j, weighted by what a carries, plus
        # j's own COM offset; R(theta_j) rotates both
        v = weights[:, None] * model.body_ipos
        for a in range(1, nbody):
            v[parent[a]] += carried[a] * model.body_pos[a]
        self.v = v
        self.slides = slides

    def __call__(self, qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[N, 3]`` subtree COM positions and ``[N, 3]`` COM velocities (world frame)."""
        theta = qpos[:, self.hinge_q] @ self.cumulate  # [N, bodies]
        omega = qvel[:, self.hinge_d] @ self.cumulate
        c, s = np.cos(theta), np.sin(theta)
        v = self.v
        r_x, r_z = c @ v[:, 0] + s @ v[:, 2], -s @ v[:, 0] + c @ v[:, 2]
        oc, os_ = omega * c, omega * s
        com = np.stack([r_x, np.full_like(r_x, v[:, 1].sum()), r_z], axis=1)
        vel = np.stack([-os_ @ v[:, 0] + oc @ v[:, 2], np.zeros_like(r_x),
                        -oc @ v[:, 0] - os_ @ v[:, 2]], axis=1)
        for qadr, dadr, j, coeff in self.slides:
            cj, sj, wj = c[:, j], s[:, j], omega[:, j]
            rx, rz = cj * coeff[0] + sj * coeff[2], -sj * coeff[0] + cj * coeff[2]
            q, dq = qpos[:, qadr], qvel[:, dadr]
            com[:, 0] += rx * q
            com[:, 2] += rz * q
            vel[:, 0] += rx * dq + wj * rz * q
            vel[:, 2] += rz * dq - wj * rx * q
        return com, vel


class _MAMLHalfCheetah(MujocoTaskFamily):
    xml_path = ASSETS / "rllab_half_cheetah.xml"
    frame_skip = 1  # rllab MujocoEnv: 1 unless the model has a "frame_skip" <numeric>

    def __init__(self, forward_reward_weight: float = 1.0, ctrl_cost_weight: float = 0.05,
                 qpos_noise_std: float = 0.01, qvel_noise_std: float = 0.1) -> None:
        super().__init__(reset_noise_scale=0.0)  # unused: initial_state is rllab's below
        _check_nonnegative(forward_reward_weight=forward_reward_weight,
                           ctrl_cost_weight=ctrl_cost_weight, qpos_noise_std=qpos_noise_std,
                           qvel_noise_std=qvel_noise_std)
        self.forward_reward_weight = forward_reward_weight
        self.ctrl_cost_weight = ctrl_cost_weight
        self.qpos_noise_std, self.qvel_noise_std = qpos_noise_std, qvel_noise_std
        model = load_model(self)
        low, high = model.actuator_ctrlrange.T
        if not (model.actuator_ctrllimited.all() and np.all(low == -1) and np.all(high == 1)):
            # rllab's normalize() maps [-1, 1] to ctrlrange; the identity only for [-1, 1]
            raise ValueError("the MAML half-cheetah model must have ctrlrange [-1, 1]")
        self._torso_com = _PlanarSubtreeCOM(model, "torso")

    def initial_state(self, model: mujoco.MjModel, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
        # rllab MujocoEnv.reset_mujoco: init_qpos + N(0, 1) * 0.01, init_qvel + N(0, 1) * 0.1,
        # qpos drawn first; init_qpos / init_qvel are the model's initial state (qpos0, 0).
        qpos = model.qpos0 + self.qpos_noise_std * rng.standard_normal(model.nq)
        qvel = self.qvel_noise_std * rng.standard_normal(model.nv)
        return qpos, qvel

    def torso_com(self, state: SimState) -> tuple[np.ndarray, np.ndarray]:
        """``[N, 3]`` torso subtree COM and ``[N, 3]`` its velocity, after the step."""
        return self._torso_com(state.qpos, state.qvel)

    def observation(self, state: SimState) -> np.ndarray:
        com, _ = self.torso_com(state)
        return np.concatenate([state.qpos[:, 1:], state.qvel, com], axis=1)

    def _terms(self, state: SimState) -> tuple[np.ndarray, np.ndarray]:
        _, com_velocity = self.torso_com(state)
        ctrl_cost = self.ctrl_cost_weight * np.sum(state.action ** 2, axis=1)
        return com_velocity[:, 0], ctrl_cost


_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (6,))``: the policy's action in rllab's ``normalize()`` range. rllab maps
    it to the model's ctrlrange, ``lb + (a + 1) / 2 * (ub - lb)``, clipped to ``[lb, ub]``
    (``normalized_env.py``, ``NormalizedEnv.step``); the ctrlrange is ``[-1, 1]``
    (``half_cheetah.xml``, ``<motor ctrlrange='-1 1'>``), so that map is the identity and
    the control is ``clip(a, -1, 1)``, times the gears 120 90 60 120 60 30.

    ## Observation space
    ``Box(-inf, inf, (20,))``, as ``get_current_obs``: ``obs[0:8] = qpos[1:]`` (rootz,
    rooty, six leg angles; the x position is left out), ``obs[8:17] = qvel`` (9),
    ``obs[17:20]`` = the torso subtree's centre of mass (x, y, z) in the world frame
    (``get_body_com("torso")`` = ``data.com_subtree[torso]``, MuJoCo 4's
    ``data.subtree_com``), all for the state after the step (rllab's
    ``forward_dynamics`` runs ``model.forward()`` after ``model.step()``).

    ## Dynamics
    One env step is ONE physics step of 0.01 s (``MujocoEnv.__init__``: ``frame_skip`` is
    1 unless the model has a ``frame_skip`` numeric, which ``half_cheetah.xml`` has not;
    ``<option timestep='0.01'>``, default Euler integrator). No action noise
    (``MujocoEnv(action_noise=0.0)``).

    ## Forward velocity
    ``v`` = x component of rllab's ``get_body_comvel("torso")`` = ``body_comvels[torso]``
    (``mjcore.py``, ``MjModel._compute_subtree``): for each body ``b``, the linear part
    of ``mj_objectVelocity(mjOBJ_BODY, b, world orientation)`` times ``body_mass[b]``,
    summed over the torso's subtree and divided by the subtree's mass. In MuJoCo 4
    ``mjOBJ_BODY`` is the body's inertial frame (its COM, ``xipos``), so this is the
    velocity of the torso subtree's centre of mass, MuJoCo's ``subtree_linvel[torso]``
    (the whole cheetah: the torso is the root of every moving body). Assumption, not
    checkable from the reference (MuJoCo 1.31 is a closed binary): 1.31's
    ``mj_objectVelocity`` for bodies used the same inertial frame.

    ## Starting state
    ``qpos = qpos0 + qpos_noise_std * N(0, 1)``, ``qvel = qvel_noise_std * N(0, 1)``
    (0.01 and 0.1: ``MujocoEnv.reset_mujoco``; ``init_qpos`` is the model's initial
    ``qpos``, all zeros with the torso at z = 0.7 from its body position; ``init_qvel``
    is 0). Gaussian, not Gymnasium's uniform qpos noise.

    ## Episode end
    Never terminates (``done = False`` in ``step``); truncated after 200 steps
    (``max_path_length = 200`` in ``maml_examples/cluster_maml_trpo_cheetah.py``), or at
    a physically diverged step (``info["diverged"]``).
"""

_ARGS_COMMON = """
    | ``forward_reward_weight`` | 1.0 | weight ``w`` of the velocity term (reference: ``1.*``) |
    | ``ctrl_cost_weight`` | 0.05 | weight of ``||a||^2`` (``1e-1 * 0.5`` in the reference) |
    | ``qpos_noise_std`` | 0.01 | std of the Gaussian noise on the initial ``qpos`` |
    | ``qvel_noise_std`` | 0.1 | std of the Gaussian initial ``qvel`` |

    ## Version history
    * v0: initial version, after cbfinn/maml_rl.
"""


class MAMLHalfCheetahVel(_VelocityTasks, _MAMLHalfCheetah):
    __doc__ = """Half-cheetah running at a target velocity, as the MAML reference code defines it.

    ## Description
    ``HalfCheetahEnvRand`` of cbfinn/maml_rl (``rllab/envs/mujoco/half_cheetah_env_rand.py``)
    under ``normalize()``: rllab's half-cheetah model and MujocoEnv (see the module
    docstring for the reference files). Each task is a target velocity ``v*`` the agent
    must infer from rewards.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = -w * |v - v*| - ctrl_cost_weight * ||a||^2`` (``w = forward_reward_weight``) with
    ``v`` the torso subtree's COM velocity along x after the step and
    ``a = clip(a_policy, -1, 1)`` (the scaled, clipped action: ``step`` clips to
    ``action_bounds`` before
    ``ctrl_cost = 1e-1 * 0.5 * sum(a^2)``; ``run_cost = |comvel_x - goal_vel|``;
    ``reward = -(ctrl_cost + run_cost)``). ``info`` holds ``forward_velocity`` and
    ``ctrl_cost``.

    ## Tasks
    ``VelocityTask(velocity)`` with ``v* ~ U[velocity_low, velocity_high]``, default
    ``U[0, 2]`` (``sample_goals``: ``np.random.uniform(0.0, 2.0, (num_goals,))``).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``velocity_low`` / ``velocity_high`` | 0.0 / 2.0 | target velocity (m/s) |""" + _ARGS_COMMON

    def __init__(self, velocity_low: float = 0.0, velocity_high: float = 2.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_velocity_range(velocity_low, velocity_high)

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._velocity_reward(*self._terms(state), task, self.forward_reward_weight)


class MAMLHalfCheetahDir(_DirectionTasks, _MAMLHalfCheetah):
    __doc__ = """Half-cheetah running forward or backward, as the MAML reference code defines it.

    ## Description
    ``HalfCheetahEnvRandDirec`` of cbfinn/maml_rl
    (``rllab/envs/mujoco/half_cheetah_env_rand_direc.py``) under ``normalize()``; the
    model, dynamics and observation of :class:`MAMLHalfCheetahVel`. Each task is a
    direction ``d`` along x.
""" + _DOC_COMMON + """
    ## Rewards
    ``r = w * d * v - ctrl_cost_weight * ||a||^2`` (``run_cost = goal_direction * -1 *
    comvel_x``, ``reward = -(ctrl_cost + run_cost)``), ``v`` and ``a`` as
    :class:`MAMLHalfCheetahVel`.

    ## Tasks
    ``DirectionTask(direction)``: as the reference, ``u ~ U[0, 2]`` (``sample_goals``)
    and ``d = -1 if u < 1 else +1`` (``reset``), i.e. -1 or +1 with probability 1/2.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|""" + _ARGS_COMMON

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        u = rng.uniform(0.0, 2.0, size=n)
        return [DirectionTask(-1 if x < 1.0 else 1) for x in u]

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        velocity, ctrl_cost = self._terms(state)
        reward = self.forward_reward_weight * task["direction"] * velocity - ctrl_cost
        return reward, {"forward_velocity": velocity, "ctrl_cost": ctrl_cost}


MAMLHalfCheetahVelEnv, MAMLHalfCheetahVelBatchEnv = make_env_classes(MAMLHalfCheetahVel)
MAMLHalfCheetahDirEnv, MAMLHalfCheetahDirBatchEnv = make_env_classes(MAMLHalfCheetahDir)

__all__ = ["MAMLHalfCheetahVel", "MAMLHalfCheetahDir", "MAMLHalfCheetahVelEnv",
           "MAMLHalfCheetahVelBatchEnv", "MAMLHalfCheetahDirEnv", "MAMLHalfCheetahDirBatchEnv",
           "OBS_QPOS", "OBS_QVEL", "OBS_TORSO_COM"]
