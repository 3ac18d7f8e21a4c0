"""Meta-World families on MuJoCo 4: the compat fix, the families, splits and task pickling.

The Meta-World tests skip (with the reason) when metaworld is not installed, as in CI; the
weld-fix and install-error tests need only mujoco. Goal lists are drawn into a temporary
cache, so the file takes ~15 s on 2 busy cores (ML10's 750 goals are most of it).
"""

import pickle
import subprocess
import sys

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl.envs import metaworld as mw
from metarl.envs.metaworld_compat import (
    METAWORLD_WELD_ROW,
    compatible_class,
    reset_mocap_welds,
    weld_row,
)

needs_metaworld = pytest.mark.skipif(
    not mw.available(), reason=f"Meta-World is not installed (optional): {mw.INSTALL}")

# a mocap body welded to a free body, with no relpose: MuJoCo 4 flags it eq_data[11] = 1
WELD_XML = """<mujoco><worldbody>
  <body name="mocap" mocap="true" pos="0 0 1"/>
  <body name="hand" pos="0.1 0.2 0.3"><freejoint/><geom size="0.05"/></body>
</worldbody><equality><weld body1="mocap" body2="hand"/></equality></mujoco>"""


@pytest.fixture(autouse=True, scope="module")
def fresh_goal_cache(tmp_path_factory):
    """Draw goal lists into a temporary cache (never the user's) for this module."""
    patch = pytest.MonkeyPatch()
    patch.setenv("METARL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    mw.benchmark_tasks.cache_clear()
    yield
    patch.undo()
    mw.benchmark_tasks.cache_clear()


def test_weld_row_fills_mujocos_row_width_with_an_explicit_relpose():
    model = mujoco.MjModel.from_xml_string(WELD_XML)
    width = model.eq_data.shape[1]
    assert width == mujoco.mjNEQDATA  # 12 on MuJoCo 4, 11 on 3.x
    reset_mocap_welds(model)
    np.testing.assert_array_equal(model.eq_data[0], weld_row(width))
    np.testing.assert_array_equal(model.eq_data[0, :11], METAWORLD_WELD_ROW)
    if width > 11:
        assert model.eq_data[0, 11] == 0.0  # explicit pose: mj_setConst must keep it
        mujoco.mj_setConst(model, mujoco.MjData(model))
        np.testing.assert_array_equal(model.eq_data[0, :11], METAWORLD_WELD_ROW)


def test_compiler_flag_would_let_mj_setconst_replace_metaworlds_pose():
    """Why column 11 is 0, not the compiler's 1: with 1, mj_setConst recomputes the pose."""
    model = mujoco.MjModel.from_xml_string(WELD_XML)
    if model.eq_data.shape[1] < 12:
        pytest.skip("MuJoCo < 4 has no relpose flag")
    assert model.eq_data[0, 11] != 0.0
    model.eq_data[0, :11] = METAWORLD_WELD_ROW
    mujoco.mj_setConst(model, mujoco.MjData(model))
    assert not np.allclose(model.eq_data[0, 3:6], 0.0)  # the qpos0 offset came back


def test_missing_metaworld_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # makes `import metaworld` fail
    with pytest.raises(mw.MetaWorldNotInstalledError, match="--no-deps metaworld==3.1.1"):
        mw.import_metaworld()


def test_without_metaworld_the_family_lookup_names_the_install_command():
    code = ("import importlib.util, sys\n"
            "find = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n == 'metaworld' else find(n, *a)\n"
            "from metarl.envs import get_task_family, list_task_families\n"
            "assert not [f for f in list_task_families() if f.id.startswith('MetaWorld-')]\n"
            "try:\n    get_task_family('MetaWorld-ML10-v3')\n"
            "except KeyError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert "not available" in out and mw.INSTALL in out


def test_importing_metarl_envs_does_not_import_metaworld():
    code = "import sys, metarl.envs; assert 'metaworld' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_metaworld
def test_compat_class_fixes_only_its_own_subclass():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert set(mw.ML1_TASKS) == set(ALL_V3_ENVIRONMENTS)
    original = ALL_V3_ENVIRONMENTS["reach-v3"]
    untouched = original.reset_mocap_welds
    env = compatible_class(original)()
    assert isinstance(env, original) and type(env).__name__ == original.__name__
    welds = env.model.eq_type == mujoco.mjtEq.mjEQ_WELD
    assert welds.any()
    np.testing.assert_array_equal(env.model.eq_data[welds][0], weld_row(mujoco.mjNEQDATA))
    assert original.reset_mocap_welds is untouched  # Meta-World's class is not patched
    env.close()


@needs_metaworld
def test_ml1_reach_steps_and_reports_success():
    env = mw_family("MetaWorld-ML1-reach-v3").make_env()
    task = env.unwrapped.sample_tasks(1, np.random.default_rng(0))[0]
    env.unwrapped.set_task(task)
    obs, info = env.reset(seed=0)
    assert obs.shape == (39,) and info["task"] == task
    assert not obs[-3:].any()  # ML hides the goal
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert np.isfinite(obs).all() and np.isfinite(reward)
    assert isinstance(info["success"], bool) and not (terminated or truncated)
    assert env.spec.max_episode_steps == mw.HORIZON == 500
    env.close()


# Meta-World's own bounds: objects unbounded, the hidden goal fixed at 0
@pytest.mark.filterwarnings("ignore:.*Box observation space")
@pytest.mark.filterwarnings("ignore:.*Constant\\(s\\) may be too high")  # Meta-World's policy
@needs_metaworld
def test_scripted_reach_policy_succeeds_and_can_end_the_episode():
    from metaworld.policies import ENV_POLICY_MAP

    env = mw_family("MetaWorld-ML1-reach-v3").make_env(goal_observable=True,
                                                      terminate_on_success=True)
    policy = ENV_POLICY_MAP["reach-v3"]()
    env.unwrapped.set_task(env.unwrapped.sample_test_tasks(1, np.random.default_rng(0))[0])
    obs, _ = env.reset(seed=0)
    assert obs[-3:].any()  # the goal is observed
    for step in range(1, 201):
        obs, _, terminated, truncated, info = env.step(policy.get_action(obs))
        if terminated or truncated:
            break
    assert terminated and info["success"] is True and step < 200
    env.close()


@pytest.mark.filterwarnings("ignore:.*Box observation space")
@needs_metaworld
def test_check_env_passes_on_ml1_reach():
    env = mw_family("MetaWorld-ML1-reach-v3").make_env()
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@needs_metaworld
def test_ml10_and_ml45_splits_are_metaworlds_and_disjoint():
    for bench, n_train in (("ML10", 10), ("ML45", 45)):
        split = mw.benchmark_split(bench)
        assert len(split.train) == n_train and len(split.test) == 5
        assert not set(split.train) & set(split.test)
    ml10 = mw.MetaWorldML10Env()
    train, test = ml10._lists()
    assert len(train) == 500 and len(test) == 250
    assert {t.env_name for t in test} == set(ml10.split.test)
    drawn = ml10.sample_test_tasks(10, np.random.default_rng(1))
    assert sorted(t.env_name for t in drawn) == sorted(ml10.split.test * 2)  # balanced
    batch = ml10.sample_tasks(20, np.random.default_rng(1))
    assert sorted(t.env_name for t in batch) == sorted(ml10.split.train * 2)
    ref = ml10.reference_task_set()
    first, last = ref.split(10, 5)
    assert {t.env_name for t in first} == set(ml10.split.train)  # interleaved by class
    assert {t.env_name for t in last} == set(ml10.split.test)
    ml10.close()


@needs_metaworld
def test_ml1_test_goals_are_held_out_goals_of_the_same_class():
    env = mw.MetaWorldML1Env("reach-v3")
    train, test = env._lists()
    assert len(train) == len(test) == 50
    assert {t.env_name for t in train + test} == {"reach-v3"}
    assert not {t.rand_vec for t in train} & {t.rand_vec for t in test}
    env.close()


@pytest.mark.filterwarnings("ignore:.*Box observation space")
@needs_metaworld
def test_tasks_pickle_and_replay_identically():
    family = mw_family("MetaWorld-ML1-reach-v3")
    first, second = family.make_env(), family.make_env()
    task = first.unwrapped.sample_test_tasks(1, np.random.default_rng(3))[0]
    clone = pickle.loads(pickle.dumps(task))
    assert clone == task and isinstance(clone.rand_vec, tuple)
    observations = []
    for env, t in ((first, task), (second, clone)):
        env.unwrapped.set_task(t)
        obs, _ = env.reset(seed=0)
        observations.append(env.step(np.full(4, 0.5, dtype=np.float32))[0])
    np.testing.assert_array_equal(*observations)
    first.close()
    second.close()


@needs_metaworld
def test_gym_backend_samples_an_ml1_batch():
    from metarl.policies import GaussianMLPPolicy
    from metarl.samplers import BatchSampler

    sampler = BatchSampler(mw_family("MetaWorld-ML1-reach-v3"), horizon=4, seed=0,
                           backend="gym")
    policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, (8,))
    tasks = sampler.sample_tasks(2, np.random.default_rng(0))
    batch = sampler.sample(policy, policy.params(), tasks, episodes_per_task=2)
    assert tuple(batch.rewards.shape) == (2, 2, 4)
    assert float(batch.mask.sum()) == 16
    assert batch.success is not None and tuple(batch.success.shape) == (2, 2)  # logged
    sampler.close()


def mw_family(family_id):
    from metarl.envs import get_task_family

    return get_task_family(family_id)
