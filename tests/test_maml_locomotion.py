"""The MAML reference code's half-cheetah families: model, observation, rewards, backends."""

import gymnasium
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarl.envs  # noqa: F401  (registers the families)
from metarl.envs import ASSETS, DirectionTask, VelocityTask, get_task_family
from metarl.envs.maml_locomotion import OBS_QPOS, OBS_QVEL, OBS_TORSO_COM

from mujoco_helpers import (
    assert_env_step_is_physics_steps,
    assert_no_mujoco_warnings,
    run_batch_and_gym,
    torso_id as _torso,
)

FAMILIES = {"MAMLHalfCheetahVel-v0": [VelocityTask(0.3), VelocityTask(1.7)],
            "MAMLHalfCheetahDir-v0": [DirectionTask(-1), DirectionTask(1)]}
MODEL = ASSETS / "rllab_half_cheetah.xml"


def _fresh(model, data):
    """A copy of ``data`` with mj_forward + mj_subtreeVel run for its current state."""
    d = mujoco.MjData(model)
    d.qpos[:], d.qvel[:], d.ctrl[:] = data.qpos, data.qvel, data.ctrl
    mujoco.mj_forward(model, d)
    mujoco.mj_subtreeVel(model, d)
    return d


def test_model_loads_without_mujoco_warnings(tmp_path):
    assert_no_mujoco_warnings(tmp_path, [MODEL])


def test_model_has_rllab_physical_quantities():
    m = mujoco.MjModel.from_xml_path(str(MODEL))
    assert m.opt.timestep == 0.01 and m.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    np.testing.assert_array_equal(m.opt.gravity, [0, 0, -9.81])
    assert (m.nq, m.nv, m.nu, m.nbody, m.nnumeric) == (9, 9, 6, 8, 0)
    assert m.body_mass.sum() == pytest.approx(14.0, abs=1e-12)  # settotalmass='14'
    np.testing.assert_array_equal(m.actuator_gear[:, 0], [120, 90, 60, 120, 60, 30])
    np.testing.assert_array_equal(m.actuator_ctrlrange, np.tile([-1.0, 1.0], (6, 1)))
    np.testing.assert_allclose(m.jnt_range[3:], [[-.52, 1.05], [-.785, .785], [-.4, .785],
                                                 [-1, .7], [-1.2, .87], [-.5, .5]])
    np.testing.assert_allclose(m.jnt_stiffness, [0, 0, 0, 240, 180, 120, 180, 120, 60])
    np.testing.assert_allclose(m.dof_damping, [0, 0, 0, 6, 4.5, 3, 4.5, 3, 1.5])
    np.testing.assert_allclose(m.dof_armature, [0, 0, 0] + [0.1] * 6)
    np.testing.assert_allclose(m.geom_friction, np.tile([0.4, 0.1, 0.1], (m.ngeom, 1)))
    np.testing.assert_allclose(m.qpos0, 0)
    assert m.body_pos[_torso(m)][2] == 0.7


@pytest.mark.parametrize("family_id", FAMILIES)
def test_observation_layout(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    env.set_task(FAMILIES[family_id][1])
    obs, _ = env.reset(seed=0)
    for step in range(6):
        m, d = env.model, env.data
        ref = _fresh(m, d)  # rllab reads the observation after model.forward()
        assert obs.shape == (20,)
        np.testing.assert_array_equal(obs[OBS_QPOS], d.qpos[1:])  # rootz, rooty, 6 legs
        np.testing.assert_array_equal(obs[OBS_QVEL], d.qvel)
        np.testing.assert_allclose(obs[OBS_TORSO_COM], ref.subtree_com[_torso(m)],
                                   atol=1e-12, rtol=0)
        np.testing.assert_array_equal(obs, np.concatenate([obs[OBS_QPOS], obs[OBS_QVEL],
                                                           obs[OBS_TORSO_COM]]))
        obs, *_ = env.step(np.full(6, 0.5 * (-1) ** step))


def test_planar_subtree_com_matches_mujoco_at_random_states():
    """The vectorised torso-subtree COM and its velocity equal MuJoCo's subtree_com and
    subtree_linvel (mj_forward + mj_subtreeVel), for 64 states at once, angles and
    velocities far outside what an episode reaches."""
    from metarl.envs.maml_locomotion import _PlanarSubtreeCOM

    m = mujoco.MjModel.from_xml_path(str(ASSETS / "rllab_half_cheetah.xml"))
    rng = np.random.default_rng(7)
    qpos = rng.uniform(-4.0, 4.0, size=(64, m.nq))
    qvel = rng.uniform(-20.0, 20.0, size=(64, m.nv))
    com, vel = _PlanarSubtreeCOM(m, "torso")(qpos, qvel)
    d = mujoco.MjData(m)
    for i in range(64):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_forward(m, d)
        mujoco.mj_subtreeVel(m, d)
        np.testing.assert_allclose(com[i], d.subtree_com[_torso(m)], atol=1e-12, rtol=0)
        np.testing.assert_allclose(vel[i], d.subtree_linvel[_torso(m)], atol=1e-11, rtol=0)


@pytest.mark.parametrize("family_id", FAMILIES)
def test_one_env_step_is_one_physics_step(family_id):
    assert_env_step_is_physics_steps(family_id, 6, 1, 0.01)


def _rllab_body_comvel(model, data, body):
    """rllab mjcore.MjModel._compute_subtree, run with MuJoCo 4's mj_objectVelocity."""
    vels = np.zeros((model.nbody, 6))
    for i in range(model.nbody):
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, i, vels[i], 0)
    momentum = vels[:, 3:] * model.body_mass[:, None]
    mass = model.body_mass.copy()
    for i in range(model.nbody - 1, 0, -1):
        momentum[model.body_parentid[i]] += momentum[i]
        mass[model.body_parentid[i]] += mass[i]
    return (momentum / mass[:, None])[body]


@pytest.mark.parametrize("family_id", FAMILIES)
def test_rewards_by_hand(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    rng = np.random.default_rng(1)
    for task in FAMILIES[family_id]:
        env.set_task(task)
        env.reset(seed=5)
        for _ in range(15):
            action = rng.uniform(-2.0, 2.0, size=6)  # beyond [-1, 1]: clipped first
            _, reward, terminated, truncated, info = env.step(action)
            m, d = env.model, env.data
            ref = _fresh(m, d)
            velocity = ref.subtree_linvel[_torso(m)][0]
            assert _rllab_body_comvel(m, ref, _torso(m))[0] == pytest.approx(velocity,
                                                                            abs=1e-10)
            ctrl_cost = 0.1 * 0.5 * np.sum(np.clip(action, -1, 1) ** 2)
            assert info["forward_velocity"] == pytest.approx(velocity, abs=1e-10)
            assert info["ctrl_cost"] == pytest.approx(ctrl_cost, abs=1e-12)
            if isinstance(task, VelocityTask):
                expected = -abs(velocity - task.velocity) - ctrl_cost
            else:
                expected = task.direction * velocity - ctrl_cost
            assert reward == pytest.approx(expected, abs=1e-10)
            assert not terminated and not truncated
        # it moved: the COM velocity is not the (x' - x) / dt of the other families' torso
        assert abs(velocity) > 1e-3


def test_reset_noise_is_rllab_gaussian():
    batch = get_task_family("MAMLHalfCheetahVel-v0").make_batch_env(2000, horizon=5, threads=1)
    batch.reset([VelocityTask(1.0)] * 2000, seeds=range(2000))
    qpos, qvel = batch.batch.bind("qpos").copy(), batch.batch.bind("qvel").copy()
    assert np.std(qpos) == pytest.approx(0.01, rel=0.05)  # qpos0 = 0 for every joint
    assert np.std(qvel) == pytest.approx(0.1, rel=0.05)
    assert abs(np.mean(qpos)) < 1e-3 and abs(np.mean(qvel)) < 1e-2
    assert np.abs(qpos).max() > 0.03  # Gaussian tails, not U(-0.01, 0.01)


def test_task_distributions():
    rng = np.random.default_rng(0)
    vel = get_task_family("MAMLHalfCheetahVel-v0").make_env().unwrapped.sample_tasks(4000, rng)
    v = np.array([t.velocity for t in vel])
    assert v.min() >= 0 and v.max() <= 2 and v.mean() == pytest.approx(1.0, abs=0.05)
    dirs = get_task_family("MAMLHalfCheetahDir-v0").make_env().unwrapped.sample_tasks(4000, rng)
    d = np.array([t.direction for t in dirs])
    assert set(d.tolist()) == {-1, 1} and abs(d.mean()) < 0.05


def test_gymnasium_make_and_bad_kwargs():
    env = gymnasium.make("metarl/MAMLHalfCheetahDir-v0", ctrl_cost_weight=0.0)
    assert env.spec.max_episode_steps == 200
    with pytest.raises(metarl.envs.TaskFamilyError, match="qvel_noise_std"):
        get_task_family("MAMLHalfCheetahVel-v0").make_env(qvel_noise_std=-1.0)


# -- ant (metarl.envs.maml_ant) -----------------------------------------------------------------

from metarl.envs import GoalTask  # noqa: E402
from metarl.envs.maml_ant import (  # noqa: E402
    OBS_CONTACT,
    OBS_QPOS as ANT_OBS_QPOS,
    OBS_QVEL as ANT_OBS_QVEL,
    OBS_TORSO_COM as ANT_OBS_TORSO_COM,
    OBS_TORSO_XMAT,
)

ANT_FAMILIES = {"MAMLAntVel-v0": [VelocityTask(0.4), VelocityTask(2.6)],
                "MAMLAntDir-v0": [DirectionTask(-1), DirectionTask(1)],
                "MAMLAntGoal-v0": [GoalTask((2.0, -1.0)), GoalTask((-2.5, 0.5))]}
ANT_MODEL = ASSETS / "rllab_ant.xml"
#: cbfinn/maml_rl vendor/mujoco_models/ant.xml, <numeric name="init_qpos">
RLLAB_ANT_INIT_QPOS = [0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0,
                       1.0]


def _ant_fresh(model, data):
    """A copy of ``data`` with rllab's ``model.forward()`` (mj_forward) run for its state."""
    d = mujoco.MjData(model)
    d.qpos[:], d.qvel[:], d.ctrl[:] = data.qpos, data.qvel, data.ctrl
    d.qacc_warmstart[:], d.time = data.qacc_warmstart, data.time
    mujoco.mj_forward(model, d)
    return d


def _rllab_scaled_action(action):
    """rllab NormalizedEnv.step with the reference ant's ctrlrange [-150, 150]."""
    lb, ub = -150.0, 150.0
    return np.clip(lb + (action + 1.0) * 0.5 * (ub - lb), lb, ub)


def _reference_gear_model():
    """Our model with the reference's actuators: gear 1, ctrlrange [-150, 150]."""
    spec = mujoco.MjSpec.from_file(str(ANT_MODEL))
    for actuator in spec.actuators:
        actuator.gear[0] = 1.0
        actuator.ctrlrange = [-150.0, 150.0]
    return spec.compile()


def test_ant_model_loads_without_mujoco_warnings(tmp_path):
    # and stepping the families writes no MuJoCo warning log either
    assert_no_mujoco_warnings(tmp_path, [ANT_MODEL], ANT_FAMILIES)


def test_ant_model_has_rllab_physical_quantities():
    m = mujoco.MjModel.from_xml_path(str(ANT_MODEL))
    assert m.opt.timestep == 0.02 and m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_array_equal(m.opt.gravity, [0, 0, -9.81])
    assert (m.nq, m.nv, m.nu, m.nbody, m.nnumeric) == (15, 14, 8, 14, 0)
    # reference: gear 1, ctrlrange +-150 under normalize(); here gear 150, ctrlrange +-1
    np.testing.assert_array_equal(m.actuator_gear[:, 0], 150)
    np.testing.assert_array_equal(m.actuator_ctrlrange, np.tile([-1.0, 1.0], (8, 1)))
    names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in m.actuator_trnid[:, 0]]
    assert names == ["hip_4", "ankle_4", "hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3",
                     "ankle_3"]
    deg = np.pi / 180
    np.testing.assert_allclose(m.jnt_range[1:], deg * np.array(
        [[-30, 30], [30, 70], [-30, 30], [-70, -30], [-30, 30], [-70, -30], [-30, 30],
         [30, 70]]), rtol=1e-12)
    np.testing.assert_array_equal(m.dof_armature, [0] * 6 + [1] * 8)
    np.testing.assert_array_equal(m.dof_damping, [0] * 6 + [1] * 8)
    np.testing.assert_array_equal(m.geom_friction, np.tile([1, 0.5, 0.5], (m.ngeom, 1)))
    np.testing.assert_array_equal(m.geom_margin, 0.01)
    np.testing.assert_array_equal(m.geom_condim, 3)
    np.testing.assert_array_equal(m.geom_solref, np.tile([0.02, 1], (m.ngeom, 1)))
    np.testing.assert_array_equal(m.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (m.ngeom, 1)))
    np.testing.assert_array_equal(m.geom_conaffinity, [1] + [0] * (m.ngeom - 1))  # floor only
    # density 5: a sphere of radius 0.25 and twelve capsules of radius 0.08
    r, leg = 0.08, 0.2 * np.sqrt(2)
    capsule = lambda length: 5.0 * (np.pi * r**2 * length + 4 / 3 * np.pi * r**3)  # noqa: E731
    total = 5.0 * 4 / 3 * np.pi * 0.25**3 + 4 * (2 * capsule(leg) + capsule(2 * leg))
    assert m.body_mass.sum() == pytest.approx(total, rel=1e-12)
    key = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, "init_qpos")
    np.testing.assert_array_equal(m.key_qpos[key], RLLAB_ANT_INIT_QPOS)
    torso = _torso(m)
    assert m.body_pos[torso][2] == 0.75 and m.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE


def test_ant_gear_150_is_the_reference_gear_1_under_normalize():
    ours, ref = mujoco.MjModel.from_xml_path(str(ANT_MODEL)), _reference_gear_model()
    d_ours, d_ref = mujoco.MjData(ours), mujoco.MjData(ref)
    for d in (d_ours, d_ref):
        d.qpos[:] = RLLAB_ANT_INIT_QPOS
    rng = np.random.default_rng(3)
    for _ in range(30):
        action = rng.uniform(-1.3, 1.3, size=8)
        # rllab's lb + (a + 1) / 2 * (ub - lb) is 150 a up to rounding
        np.testing.assert_allclose(_rllab_scaled_action(action), 150 * np.clip(action, -1, 1),
                                   atol=1e-12, rtol=0)
        d_ours.ctrl[:] = np.clip(action, -1, 1)
        d_ref.ctrl[:] = 150 * np.clip(action, -1, 1)
        mujoco.mj_step(ours, d_ours)
        mujoco.mj_step(ref, d_ref)
        np.testing.assert_array_equal(d_ours.qfrc_actuator, d_ref.qfrc_actuator)
        np.testing.assert_array_equal(d_ours.qpos, d_ref.qpos)
        np.testing.assert_array_equal(d_ours.qvel, d_ref.qvel)


@pytest.mark.parametrize("family_id", ANT_FAMILIES)
def test_ant_observation_layout_is_rllabs_after_forward(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    env.set_task(ANT_FAMILIES[family_id][1])
    obs, _ = env.reset(seed=0)
    torso = _torso(env.model)
    stale_differs = False
    for step in range(8):
        m, d = env.model, env.data
        ref = _ant_fresh(m, d)  # rllab reads the observation after model.forward()
        assert obs.shape == (125,)
        np.testing.assert_array_equal(obs[ANT_OBS_QPOS], d.qpos)
        np.testing.assert_array_equal(obs[ANT_OBS_QVEL], d.qvel)
        np.testing.assert_allclose(obs[OBS_CONTACT], np.clip(ref.cfrc_ext, -1, 1).ravel(),
                                   atol=1e-9, rtol=0)
        np.testing.assert_allclose(obs[OBS_TORSO_XMAT], ref.xmat[torso], atol=1e-12, rtol=0)
        np.testing.assert_allclose(obs[ANT_OBS_TORSO_COM], ref.subtree_com[torso], atol=1e-12,
                                   rtol=0)
        assert np.all(obs[OBS_CONTACT][:6] == 0)  # the world body's row
        assert np.abs(obs[OBS_CONTACT]).sum() > 0  # standing on the floor: contacts
        np.testing.assert_array_equal(obs, np.concatenate([
            obs[ANT_OBS_QPOS], obs[ANT_OBS_QVEL], obs[OBS_CONTACT], obs[OBS_TORSO_XMAT],
            obs[ANT_OBS_TORSO_COM]]))
        # what mj_step alone leaves in cfrc_ext describes the state before the step
        plain = mujoco.MjData(m)
        plain.qpos[:], plain.qvel[:], plain.ctrl[:] = d.qpos, d.qvel, 0.1 * (-1) ** step
        plain.qacc_warmstart[:] = d.qacc_warmstart
        mujoco.mj_step(m, plain)
        obs, *_ = env.step(np.full(8, 0.1 * (-1) ** step))
        np.testing.assert_array_equal(plain.qpos, env.data.qpos)
        stale_differs |= np.abs(np.clip(plain.cfrc_ext, -1, 1).ravel()
                                - obs[OBS_CONTACT]).max() > 1e-3
    assert stale_differs


def test_ant_standing_still_has_a_nonzero_contact_block_in_both_envs():
    spec = get_task_family("MAMLAntVel-v0")
    env = spec.make_env().unwrapped
    env.set_task(VelocityTask(1.0))
    batch = spec.make_batch_env(3, horizon=20, threads=1)
    obs = [env.reset(seed=1)[0]]
    batch_obs = batch.reset([VelocityTask(1.0)] * 3, seeds=[1, 2, 3])
    for _ in range(20):
        obs.append(env.step(np.zeros(8))[0])
        batch_obs, _, terminated, _, _ = batch.step(np.zeros((3, 8)))
        assert np.all(np.abs(batch_obs[:, OBS_CONTACT]).sum(axis=1) > 1) and not terminated.any()
    assert all(np.abs(o[OBS_CONTACT]).sum() > 1 for o in obs)
    # the four feet touch the floor: their bodies' rows carry forces
    rows = np.abs(obs[-1][OBS_CONTACT].reshape(14, 6)).sum(axis=1)
    assert (rows > 0).sum() >= 4


@pytest.mark.parametrize("family_id", ANT_FAMILIES)
def test_ant_one_env_step_is_one_physics_step(family_id):
    assert_env_step_is_physics_steps(family_id, 8, 1, 0.02)
    # the batched env too: the extra mj_forward after the step leaves the dynamics alone
    env = get_task_family(family_id).make_env().unwrapped
    batch = get_task_family(family_id).make_batch_env(1, horizon=10, threads=1)
    batch.reset(ANT_FAMILIES[family_id][:1], seeds=[0])
    plain = mujoco.batch.Batch(env.model, 1, nthread=1)
    plain.bind("qpos")[...] = batch.batch.bind("qpos")
    plain.bind("qvel")[...] = batch.batch.bind("qvel")
    plain.forward()
    for _ in range(5):
        batch.step(np.full((1, 8), 0.3))
        plain.bind("ctrl")[...] = 0.3
        plain.step()
        np.testing.assert_array_equal(batch.batch.bind("qpos"), plain.bind("qpos"))
        np.testing.assert_array_equal(batch.batch.bind("time"), plain.bind("time"))
    assert batch.batch.bind("time")[0] == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize("family_id", ANT_FAMILIES)
def test_ant_rewards_by_hand(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    rng = np.random.default_rng(1)
    for task in ANT_FAMILIES[family_id]:
        env.set_task(task)
        env.reset(seed=5)
        contact_costs = []
        for _ in range(15):
            action = rng.uniform(-1.2, 1.2, size=8) * 0.5  # some beyond [-1, 1]: clipped
            _, reward, terminated, truncated, info = env.step(action)
            m, d = env.model, env.data
            ref = _ant_fresh(m, d)
            torso = _torso(m)
            velocity = _rllab_body_comvel(m, ref, torso)[0]  # get_body_comvel("torso")[0]
            scaled = _rllab_scaled_action(action)
            ctrl_cost = 0.5 * 1e-2 * np.sum(np.square(scaled / 150.0))
            contact_cost = 0.5 * 1e-3 * np.sum(np.square(np.clip(ref.cfrc_ext, -1, 1)))
            survive_reward = 0.05
            assert info["forward_velocity"] == pytest.approx(velocity, abs=1e-10)
            assert info["ctrl_cost"] == pytest.approx(ctrl_cost, abs=1e-12)
            assert info["contact_cost"] == pytest.approx(contact_cost, abs=1e-9)
            if isinstance(task, VelocityTask):
                forward_reward = -np.abs(velocity - task.velocity) + 1.0
            elif isinstance(task, DirectionTask):
                forward_reward = task.direction * velocity
            else:
                com = ref.subtree_com[torso]
                forward_reward = -np.sum(np.abs(com[:2] - np.array(task.goal))) + 4.0
            expected = forward_reward - ctrl_cost - contact_cost + survive_reward
            assert reward == pytest.approx(expected, abs=1e-9)
            assert terminated == (not 0.2 <= d.qpos[2] <= 1.0) and not truncated
            contact_costs.append(contact_cost)
            if terminated:
                break
        assert abs(velocity) > 1e-3 and max(contact_costs) > 0


def test_ant_terminates_outside_the_torso_height_range():
    env = get_task_family("MAMLAntGoal-v0").make_env().unwrapped
    env.reset(seed=0)
    env.data.qpos[2] = 1.5  # above 1.0
    assert env.step(np.zeros(8))[2]
    env.reset(seed=0)
    env.data.qpos[2] = 0.1  # below 0.2 (in the floor)
    assert env.step(np.zeros(8))[2]
    env.reset(seed=0)
    assert not env.step(np.zeros(8))[2]


def test_ant_reset_noise_is_rllab_gaussian_around_init_qpos():
    batch = get_task_family("MAMLAntVel-v0").make_batch_env(2000, horizon=5, threads=1)
    batch.reset([VelocityTask(1.0)] * 2000, seeds=range(2000))
    qpos, qvel = batch.batch.bind("qpos").copy(), batch.batch.bind("qvel").copy()
    noise = qpos - np.array(RLLAB_ANT_INIT_QPOS)
    assert np.std(noise) == pytest.approx(0.01, rel=0.05)
    assert np.std(qvel) == pytest.approx(0.1, rel=0.05)
    assert np.abs(noise.mean(axis=0)).max() < 2e-3 and abs(np.mean(qvel)) < 1e-2
    assert np.abs(noise).max() > 0.03  # Gaussian tails


def test_ant_task_distributions():
    rng = np.random.default_rng(0)
    make = lambda fid: get_task_family(fid).make_env().unwrapped  # noqa: E731
    v = np.array([t.velocity for t in make("MAMLAntVel-v0").sample_tasks(4000, rng)])
    assert v.min() >= 0 and v.max() <= 3 and v.mean() == pytest.approx(1.5, abs=0.05)
    d = np.array([t.direction for t in make("MAMLAntDir-v0").sample_tasks(4000, rng)])
    assert set(d.tolist()) == {-1, 1} and abs(d.mean()) < 0.05
    g = np.array([t.goal for t in make("MAMLAntGoal-v0").sample_tasks(4000, rng)])
    assert g.shape == (4000, 2) and g.min() >= -3 and g.max() <= 3
    assert np.abs(g.mean(axis=0)).max() < 0.1  # a square, not a disk: corners are reached
    assert np.abs(g).min(axis=1).max() > 2.8


def test_ant_gymnasium_make_and_bad_kwargs():
    env = gymnasium.make("metarl/MAMLAntGoal-v0", contact_cost_weight=0.0)
    assert env.spec.max_episode_steps == 200
    with pytest.raises(metarl.envs.TaskFamilyError, match="goal_low"):
        get_task_family("MAMLAntGoal-v0").make_env(goal_low=5.0)
    with pytest.raises(metarl.envs.TaskFamilyError, match="healthy_z"):
        get_task_family("MAMLAntVel-v0").make_batch_env(2, healthy_z_low=2.0)


# -- every MAML family: registration, check_env, batched = gymnasium ----------------------------

ALL = {**{f: (t, 20, 6, 0.01, 1.0) for f, t in FAMILIES.items()},
       **{f: (t, 125, 8, 0.02, 0.3) for f, t in ANT_FAMILIES.items()}}  # ant: gentler actions


@pytest.mark.parametrize("family_id", ALL)
def test_registered_with_maml_description_and_horizon_200(family_id):
    _, obs_dim, act_dim, dt, _ = ALL[family_id]
    spec = get_task_family(family_id)
    assert "MAML" in spec.description and spec.max_episode_steps == 200
    env = spec.make_env()
    assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1)
    np.testing.assert_array_equal(env.action_space.high, 1)
    assert env.unwrapped.dt == dt


@pytest.mark.parametrize("family_id", ALL)
def test_check_env(family_id):
    env = get_task_family(family_id).make_env()
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("family_id", ALL)
def test_batch_and_gym_envs_agree(family_id):
    tasks, _, act_dim, _, scale = ALL[family_id]
    horizon = 60
    steps, first_obs = run_batch_and_gym(family_id, tasks, act_dim, scale, horizon)
    if family_id in ANT_FAMILIES:
        assert np.abs(first_obs[:, OBS_CONTACT]).sum(axis=1).min() > 0  # standing on its legs
    assert steps > horizon  # both simulations ran for a while
    if family_id in FAMILIES:
        assert steps == 2 * horizon  # the half-cheetah never terminates
