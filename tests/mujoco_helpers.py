"""Shared by the tests of the reference-code MuJoCo families (MAML's and PEARL's)."""

import subprocess
import sys

import mujoco
import numpy as np
import pytest

from metarl.envs import get_task_family


def torso_id(model):
    """Index of the body named ``torso``."""
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")


def assert_no_mujoco_warnings(tmp_path, models=(), family_ids=(), steps=50):
    """Loading ``models`` and stepping ``family_ids`` in a fresh process (cwd ``tmp_path``)
    prints no MuJoCo warning and writes no ``MUJOCO_LOG.TXT``."""
    code = ("import sys, numpy as np, mujoco, metarl.envs\n"
            "for path in sys.argv[2:]:\n"
            "    mujoco.MjModel.from_xml_path(path)\n"
            "for fid in sys.argv[1].split(',') if sys.argv[1] else ():\n"
            "    env = metarl.envs.get_task_family(fid).make_env().unwrapped\n"
            "    env.reset(seed=0)\n"
            f"    for _ in range({steps}):\n"
            "        env.step(env.action_space.sample())\n")
    out = subprocess.run([sys.executable, "-c", code, ",".join(family_ids), *map(str, models)],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "WARNING" not in out.stdout + out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def run_batch_and_gym(family_id, tasks, act_dim, scale, horizon=60, seeds=(21, 22)):
    """Step the batched env and one gymnasium env per task with the same seeds and random
    actions (``scale`` times U(-1.5, 1.5)), asserting they agree to 1e-6 at every step.

    Returns the number of gymnasium steps taken (episodes stop at termination) and the
    batched env's first observations.
    """
    spec = get_task_family(family_id)
    batch = spec.make_batch_env(len(tasks), horizon=horizon, threads=1)
    first_obs = batch.reset(tasks, seeds=list(seeds))
    envs = [spec.make_env().unwrapped for _ in tasks]
    obs = []
    for env, task, seed in zip(envs, tasks, seeds):
        env.set_task(task)
        obs.append(env.reset(seed=seed)[0])
    np.testing.assert_allclose(first_obs, np.stack(obs), atol=1e-6, rtol=0)
    rng = np.random.default_rng(0)
    done = np.zeros(len(tasks), dtype=bool)
    steps = 0
    for _ in range(horizon):
        actions = rng.uniform(-1.5, 1.5, size=(len(tasks), act_dim)) * scale
        batch_obs, batch_reward, batch_term, _, _ = batch.step(actions)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            o, r, terminated, _, info = env.step(actions[i])
            np.testing.assert_allclose(batch_obs[i], o, atol=1e-6, rtol=0)
            assert batch_reward[i] == pytest.approx(r, abs=1e-6)
            assert batch_term[i] == terminated and not info["diverged"]
            done[i] = terminated
            steps += 1
    return steps, first_obs


def assert_env_step_is_physics_steps(family_id, act_dim, nstep, timestep, action=0.3):
    """One env step runs ``nstep`` plain ``mj_step`` calls (same state, same control) and
    advances ``data.time`` by ``nstep * timestep``."""
    env = get_task_family(family_id).make_env().unwrapped
    env.reset(seed=0)
    reference = mujoco.MjData(env.model)
    for _ in range(3):
        reference.qpos[:], reference.qvel[:] = env.data.qpos, env.data.qvel
        reference.qacc_warmstart[:], reference.time = env.data.qacc_warmstart, env.data.time
        reference.ctrl[:] = action
        time_before = env.data.time
        env.step(np.full(act_dim, action))
        assert env.data.time - time_before == pytest.approx(nstep * timestep, abs=1e-12)
        mujoco.mj_step(env.model, reference, nstep=nstep)
        np.testing.assert_array_equal(env.data.qpos, reference.qpos)
        np.testing.assert_array_equal(env.data.qvel, reference.qvel)
