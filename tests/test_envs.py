"""Task-family registry and environments: gymnasium conformance, rewards, batch equivalence."""

import gymnasium
import metarl.envs
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from metarl.envs import (
    TaskFamilyError,
    UnknownTaskFamilyError,
    get_task_family,
    list_task_families,
    register_task_family,
)
from metarl.envs.navigation import GoalTask, Navigation2DBatchEnv, Navigation2DEnv


# Navigation positions are unbounded in principle; gymnasium warns about infinite bounds.
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value is")
@pytest.mark.parametrize("spec", list_task_families(), ids=lambda s: s.id)
def test_check_env_on_every_registered_family(spec):
    env = gymnasium.make(spec.gym_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == spec.max_episode_steps
    tasks = env.unwrapped.sample_tasks(3, np.random.default_rng(0))
    env.unwrapped.set_task(tasks[1])
    assert env.unwrapped.get_task() == tasks[1]
    _, info = env.reset(seed=0)
    assert info["task"] == tasks[1]


@pytest.mark.parametrize("spec", [s for s in list_task_families() if s.has_batch_env],
                         ids=lambda s: s.id)
def test_batch_env_matches_single_env(spec):
    """Same task, seed and actions: same observations and rewards (batched vs gymnasium)."""
    horizon = 40
    batch_env = spec.make_batch_env(4, horizon=horizon, threads=2)
    tasks = batch_env.sample_tasks(2, np.random.default_rng(1))
    sim_tasks = [tasks[0], tasks[0], tasks[1], tasks[1]]
    seeds = [3, 4, 5, 6]
    rng = np.random.default_rng(2)
    shape = (horizon, 4, *batch_env.action_space.shape)
    actions = (rng.normal(size=shape) * batch_env.action_space.high * 0.6).astype(np.float32)
    batch_obs = [batch_env.reset(sim_tasks, seeds)]
    batch_rew, batch_done = [], []
    for t in range(horizon):
        obs, rew, term, trunc, _ = batch_env.step(actions[t])
        batch_obs.append(obs), batch_rew.append(rew), batch_done.append(term | trunc)
    for i, task in enumerate(sim_tasks):
        env = gymnasium.make(spec.gym_id, max_episode_steps=horizon)
        env.unwrapped.set_task(task)
        obs, _ = env.reset(seed=seeds[i])
        np.testing.assert_allclose(obs, batch_obs[0][i], atol=1e-6)
        for t in range(horizon):
            obs, rew, term, trunc, info = env.step(actions[t, i])
            np.testing.assert_allclose(obs, batch_obs[t + 1][i], atol=1e-6)
            assert rew == pytest.approx(batch_rew[t][i], abs=1e-6)
            assert (term or trunc) == bool(batch_done[t][i])
            assert info["task"] == task
            if term or trunc:
                break


def test_navigation_reward_and_termination_by_hand():
    env = Navigation2DEnv()
    env.set_task(GoalTask((0.3, -0.4)))
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0]
    obs, reward, term, trunc, info = env.step(np.array([1.0, -1.0]))  # clipped to +-0.1
    np.testing.assert_allclose(obs, [0.1, -0.1], atol=1e-7)
    assert reward == pytest.approx(-np.hypot(0.2, 0.3))
    assert not term and not trunc
    env.step(np.array([0.1, -0.1]))
    obs, reward, term, _, _ = env.step(np.array([0.1, -0.1]))  # at (0.3, -0.3)
    assert reward == pytest.approx(-0.1) and not term
    obs, reward, term, _, _ = env.step(np.array([0.0, -0.1]))  # at the goal
    assert reward == pytest.approx(0.0, abs=1e-9) and term

    squared = Navigation2DEnv(distance="squared")
    squared.set_task(GoalTask((0.3, -0.4)))
    squared.reset(seed=0)
    _, reward, _, _, _ = squared.step(np.array([0.1, -0.1]))
    assert reward == pytest.approx(-(0.2 ** 2 + 0.3 ** 2))


def test_standing_still_scores_about_minus_38():
    env = Navigation2DBatchEnv(num_envs=4000, horizon=100)
    tasks = env.sample_tasks(4000, np.random.default_rng(0))
    env.reset(tasks)
    total = np.zeros(4000)
    for _ in range(100):
        total += env.step(np.zeros((4000, 2)))[1]
    assert total.mean() == pytest.approx(-38.3, abs=1.0)


def test_navigation_random_start_matches_between_envs_and_stays_in_range():
    seeds = [3, 17, 99, 2024]
    batch = Navigation2DBatchEnv(num_envs=4, horizon=5, start_range=0.8)
    tasks = batch.sample_tasks(4, np.random.default_rng(1))
    starts = batch.reset(tasks, seeds)
    for seed, task, start in zip(seeds, tasks, starts):
        env = Navigation2DEnv(start_range=0.8)
        obs, _ = env.reset(seed=seed, options={"task": task})
        np.testing.assert_array_equal(obs, start)  # same seed, same start state
    assert np.abs(starts).max() <= 0.8 and len({tuple(s) for s in starts.tolist()}) == 4
    many = Navigation2DBatchEnv(num_envs=2000, horizon=5, start_range=1.0)
    spread = many.reset(many.sample_tasks(2000, np.random.default_rng(2)), list(range(2000)))
    assert np.abs(spread).max() <= 1.0 and abs(spread.mean()) < 0.05
    assert spread.std() == pytest.approx(1 / np.sqrt(3), abs=0.03)  # U[-1, 1]
    check_env(Navigation2DEnv(start_range=1.0), skip_render_check=True)
    with pytest.raises(ValueError, match="start_range must be >= 0, got -0.1"):
        Navigation2DEnv(start_range=-0.1)


def test_navigation_tasks_follow_the_distribution():
    tasks = Navigation2DEnv(goal_low=-0.2, goal_high=0.2).sample_tasks(500, np.random.default_rng(0))
    goals = np.array([t.goal for t in tasks])
    assert goals.min() >= -0.2 and goals.max() <= 0.2 and abs(goals.mean()) < 0.02


def test_bad_family_kwargs_are_rejected():
    with pytest.raises(ValueError, match="distance"):
        Navigation2DEnv(distance="manhattan")
    with pytest.raises(ValueError, match="goal_low"):
        Navigation2DBatchEnv(num_envs=2, goal_low=1.0, goal_high=0.0)
    with pytest.raises(TaskFamilyError, match="Navigation2D-v0.*nonsense"):
        get_task_family("Navigation2D-v0").make_batch_env(2, nonsense=1)


def test_registry_lookup_suggests_near_matches():
    assert get_task_family("metarl/Navigation2D-v0").id == "Navigation2D-v0"
    with pytest.raises(UnknownTaskFamilyError, match="did you mean 'Navigation2D-v0'"):
        get_task_family("Navigaton2D-v0")


def test_register_user_family_works_with_gymnasium_make():
    spec = register_task_family("TinyNav-v0", env_entry_point=Navigation2DEnv,
                                batch_entry_point=Navigation2DBatchEnv, max_episode_steps=7,
                                default_kwargs={"goal_low": 0.0, "goal_high": 0.1})
    try:
        env = gymnasium.make("metarl/TinyNav-v0")
        assert env.spec.max_episode_steps == 7
        assert env.unwrapped.params.goal_high == 0.1
        assert spec.make_batch_env(3).horizon == 7
        with pytest.raises(ValueError, match="already registered"):
            register_task_family("TinyNav-v0", env_entry_point=Navigation2DEnv, max_episode_steps=7)
        with pytest.raises(ValueError, match="versioned"):
            register_task_family("Unversioned", env_entry_point=Navigation2DEnv, max_episode_steps=7)
    finally:
        metarl.envs.registry._REGISTRY.pop("TinyNav-v0")
        gymnasium.registry.pop("metarl/TinyNav-v0")
