"""Success rates (Meta-World's criterion: ``info["success"]`` at any real step of an
episode) through the samplers, MAML's training scalars and `metarl eval`'s outputs."""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.cli import main
from metarl.envs import get_task_family
from metarl.policies import GaussianMLPPolicy, stack_params
from metarl.samplers import BatchSampler

from cli_helpers import NAV_CONFIG

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
import success_nav  # noqa: E402  (registers SuccessNav-v0)


@pytest.mark.parametrize("backend", ["batch", "gym"])
def test_success_is_any_real_step_within_the_radius(backend):
    sampler = BatchSampler(get_task_family("SuccessNav-v0"), horizon=20, seed=0, backend=backend)
    policy = GaussianMLPPolicy(2, 2, (8,), init_std=0.5)
    tasks = sampler.sample_tasks(3, np.random.default_rng(0))
    batch = sampler.sample(policy, stack_params(policy.params(), 3), tasks, 4)
    assert batch.success is not None and batch.success.shape == (3, 4)
    goals = torch.tensor([t.goal for t in tasks], dtype=torch.float32).view(3, 1, 1, 2)
    # observation t+1 is the state after step t; the last state is in final_observations
    states = torch.cat([batch.observations[:, :, 1:], batch.final_observations[:, :, None]], 2)
    near = ((states - goals).norm(dim=-1) < success_nav.RADIUS) & (batch.mask > 0)
    assert torch.equal(batch.success, near.any(-1))
    plain = BatchSampler(get_task_family("Navigation2D-v0"), horizon=5, seed=0, backend=backend)
    assert plain.sample(policy, policy.params(), tasks, 1).success is None


def test_maml_logs_and_eval_writes_success_rates(tmp_path):
    run = tmp_path / "run"
    small = ["--set", "env.id=SuccessNav-v0", "--set", "algo.meta_batch_size=3",
             "--set", "sampler.episodes_per_task=3", "--set", "sampler.eval_episodes_per_task=3",
             "--set", "env.horizon=20", "--set", "train.iterations=1",
             "--set", "logging.tensorboard=false", "--set", "logging.console=false"]
    assert main(["train", str(NAV_CONFIG), *small, "--run-dir", str(run)]) == 0
    with open(run / "progress.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert 0.0 <= float(row["meta_train/success/adapt_0"]) <= 1.0
    assert 0.0 <= float(row["meta_train/success/adapt_1"]) <= 1.0
    assert main(["eval", str(run), "--tasks", "3", "--steps", "1", "--device", "cpu"]) == 0
    with open(run / "eval" / "adaptation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-1] == "success"
    assert all(0.0 <= float(r["success"]) <= 1.0 for r in rows)


def test_held_out_tasks_come_from_the_familys_test_split(tmp_path):
    """A family with a test split (Meta-World's held-out classes) is evaluated on it; one
    without draws held-out tasks as it draws training tasks."""
    sampler = BatchSampler(get_task_family("SuccessNav-v0"), horizon=5, seed=0)
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    assert sampler.sample_test_tasks(4, rng()) == sampler.sample_tasks(4, rng())
    for backend in ("batch", "gym"):
        split = BatchSampler(get_task_family("SplitNav-v0"), horizon=5, seed=0, backend=backend)
        assert all(t.goal[0] > 0.4 for t in split.sample_test_tasks(5, rng()))
        assert all(t.goal[0] <= 0.4 for t in split.sample_tasks(5, rng()))


def test_recurrent_trials_record_success_per_episode():
    """RL²'s sampler records success in every episode of a trial, as the plain sampler does."""
    from metarl.policies import GaussianGRUPolicy
    from metarl.samplers import RecurrentSampler

    sampler = BatchSampler(get_task_family("SuccessNav-v0"), horizon=15, seed=0)
    tasks = sampler.sample_tasks(3, np.random.default_rng(0))
    trials = RecurrentSampler(sampler).sample(GaussianGRUPolicy(2, 2, 8, init_std=0.5), tasks,
                                              2, 3)
    goals = torch.tensor([t.goal for t in tasks], dtype=torch.float32).view(3, 1, 1, 2)
    for batch in trials.episodes:
        assert batch.success is not None and batch.success.shape == (3, 2)
        states = torch.cat([batch.observations[:, :, 1:], batch.final_observations[:, :, None]],
                           2)
        near = ((states - goals).norm(dim=-1) < success_nav.RADIUS) & (batch.mask > 0)
        assert torch.equal(batch.success, near.any(-1))
    assert batch.to("cpu").success is not None  # a device copy keeps it


SMALL_RL2 = ["--set", "algo.meta_batch_size=3", "--set", "algo.episodes_per_trial=2",
             "--set", "sampler.eval_episodes_per_task=2"]
SMALL_PEARL = ["--set", "algo.num_train_tasks=4", "--set", "algo.num_test_tasks=2",
               "--set", "algo.num_tasks_sample=2", "--set", "algo.num_initial_steps=20",
               "--set", "algo.num_steps_prior=20", "--set", "algo.num_extra_rl_steps_posterior=20",
               "--set", "algo.meta_batch_size=2", "--set", "algo.batch_size=8",
               "--set", "algo.embedding_batch_size=8", "--set", "algo.num_train_steps_per_itr=2",
               "--set", "algo.hidden_sizes=[8]", "--set", "algo.encoder_hidden_sizes=[8]",
               "--set", "sampler.eval_episodes_per_task=2"]


@pytest.mark.parametrize("algo, small, columns, rollouts", [
    ("rl2", SMALL_RL2, ["meta_train/success/adapt_0", "meta_train/success/adapt_1"], "trials"),
    ("pearl", SMALL_PEARL, ["meta_train/success/adapt_0", "meta_train/success/posterior",
                            "meta_test/success/adapt_0", "meta_test/success/adapt_1"],
     "simulations"),
])
def test_rl2_and_pearl_log_and_eval_success_rates(tmp_path, capsys, algo, small, columns,
                                                  rollouts):
    run = tmp_path / algo
    config = NAV_CONFIG.parents[1] / algo / "navigation_2d.yaml"
    common = ["--set", "env.id=SuccessNav-v0", "--set", "env.horizon=15",
              "--set", "train.iterations=1", "--set", "logging.tensorboard=false",
              "--set", "logging.console=false"]
    assert main(["train", str(config), *common, *small, "--run-dir", str(run)]) == 0
    with open(run / "progress.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    for column in columns:
        assert 0.0 <= float(row[column]) <= 1.0, column
    capsys.readouterr()
    assert main(["eval", str(run), "--tasks", "2", "--steps", "1", "--device", "cpu"]) == 0
    printed = "".join(capsys.readouterr())
    assert f"2 held-out tasks x 2 {rollouts}" in printed  # what a unit of the 2 counts
    with open(run / "eval" / "adaptation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-1] == "success"
    assert all(0.0 <= float(r["success"]) <= 1.0 for r in rows)
