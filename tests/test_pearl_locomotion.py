"""The PEARL reference code's locomotion families (katerakelly/oyster): model, observation,
rewards by hand, reference task sets, backends, and PEARL on a reference set."""

import math

import mujoco
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import metarl.envs  # noqa: F401  (registers the families)
from metarl.algos.pearl import PEARL, PEARLConfig
from metarl.config import ConfigError, config_from_dict, load_config
from metarl.envs import (ASSETS, DirectionTask, GoalTask, HeadingTask, TaskFamilyError,
                         VelocityTask, get_task_family)
from metarl.envs.pearl_ant import DIR_OBS_QPOS, DIR_OBS_QVEL, GOAL_OBS_CONTACT
from metarl.envs.pearl_locomotion import OBS_QPOS, OBS_QVEL, OBS_TORSO_XPOS
from metarl.samplers import BatchSampler

from cli_helpers import ROOT
from mujoco_helpers import (assert_env_step_is_physics_steps, assert_no_mujoco_warnings,
                            run_batch_and_gym, torso_id)
from test_pearl import TINY

# id: (tasks for the tests, obs dim, action dim, action scale for random actions)
CHEETAH = {"PEARLHalfCheetahVel-v0": ([VelocityTask(0.4), VelocityTask(2.5)], 20, 6, 1.0),
           "PEARLHalfCheetahDir-v0": ([DirectionTask(-1), DirectionTask(1)], 20, 6, 1.0)}
ANT = {"PEARLAntGoal-v0": ([GoalTask((1.5, -2.0)), GoalTask((-1.0, 0.5))], 113, 8, 0.3),
       "PEARLAntDir-v0": ([HeadingTask(0.0), HeadingTask(2.0)], 27, 8, 0.3)}
ALL = {**CHEETAH, **ANT}
DT = 0.05  # timestep 0.01 x frame skip 5, every family


def _env(family_id, task, seed=0):
    env = get_task_family(family_id).make_env().unwrapped
    env.set_task(task)
    env.reset(seed=seed)
    return env


def _substeps(env, action, n):
    """A plain MjData copy of ``env``'s state stepped ``n`` times with ``action``."""
    d = mujoco.MjData(env.model)
    d.qpos[:], d.qvel[:], d.time = env.data.qpos, env.data.qvel, env.data.time
    d.qacc_warmstart[:] = env.data.qacc_warmstart
    d.ctrl[:] = np.clip(action, -1, 1)
    if n:
        mujoco.mj_step(env.model, d, nstep=n)
    return d


def _contact_forces_at(model, data):
    """cfrc_ext of ``data``'s state, computed here: forward pass + mj_rnePostConstraint."""
    d = mujoco.MjData(model)
    d.qpos[:], d.qvel[:], d.ctrl[:] = data.qpos, data.qvel, data.ctrl
    d.qacc_warmstart[:] = data.qacc_warmstart
    mujoco.mj_forward(model, d)
    mujoco.mj_rnePostConstraint(model, d)
    return d.cfrc_ext.copy()


# -- every family: registration, check_env, models, physics steps, backends ------------------

@pytest.mark.parametrize("family_id", ALL)
def test_registered_with_pearl_description_and_spaces(family_id):
    _, obs_dim, act_dim, _ = ALL[family_id]
    spec = get_task_family(family_id)
    assert "PEARL" in spec.description and "oyster" in spec.description
    assert spec.max_episode_steps == 200  # configs/default.py: max_path_length 200
    env = spec.make_env()
    assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1)
    np.testing.assert_array_equal(env.action_space.high, 1)
    assert env.unwrapped.dt == pytest.approx(DT, abs=1e-15)


@pytest.mark.parametrize("family_id", ALL)
def test_check_env(family_id):
    check_env(get_task_family(family_id).make_env().unwrapped, skip_render_check=True)


def test_models_load_and_step_without_mujoco_warnings(tmp_path):
    assert_no_mujoco_warnings(tmp_path, [ASSETS / "half_cheetah.xml", ASSETS / "ant.xml"], ALL)


def test_models_have_the_references_physical_quantities():
    cheetah = mujoco.MjModel.from_xml_path(str(ASSETS / "half_cheetah.xml"))
    assert cheetah.opt.timestep == 0.01
    assert cheetah.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert cheetah.body_mass.sum() == pytest.approx(14.0, abs=1e-9)  # gym: settotalmass="14"
    np.testing.assert_array_equal(cheetah.actuator_gear[:, 0], [120, 90, 60, 120, 60, 30])
    ant = mujoco.MjModel.from_xml_path(str(ASSETS / "ant.xml"))
    assert ant.opt.timestep == 0.01 and ant.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_array_equal(ant.actuator_gear[:, 0], 150)
    np.testing.assert_array_equal(ant.actuator_ctrlrange, np.tile([-1.0, 1.0], (8, 1)))
    np.testing.assert_array_equal(ant.qpos0, [0, 0, 0.75, 1, 0, 0, 0] + [0] * 8)  # gym init_qpos
    assert ant.nnumeric == 0 and ant.nbody == 14
    # an acceleration sensor makes mj_step compute cfrc_ext (MuJoCo >= 2.0 skips it otherwise)
    assert mujoco.mjtSensor.mjSENS_ACCELEROMETER in ant.sensor_type


@pytest.mark.parametrize("family_id", ALL)
def test_one_env_step_is_five_physics_steps(family_id):
    assert_env_step_is_physics_steps(family_id, ALL[family_id][2], 5, 0.01)


@pytest.mark.parametrize("family_id", ALL)
def test_batch_and_gym_envs_agree(family_id):
    tasks, _, act_dim, scale = ALL[family_id]
    steps, _ = run_batch_and_gym(family_id, tasks, act_dim, scale, horizon=50)
    if family_id != "PEARLAntDir-v0":
        assert steps == 100  # never terminates
    else:
        assert steps > 50


# -- half-cheetah ----------------------------------------------------------------------------

@pytest.mark.parametrize("family_id", CHEETAH)
def test_cheetah_observation_appends_the_torso_frame_one_physics_step_back(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    env.set_task(CHEETAH[family_id][0][1])
    obs, _ = env.reset(seed=3)
    f32 = lambda x: np.asarray(x, np.float32).astype(np.float64)  # noqa: E731
    d = env.data  # after the reset's forward pass the frame is the current state's
    expected = np.r_[d.qpos[1:], d.qvel, d.qpos[0], 0, 0.7 + d.qpos[1]]
    np.testing.assert_array_equal(obs, f32(expected))
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, size=6)
        four = _substeps(env, action, 4)  # the state the last physics step starts from
        obs, *_ = env.step(action)
        assert obs.shape == (20,)
        np.testing.assert_array_equal(obs[OBS_QPOS], f32(env.data.qpos[1:]))
        np.testing.assert_array_equal(obs[OBS_QVEL], f32(env.data.qvel))
        np.testing.assert_array_equal(obs[OBS_TORSO_XPOS],
                                      f32([four.qpos[0], 0.0, 0.7 + four.qpos[1]]))
        assert abs(four.qpos[0] - env.data.qpos[0]) > 1e-6  # it is not the current x


@pytest.mark.parametrize("family_id", CHEETAH)
def test_cheetah_rewards_by_hand(family_id):
    env = get_task_family(family_id).make_env().unwrapped
    rng = np.random.default_rng(1)
    for task in CHEETAH[family_id][0]:
        env.set_task(task)
        env.reset(seed=5)
        for _ in range(15):
            action = rng.uniform(-2.0, 2.0, size=6)  # beyond [-1, 1]: clipped first
            x_before = env.data.qpos[0]
            _, reward, terminated, truncated, info = env.step(action)
            velocity = (env.data.qpos[0] - x_before) / DT
            ctrl_cost = 0.5 * 1e-1 * np.sum(np.clip(action, -1, 1) ** 2)
            assert info["forward_velocity"] == pytest.approx(velocity, abs=1e-12)
            assert info["ctrl_cost"] == pytest.approx(ctrl_cost, abs=1e-12)
            forward = (-abs(velocity - task.velocity) if isinstance(task, VelocityTask)
                       else task.direction * velocity)
            assert reward == pytest.approx(forward - ctrl_cost, abs=1e-12)
            assert not terminated and not truncated
        assert abs(velocity) > 1e-3


# -- ant -------------------------------------------------------------------------------------

def test_ant_goal_observation_and_rewards_by_hand():
    goal = np.array([1.5, -2.0])
    env = _env("PEARLAntGoal-v0", GoalTask(tuple(goal)), seed=2)
    torso = torso_id(env.model)
    rng = np.random.default_rng(2)
    contact_costs = []
    for step in range(25):
        action = rng.uniform(-1.3, 1.3, size=8)
        last_start = _substeps(env, action, 4)  # contact forces are this state's
        obs, reward, terminated, truncated, info = env.step(action)
        d = env.data
        contact = np.clip(_contact_forces_at(env.model, last_start), -1, 1)
        np.testing.assert_array_equal(obs[:15], d.qpos)  # x and y included
        np.testing.assert_array_equal(obs[15:29], d.qvel)
        np.testing.assert_allclose(obs[GOAL_OBS_CONTACT], contact.ravel(), atol=1e-9, rtol=0)
        assert obs.shape == (113,) and np.all(obs[GOAL_OBS_CONTACT][:6] == 0)  # world body
        xy = d.xpos[torso][:2]  # get_body_com("torso") after do_simulation
        assert np.abs(xy - d.qpos[:2]).max() < 0.02  # RK4's last stage: close to, not qpos
        ctrl_cost = 0.1 * np.sum(np.clip(action, -1, 1) ** 2)
        contact_cost = 0.5 * 1e-3 * np.sum(contact ** 2)
        distance = np.sum(np.abs(xy - goal))
        assert info["goal_distance"] == pytest.approx(distance, abs=1e-12)
        assert info["ctrl_cost"] == pytest.approx(ctrl_cost, abs=1e-12)
        assert info["contact_cost"] == pytest.approx(contact_cost, abs=1e-9)
        assert reward == pytest.approx(-distance - ctrl_cost - contact_cost + 0.0, abs=1e-9)
        assert not terminated and not truncated
        contact_costs.append(contact_cost)
    assert max(contact_costs) > 0


def test_ant_dir_observation_rewards_and_termination_by_hand():
    angle = 2.0
    env = _env("PEARLAntDir-v0", HeadingTask(angle), seed=4)
    torso = torso_id(env.model)
    rng = np.random.default_rng(3)
    contact_costs = []
    for _ in range(25):
        action = rng.uniform(-0.5, 0.5, size=8)
        p_before = env.data.xpos[torso].copy()  # get_body_com("torso") before do_simulation
        last_start = _substeps(env, action, 4)
        obs, reward, terminated, _, info = env.step(action)
        d = env.data
        np.testing.assert_array_equal(obs[DIR_OBS_QPOS], d.qpos[2:])
        np.testing.assert_array_equal(obs[DIR_OBS_QVEL], d.qvel)
        velocity = (d.xpos[torso][:2] - p_before[:2]) / DT
        forward = velocity @ np.array([np.cos(angle), np.sin(angle)])
        ctrl_cost = 0.5 * np.sum(np.clip(action, -1, 1) ** 2)
        contact_cost = 0.5 * 1e-3 * np.sum(np.clip(_contact_forces_at(env.model, last_start),
                                                   -1, 1) ** 2)
        assert info["forward_velocity"] == pytest.approx(forward, abs=1e-12)
        assert info["contact_cost"] == pytest.approx(contact_cost, abs=1e-9)
        assert reward == pytest.approx(forward - ctrl_cost - contact_cost + 1.0, abs=1e-9)
        assert terminated == (not 0.2 <= d.qpos[2] <= 1.0)
        contact_costs.append(contact_cost)
    assert max(contact_costs) > 0
    env.data.qpos[2] = 1.5  # above 1.0: ant-dir ends, ant-goal never does
    assert env.step(np.zeros(8))[2]
    goal = _env("PEARLAntGoal-v0", GoalTask((0.0, 0.0)))
    goal.data.qpos[2] = 1.5
    assert not goal.step(np.zeros(8))[2]


def test_ant_on_the_floor_has_a_nonzero_contact_block_in_both_envs():
    spec = get_task_family("PEARLAntGoal-v0")
    task = GoalTask((1.0, 1.0))
    env = _env("PEARLAntGoal-v0", task, seed=1)
    batch = spec.make_batch_env(2, horizon=30, threads=1)
    batch.reset([task] * 2, seeds=[1, 2])
    for _ in range(30):  # it starts with its legs in the air (qpos0: z 0.75) and lands
        obs = env.step(np.zeros(8))[0]
        batch_obs = batch.step(np.zeros((2, 8)))[0]
    assert np.abs(obs[GOAL_OBS_CONTACT]).sum() > 1
    assert np.all(np.abs(batch_obs[:, GOAL_OBS_CONTACT]).sum(axis=1) > 1)
    rows = np.abs(obs[GOAL_OBS_CONTACT].reshape(14, 6)).sum(axis=1)
    feet = [mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, f"{leg}_ankle_geom")
            for leg in ("left", "right", "third", "fourth")]
    feet = set(env.model.geom_bodyid[feet].tolist())
    touching = set(np.flatnonzero(rows).tolist())
    assert len(touching) >= 2 and touching <= feet  # it rests on its feet (world row: 0)


# -- tasks -----------------------------------------------------------------------------------

def _reference(family_id, **kwargs):
    return get_task_family(family_id).make_env(**kwargs).unwrapped.reference_task_set()


def test_reference_task_sets_are_oysters_draws():
    # cheetah-vel: np.random.seed(1337); np.random.uniform(0.0, 3.0, size=(130,));
    # tasks[:100] train, tasks[-30:] eval (configs/cheetah-vel.json, launch_experiment.py)
    velocities = np.random.RandomState(1337).uniform(0.0, 3.0, size=(130,))
    ref = _reference("PEARLHalfCheetahVel-v0")
    assert [t.velocity for t in ref.train] == velocities[:100].tolist()
    assert [t.velocity for t in ref.test] == velocities[-30:].tolist()
    assert ref.train[0].velocity == 0.7860740250467451  # pinned: numpy's legacy stream
    assert not set(ref.train) & set(ref.test)
    train, test = ref.split(20, 10)
    assert train == list(ref.train[:20]) and [t.velocity for t in test] == velocities[-10:].tolist()
    # cheetah-dir: fixed [-1, 1], 2 train = 2 eval
    ref = _reference("PEARLHalfCheetahDir-v0")
    assert ref.train == ref.test == (DirectionTask(-1), DirectionTask(1))
    # ant-goal: a = random(180) * 2 pi, then r = 3 * random(180) ** 0.5; 150 train, 30 eval
    rs = np.random.RandomState(1337)
    a = rs.random_sample(180) * 2 * np.pi
    r = 3 * rs.random_sample(180) ** 0.5
    goals = np.stack((r * np.cos(a), r * np.sin(a)), axis=-1)
    ref = _reference("PEARLAntGoal-v0")
    np.testing.assert_array_equal([t.goal for t in ref.train], goals[:150])
    np.testing.assert_array_equal([t.goal for t in ref.test], goals[-30:])
    # ant-dir: [0, pi] with forward_backward, else uniform(0, 2 pi, 2); 2 train = 2 eval
    ref = _reference("PEARLAntDir-v0", forward_backward=True)
    assert ref.train == ref.test == (HeadingTask(0.0), HeadingTask(np.pi))
    angles = np.random.RandomState(1337).uniform(0.0, 2.0 * np.pi, size=(2,))
    ref = _reference("PEARLAntDir-v0")
    assert [t.angle for t in ref.train] == [t.angle for t in ref.test] == angles.tolist()
    with pytest.raises(ValueError, match="2 training and 2 held-out"):
        ref.split(3, 2)


@pytest.mark.parametrize("family_id, kwargs, match", [
    ("PEARLHalfCheetahVel-v0", {"velocity_high": 2.0}, r"U\[0, 3\], not U\[0, 2\]"),
    ("PEARLAntGoal-v0", {"goal_radius": 2.0}, "radius 3, not 2"),
])
def test_no_reference_set_for_other_task_distributions(family_id, kwargs, match):
    with pytest.raises(TaskFamilyError, match=match):
        _reference(family_id, **kwargs)


def test_sampled_task_distributions():
    rng = np.random.default_rng(0)
    make = lambda fid, **kw: get_task_family(fid).make_env(**kw).unwrapped  # noqa: E731
    v = np.array([t.velocity for t in make("PEARLHalfCheetahVel-v0").sample_tasks(4000, rng)])
    assert v.min() >= 0 and v.max() <= 3 and v.mean() == pytest.approx(1.5, abs=0.05)
    g = np.array([t.goal for t in make("PEARLAntGoal-v0").sample_tasks(4000, rng)])
    radius2 = (g ** 2).sum(axis=1)
    assert radius2.max() <= 9 and radius2.mean() == pytest.approx(4.5, abs=0.15)  # area-uniform
    a = np.array([t.angle for t in make("PEARLAntDir-v0").sample_tasks(4000, rng)])
    assert a.min() >= 0 and a.max() <= 2 * np.pi and a.mean() == pytest.approx(np.pi, abs=0.1)
    a = [t.angle for t in make("PEARLAntDir-v0", forward_backward=True).sample_tasks(400, rng)]
    assert set(a) == {0.0, np.pi}


@pytest.mark.parametrize("backend, task_in_obs", [("batch", False), ("gym", False),
                                                  ("batch", True)])
def test_samplers_reach_the_reference_set(backend, task_in_obs):
    sampler = BatchSampler(get_task_family("PEARLHalfCheetahDir-v0"), backend=backend,
                           task_in_obs=task_in_obs)
    assert sampler.reference_task_set() == _reference("PEARLHalfCheetahDir-v0")
    nav = BatchSampler(get_task_family("Navigation2D-v0"), backend=backend)
    assert nav.reference_task_set() is None


# -- PEARL on the reference set --------------------------------------------------------------

@pytest.fixture
def one_torch_thread():
    """One torch thread, as `metarl train` runs PEARL (runtime.apply_threads "auto")."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pearl(family_id="PEARLHalfCheetahVel-v0", **overrides):
    sampler = BatchSampler(get_task_family(family_id), horizon=20, seed=0, threads=1)
    return PEARL(sampler, PEARLConfig(**{**TINY, "task_set": "reference", **overrides}), seed=0)


def test_pearl_trains_on_the_reference_task_set(one_torch_thread):
    pearl = _pearl()
    train, test = _reference("PEARLHalfCheetahVel-v0").split(4, 2)
    assert pearl.train_tasks == train and pearl.test_tasks == test
    for _ in range(2):
        stats = pearl.train_iteration()
        assert stats.env_steps > 0 and math.isfinite(stats.scalars["losses/qf"])
    assert all(math.isfinite(r) for r in pearl.meta_test(k_max=1, episodes=1).values())
    assert PEARLConfig().task_set == "sampled"  # the default keeps drawing from the family


def test_eval_uses_the_runs_reference_held_out_set(tmp_path):
    from cli_helpers import ROOT, metarl
    from test_pearl_cli import TINY as CLI_TINY

    run = tmp_path / "run"
    config = ROOT / "configs" / "pearl" / "half_cheetah_vel_cpu.yaml"
    trained = metarl("train", config, *CLI_TINY, "--set", "train.iterations=1",
                     "--set", "env.horizon=10", "--set", "logging.tensorboard=false",
                     "--device", "cpu", "--run-dir", run, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    evaluated = metarl("eval", run, "--steps", 1, "--device", "cpu", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "held-out tasks: the reference held-out set" in evaluated.stdout
    info = yaml.safe_load((run / "eval" / "eval_info.yaml").read_text())
    _, test = _reference("PEARLHalfCheetahVel-v0").split(6, 3)
    assert info["tasks"] == 3
    assert info["held_out"]["task_values"] == [[pytest.approx(t.velocity, rel=1e-6)]
                                               for t in test]
    too_many = metarl("eval", run, "--tasks", 4, "--device", "cpu", cwd=tmp_path)
    assert too_many.returncode == 2
    assert "--tasks: 4 is more than the 3 tasks of the reference held-out set" in too_many.stderr


@pytest.mark.parametrize("family_id, overrides, message", [
    ("Navigation2D-v0", {}, r"^algo\.task_set: 'reference' needs a family with a reference "
                            r"task set, and Navigation2D-v0 has none"),
    ("PEARLHalfCheetahDir-v0", {"num_train_tasks": 3},
     r"^algo\.num_train_tasks: 3 is more than the 2 training tasks of PEARLHalfCheetahDir-v0"),
    ("PEARLHalfCheetahVel-v0", {"num_test_tasks": 31},
     r"^algo\.num_test_tasks: 31 is more than the 30 held-out tasks"),
])
def test_reference_task_set_errors_name_the_key(family_id, overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        _pearl(family_id, **overrides)
    assert "\n" not in str(err.value)


def test_task_set_kwargs_error_names_the_key():
    sampler = BatchSampler(get_task_family("PEARLHalfCheetahVel-v0"), {"velocity_high": 2.0},
                           horizon=20)
    with pytest.raises(ConfigError, match=r"^algo\.task_set: 'reference' with "
                                          r"PEARLHalfCheetahVel-v0: the reference tasks"):
        PEARL(sampler, PEARLConfig(**{**TINY, "task_set": "reference"}))
    with pytest.raises(ConfigError, match=r"^algo\.task_set: .*'sampled', 'reference'"):
        config_from_dict({"algo": {"name": "pearl", "task_set": "fixed"}})


# -- shipped configs ---------------------------------------------------------------------------

SHIPPED = {"half_cheetah_vel.yaml": ("PEARLHalfCheetahVel-v0", 100, 30),
           "half_cheetah_dir.yaml": ("PEARLHalfCheetahDir-v0", 2, 2),
           "ant_goal.yaml": ("PEARLAntGoal-v0", 150, 30),
           "ant_dir.yaml": ("PEARLAntDir-v0", 2, 2),
           "half_cheetah_vel_cpu.yaml": ("PEARLHalfCheetahVel-v0", 20, 20),
           "ant_goal_cpu.yaml": ("PEARLAntGoal-v0", 20, 10)}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pearl_configs_use_the_reference_families_and_sets(name):
    family_id, num_train, num_test = SHIPPED[name]
    path = ROOT / "configs" / "pearl" / name
    cfg = load_config(path)
    assert cfg.env.id == family_id and cfg.algo.task_set == "reference"
    assert (cfg.algo.num_train_tasks, cfg.algo.num_test_tasks) == (num_train, num_test)
    ref = get_task_family(family_id).make_env(**cfg.env.kwargs).unwrapped.reference_task_set()
    ref.split(num_train, num_test)  # the counts fit the reference set
    line = next(ln for ln in path.read_text().splitlines() if ln.strip().startswith("id:"))
    assert "oyster" in line.split("#", 1)[1]  # env.id's comment names the variant


# oyster configs/<name>.json over configs/default.py, as our keys (copied here by hand)
_DEFAULT = dict(meta_batch_size=16, num_initial_steps=2000, num_steps_prior=400,
                num_steps_posterior=0, num_extra_rl_steps_posterior=400,
                num_train_steps_per_itr=2000, embedding_batch_size=64, kl_lambda=0.1,
                batch_size=256, gamma=0.99, tau=0.005, reward_scale=5.0, lr=3e-4,
                latent_size=5, hidden_sizes=[300] * 3, encoder_hidden_sizes=[200] * 3)
OYSTER_JSON = {
    "half_cheetah_vel.yaml": dict(_DEFAULT, num_extra_rl_steps_posterior=600,
                                  embedding_batch_size=100),
    "half_cheetah_dir.yaml": dict(_DEFAULT, meta_batch_size=4, num_steps_prior=1000,
                                  num_extra_rl_steps_posterior=1000, embedding_batch_size=256),
    "ant_goal.yaml": dict(_DEFAULT, meta_batch_size=10, num_extra_rl_steps_posterior=600,
                          num_train_steps_per_itr=4000, embedding_batch_size=256,
                          kl_lambda=1.0),
    "ant_dir.yaml": dict(_DEFAULT, meta_batch_size=4, num_extra_rl_steps_posterior=600,
                         num_train_steps_per_itr=4000, embedding_batch_size=256),
}


@pytest.mark.parametrize("name", OYSTER_JSON)
def test_reference_scale_configs_carry_the_oyster_json_settings(name):
    cfg = load_config(ROOT / "configs" / "pearl" / name)
    assert {k: getattr(cfg.algo, k) for k in OYSTER_JSON[name]} == OYSTER_JSON[name]
    assert cfg.env.horizon == 200 and cfg.train.iterations == 500
