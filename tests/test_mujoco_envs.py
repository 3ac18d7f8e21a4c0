"""MuJoCo task families: physics against Gymnasium, rewards by hand, divergence, bad input."""

import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium
from gymnasium.utils.env_checker import check_env
import metarl.envs
import mujoco
import numpy as np
import pytest
import torch
from metarl.envs import (
    ASSETS,
    DirectionTask,
    GoalTask,
    TaskFamilyError,
    VelocityTask,
    get_task_family,
    register_mujoco_family,
)
from metarl.envs.locomotion import HalfCheetahVel

from metarl.policies import GaussianMLPPolicy
from metarl.samplers import BatchSampler

MUJOCO_FAMILIES = ["HalfCheetahVel-v0", "HalfCheetahDir-v0", "AntVel-v0", "AntDir-v0",
                   "AntGoal-v0"]


def _unregister(family_id):
    metarl.envs.registry._REGISTRY.pop(family_id, None)
    gymnasium.registry.pop(f"metarl/{family_id}", None)


def test_shipped_models_load_without_mujoco_warnings(tmp_path):
    code = ("import mujoco, sys; from pathlib import Path\n"
            "for name in ('half_cheetah.xml', 'ant.xml'):\n"
            "    mujoco.MjModel.from_xml_path(str(Path(sys.argv[1]) / name))\n")
    out = subprocess.run([sys.executable, "-c", code, str(ASSETS)], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert "WARNING" not in out.stdout + out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_half_cheetah_velocity_agrees_with_gymnasium_half_cheetah_v5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Gymnasium's XML makes MuJoCo 4 write MUJOCO_LOG.TXT here
    ours = gymnasium.make("metarl/HalfCheetahVel-v0").unwrapped
    ours.set_task(VelocityTask(1.0))
    ours.reset(seed=0)
    ref = gymnasium.make("HalfCheetah-v5").unwrapped
    ref.reset(seed=0)
    ref.set_state(ours.data.qpos.copy(), ours.data.qvel.copy())
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-1, 1, size=6)
        _, reward, _, _, info = ours.step(action)
        _, _, _, _, ref_info = ref.step(action)
        assert info["forward_velocity"] == pytest.approx(ref_info["x_velocity"], abs=1e-6)
        assert reward == pytest.approx(-abs(info["forward_velocity"] - 1.0)
                                       - 0.05 * np.sum(action ** 2), abs=1e-9)


@pytest.mark.parametrize("family_id", ["HalfCheetahVel-v0", "HalfCheetahDir-v0"])
def test_half_cheetah_can_observe_its_x_position(family_id):
    """``exclude_current_positions_from_observation=False`` (the MAML reference's information)."""
    family = get_task_family(family_id)
    kwargs = {"exclude_current_positions_from_observation": False}
    env = family.make_env(**kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (18,)
    task = env.unwrapped.sample_tasks(1, np.random.default_rng(0))[0]
    env.unwrapped.set_task(task)
    obs, _ = env.reset(seed=3)
    batch = family.make_batch_env(2, horizon=20, threads=1, **kwargs)
    batch_obs = batch.reset([task] * 2, seeds=[3, 4])
    np.testing.assert_allclose(batch_obs[0], obs, atol=1e-12)
    for _ in range(20):
        action = np.ones(6)
        obs, *_ = env.step(action)
        batch_obs, *_ = batch.step(np.stack([action, action]))
    data = env.unwrapped.data
    np.testing.assert_allclose(obs, np.concatenate([data.qpos, data.qvel]), atol=1e-12)
    assert abs(obs[0]) > 0.05  # the torso has moved along x, and the agent sees it
    np.testing.assert_allclose(batch_obs[0], obs, atol=1e-9)
    with pytest.raises(TaskFamilyError, match="exclude_current_positions_from_observation"):
        family.make_env(exclude_current_positions_from_observation="no")


def _step_single(family_id, task, action, seed=0):
    env = gymnasium.make(f"metarl/{family_id}").unwrapped
    env.set_task(task)
    env.reset(seed=seed)
    before = env.data.qpos.copy()
    obs, reward, term, trunc, info = env.step(action)
    return env, before, obs, reward, term, info


def test_half_cheetah_dir_reward_by_hand():
    action = np.full(6, 2.0)  # clipped to 1 before the control cost
    for direction in (-1, 1):
        env, before, obs, reward, _, info = _step_single("HalfCheetahDir-v0",
                                                          DirectionTask(direction), action)
        velocity = (env.data.qpos[0] - before[0]) / 0.05
        assert info["forward_velocity"] == pytest.approx(velocity)
        assert reward == pytest.approx(direction * velocity - 0.05 * 6.0)
        np.testing.assert_array_equal(obs, np.concatenate([env.data.qpos[1:], env.data.qvel]))


def test_ant_rewards_by_hand_and_contact_forces_are_computed():
    action = np.linspace(-1, 1, 8)
    for family_id, task in [("AntVel-v0", VelocityTask(1.5)), ("AntDir-v0", DirectionTask(-1)),
                            ("AntGoal-v0", GoalTask((1.0, -2.0)))]:
        env, _, obs, reward, term, info = _step_single(family_id, task, action)
        for _ in range(10):  # settle onto the floor so there are contacts
            obs, reward, term, _, info = env.step(action)
        d = env.data
        contact = 0.0005 * np.sum(np.clip(d.cfrc_ext[1:], -1, 1) ** 2)
        assert contact > 0, "cfrc_ext must be computed during the step (accelerometer sensor)"
        assert info["contact_cost"] == pytest.approx(contact)
        assert info["ctrl_cost"] == pytest.approx(0.005 * np.sum(action ** 2))
        common = 1.0 - info["ctrl_cost"] - info["contact_cost"]
        v = info["forward_velocity"]
        expected = {"AntVel-v0": -abs(v - 1.5) + common, "AntDir-v0": -v + common,
                    "AntGoal-v0": -(abs(d.qpos[0] - 1.0) + abs(d.qpos[1] + 2.0)) + common}
        assert reward == pytest.approx(expected[family_id])
        assert obs.shape == (27,) and term == (not 0.2 <= d.qpos[2] <= 1.0)


def test_ant_terminates_when_the_torso_leaves_the_healthy_range():
    env = gymnasium.make("metarl/AntVel-v0").unwrapped
    env.set_task(VelocityTask(1.0))
    env.reset(seed=0)
    env.data.qpos[2] = 2.0  # torso far above the healthy range (it falls ~1 cm in a step)
    mujoco.mj_forward(env.model, env.data)
    _, _, terminated, truncated, _ = env.step(np.zeros(8))
    assert terminated and not truncated


def test_task_distributions():
    rng = np.random.default_rng(0)
    vel = get_task_family("HalfCheetahVel-v0").make_env().unwrapped.sample_tasks(2000, rng)
    v = np.array([t.velocity for t in vel])
    assert v.min() >= 0 and v.max() <= 2 and v.mean() == pytest.approx(1.0, abs=0.05)
    goals = np.array([t.goal for t in
                      get_task_family("AntGoal-v0").make_env().unwrapped.sample_tasks(4000, rng)])
    radius = np.linalg.norm(goals, axis=1)
    assert radius.max() <= 3.0
    assert np.mean(radius < 1.5) == pytest.approx(0.25, abs=0.03)  # uniform in area
    dirs = [t.direction for t in
            get_task_family("AntDir-v0").make_env().unwrapped.sample_tasks(1000, rng)]
    assert set(dirs) == {-1, 1} and abs(np.mean(dirs)) < 0.1


def test_batch_env_detects_a_diverging_simulation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the instability warning to MUJOCO_LOG.TXT
    env = get_task_family("HalfCheetahVel-v0").make_batch_env(3, horizon=10, threads=1)
    env.reset([VelocityTask(1.0)] * 3, seeds=[0, 1, 2])
    env.batch.bind("qvel")[1, 0] = 1e12  # beyond MuJoCo's instability threshold
    obs, reward, terminated, truncated, info = env.step(np.zeros((3, 6)))
    assert info["diverged"].tolist() == [False, True, False]
    assert truncated.tolist() == [False, True, False] and not terminated.any()
    assert reward[1] == 0.0 and np.isfinite(obs).all() and np.isfinite(reward).all()

    single = gymnasium.make("metarl/HalfCheetahVel-v0").unwrapped
    single.set_task(VelocityTask(1.0))
    single.reset(seed=0)
    single.data.qvel[0] = np.nan
    obs, reward, terminated, truncated, info = single.step(np.zeros(6))
    assert info["diverged"] and truncated and reward == 0.0 and np.isfinite(obs).all()


class UnstableCheetah(HalfCheetahVel):
    """Half-cheetah whose tasks with v* > 1 get a huge negative joint damping."""

    def model_fields(self, tasks, model):
        unstable = np.array([t.velocity > 1.0 for t in tasks])
        damping = np.where(unstable[:, None], -1e7, 1.0) * model.dof_damping
        return {"dof_damping": damping}


def test_sampler_masks_diverged_episodes_and_counts_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the instability warnings to MUJOCO_LOG.TXT
    register_mujoco_family("UnstableCheetah-v0", UnstableCheetah, override=True)
    try:
        family = get_task_family("UnstableCheetah-v0")
        sampler = BatchSampler(family, horizon=20, seed=0, threads=1)
        policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim)
        tasks = [VelocityTask(0.5), VelocityTask(1.5)]
        batch = sampler.sample(policy, policy.params(), tasks, 3)
        assert batch.diverged[0].sum() == 0 and batch.diverged[1].all()
        assert batch.mask[0].all() and batch.lengths[1].max() < 20
        for tensor in (batch.observations, batch.rewards, batch.discounted_returns(0.99)):
            assert torch.isfinite(tensor).all()
        assert batch.num_diverged == 3
    finally:
        _unregister("UnstableCheetah-v0")


def test_values_beyond_float32_are_flagged_as_diverged_not_stored_as_inf():
    from metarl.samplers.episode_batch import EpisodeRecorder

    recorder = EpisodeRecorder(2, 1, 3, obs_dim=2, act_dim=1)
    recorder.observe(0, np.zeros((3, 2)))
    obs = np.array([[1.0, 2.0], [1e39, 0.0], [0.0, 0.0]])  # finite in float64 only
    reward = np.array([1.0, 1.0, -1e300])
    no = np.zeros(3, dtype=bool)
    next_obs, live = recorder.record(0, np.zeros((3, 1)), obs, reward, no, no, {})
    assert live.tolist() == [True, False, False]
    assert recorder.diverged.tolist() == [False, True, True]
    assert np.isfinite(next_obs).all() and np.isfinite(recorder.rewards).all()


def test_gym_backend_gives_the_same_samples_as_the_batch_backend():
    family = get_task_family("HalfCheetahDir-v0")
    batches = []
    for backend in ("batch", "gym"):
        sampler = BatchSampler(family, horizon=15, seed=7, backend=backend, threads=1)
        torch.manual_seed(0)
        policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim)
        tasks = [DirectionTask(-1), DirectionTask(1)]
        batches.append(sampler.sample(policy, policy.params(), tasks, 2))
        sampler.close()
    for name in ("observations", "actions", "rewards", "mask", "terminated", "diverged"):
        torch.testing.assert_close(getattr(batches[0], name), getattr(batches[1], name),
                                   atol=1e-6, rtol=0)


def test_bad_family_kwargs_name_the_family():
    family = get_task_family("AntVel-v0")
    with pytest.raises(TaskFamilyError, match=r"AntVel-v0.*velocity_hgh.*allowed.*velocity_high"):
        family.make_batch_env(2, velocity_hgh=3.0)
    with pytest.raises(TaskFamilyError, match=r"AntVel-v0.*velocity_low \(2.0\) must be <"):
        family.make_env(velocity_low=2.0, velocity_high=1.0)
    with pytest.raises(TaskFamilyError, match="healthy_z_low"):
        family.make_batch_env(2, healthy_z_low=1.0, healthy_z_high=0.5)


def test_broken_mjcf_file_names_family_and_file(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<mujoco><worldbody><body><geom type='sphere' size='0.1'/></body>"
                      "</worldbody><actuator><motor joint='missing'/></actuator></mujoco>")

    class Broken(HalfCheetahVel):
        xml_path = broken

    with pytest.raises(TaskFamilyError, match=r"Broken: cannot load MJCF file .*broken\.xml"):
        register_mujoco_family("Broken-v0", Broken)

    class Missing(HalfCheetahVel):
        xml_path = tmp_path / "nowhere.xml"

    with pytest.raises(TaskFamilyError, match=r"Missing: MJCF file .*nowhere\.xml does not exist"):
        register_mujoco_family("Missing-v0", Missing)
    assert "Broken-v0" not in metarl.envs.registry._REGISTRY


# -- the README's "adding a task family" example, run as written -----------------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    match = re.search(r"```python\n(# my_families\.py\n.*?)```", README.read_text(), re.S)
    assert match, "README must contain the my_families.py example"
    return match.group(1)


def test_readme_family_example_registers_trains_and_matches_its_batched_env(tmp_path,
                                                                           monkeypatch):
    (tmp_path / "my_families.py").write_text(_readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        family = get_task_family("my_families:HalfCheetahMass-v0")
        # per-simulation masses: heavier cheetahs move differently under the same actions
        env = family.make_batch_env(2, horizon=10, threads=1)
        tasks = env.sample_tasks(2, np.random.default_rng(0))
        env.reset(tasks, seeds=[0, 0])
        for _ in range(10):
            obs, *_ = env.step(np.ones((2, 6)))
        assert np.abs(obs[0] - obs[1]).max() > 1e-3
        single = family.make_env().unwrapped
        single.set_task(tasks[1])
        single_obs, _ = single.reset(seed=0)
        for _ in range(10):
            single_obs, *_ = single.step(np.ones(6))
        np.testing.assert_allclose(single_obs, obs[1], atol=1e-6)

        from metarl.cli import main

        config = tmp_path / "mass.yaml"
        config.write_text("env:\n  id: my_families:HalfCheetahMass-v0\n  horizon: 20\n"
                          "algo:\n  meta_batch_size: 2\n"
                          "sampler:\n  episodes_per_task: 2\n  threads: 1\n"
                          "train:\n  iterations: 2\n  checkpoint_every: 1\n")
        monkeypatch.chdir(tmp_path)
        assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
        rows = (tmp_path / "run" / "progress.csv").read_text().strip().splitlines()
        assert len(rows) == 3
        assert (tmp_path / "run" / "checkpoints" / "iter_000002.pt").exists()
    finally:
        _unregister("HalfCheetahMass-v0")
        sys.modules.pop("my_families", None)


def test_bench_sampler_cli_writes_exactly_the_documented_keys(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "metarl", "bench", "sampler", "--tasks", "2",
                           "--episodes", "2", "--horizon", "5", "--repeats", "1", "--threads",
                           "1", "--json", str(out)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    import json

    figures = json.loads(out.read_text())
    assert set(figures) == {"raw_steps_per_s", "metarl_steps_per_s", "gym_sync_steps_per_s",
                            "ratio_to_raw", "speedup_vs_gym_sync"}
    assert all(np.isfinite(v) and v > 0 for v in figures.values())
    assert figures["ratio_to_raw"] == pytest.approx(
        figures["metarl_steps_per_s"] / figures["raw_steps_per_s"])
    variants = subprocess.run([sys.executable, "-m", "metarl", "bench", "sampler", "--tasks", "2",
                               "--episodes", "2", "--horizon", "5", "--repeats", "1", "--threads",
                               "1", "--family", "HalfCheetahVel-v0", "--family",
                               "MAMLHalfCheetahVel-v0", "--json", str(out)], capture_output=True,
                              text=True, cwd=tmp_path,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert variants.returncode == 0, variants.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"HalfCheetahVel-v0", "MAMLHalfCheetahVel-v0"}
    assert "MAMLHalfCheetahVel-v0" in variants.stdout.splitlines()[-2]  # the table's last row
