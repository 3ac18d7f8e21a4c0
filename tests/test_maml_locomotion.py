"""The MAML reference code's half-cheetah families: model, observation, rewards, backends."""

import subprocess
import sys

import gymnasium
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarl.envs  # noqa: F401  (registers the families)
from metarl.envs import ASSETS, DirectionTask, VelocityTask, get_task_family
from metarl.envs.maml_locomotion import OBS_QPOS, OBS_QVEL, OBS_TORSO_COM

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


def _torso(model):
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")


def test_model_loads_without_mujoco_warnings(tmp_path):
    code = "import mujoco, sys; mujoco.MjModel.from_xml_path(sys.argv[1])"
    out = subprocess.run([sys.executable, "-c", code, str(MODEL)], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert "WARNING" not in out.stdout + out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


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
def test_registered_with_maml_description_and_horizon_200(family_id):
    spec = get_task_family(family_id)
    assert "MAML" in spec.description and spec.max_episode_steps == 200
    env = spec.make_env()
    assert env.observation_space.shape == (20,) and env.action_space.shape == (6,)
    np.testing.assert_array_equal(env.action_space.low, -1)
    np.testing.assert_array_equal(env.action_space.high, 1)
    assert env.unwrapped.dt == 0.01


@pytest.mark.parametrize("family_id", FAMILIES)
def test_check_env(family_id):
    env = get_task_family(family_id).make_env()
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("family_id", FAMILIES)
def test_batch_and_gym_envs_agree(family_id):
    tasks, seeds = FAMILIES[family_id], [11, 12]
    spec = get_task_family(family_id)
    batch = spec.make_batch_env(2, horizon=40, threads=1)
    batch_obs = batch.reset(tasks, seeds=seeds)
    envs = [spec.make_env().unwrapped for _ in tasks]
    obs = []
    for env, task, seed in zip(envs, tasks, seeds):
        env.set_task(task)
        obs.append(env.reset(seed=seed)[0])
    np.testing.assert_allclose(batch_obs, np.stack(obs), atol=1e-6, rtol=0)
    rng = np.random.default_rng(0)
    for t in range(40):
        actions = rng.uniform(-1.5, 1.5, size=(2, 6))
        batch_obs, batch_reward, _, truncated, _ = batch.step(actions)
        for i, env in enumerate(envs):
            o, r, terminated, trunc, info = env.step(actions[i])
            np.testing.assert_allclose(batch_obs[i], o, atol=1e-6, rtol=0)
            assert batch_reward[i] == pytest.approx(r, abs=1e-6)
            assert not terminated and not info["diverged"]
    assert truncated.all()  # horizon 40 reached, never terminated before


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


@pytest.mark.parametrize("family_id", FAMILIES)
def test_one_env_step_is_one_physics_step(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    env.reset(seed=0)
    reference = mujoco.MjData(env.model)  # the same state stepped once by MuJoCo
    for _ in range(5):
        reference.qpos[:], reference.qvel[:] = env.data.qpos, env.data.qvel
        reference.qacc_warmstart[:], reference.time = env.data.qacc_warmstart, env.data.time
        reference.ctrl[:] = 0.3
        time_before = env.data.time
        env.step(np.full(6, 0.3))
        assert env.data.time - time_before == pytest.approx(0.01, abs=1e-12)
        mujoco.mj_step(env.model, reference)
        np.testing.assert_array_equal(env.data.qpos, reference.qpos)
        np.testing.assert_array_equal(env.data.qvel, reference.qvel)


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
