"""The GPU path: MAML's batched kernels on the device against the per-task CPU reference,
MAML-TRPO, ProMP, RL² and PEARL trained, evaluated and resumed through the command line on
the device, and checkpoints moving between devices. Marked ``cuda``: skipped unless METARL_TEST_DEVICE is
set (tests/conftest.py); ``METARL_TEST_DEVICE=cpu`` runs the same logic on a CPU."""

import copy
import csv
import dataclasses
import json
import os

import numpy as np
import pytest
import torch
import yaml

from metarl.algos import MAMLTRPO
from metarl.algos.maml.kernels import fisher_vector_product
from metarl.algos.maml.policy_gradient import surrogate_loss
from metarl.envs import get_task_family
from metarl.optim import flat
from metarl.policies import GaussianMLPPolicy
from metarl.policies.gaussian_gru import GaussianGRUPolicy
from metarl.samplers import BatchSampler, EpisodeBatch, RecurrentSampler

from cli_helpers import NAV_CONFIG, ROOT, metarl
from test_maml_kernels import _per_task_loop_update, _random_vector, _setup
from test_pearl_cli import TINY as PEARL_TINY

pytestmark = pytest.mark.cuda
DEVICE = os.environ.get("METARL_TEST_DEVICE", "cuda")
MAML_TINY = ["--set", "train.iterations=2", "--set", "algo.meta_batch_size=3",
             "--set", "sampler.episodes_per_task=2", "--set", "sampler.eval_episodes_per_task=2",
             "--set", "env.horizon=15", "--set", "train.checkpoint_every=1"]


def _on(batch: EpisodeBatch) -> EpisodeBatch:
    """``batch`` on the test device, floating fields in float32."""
    return EpisodeBatch(**{f.name: None if (v := getattr(batch, f.name)) is None else
                           v.to(DEVICE, torch.float32) if v.is_floating_point() else v.to(DEVICE)
                           for f in dataclasses.fields(EpisodeBatch)})


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    actual = actual.detach().to("cpu", torch.float64)
    assert (actual - expected).norm() <= 1e-4 * expected.norm(), \
        float((actual - expected).norm() / expected.norm())


@pytest.mark.parametrize("fisher", ["exact", "gauss_newton", "first_order"])
def test_batched_kernels_on_the_device_match_the_per_task_cpu_reference(fisher):
    policy, algo, train, valid, adapted = _setup(num_tasks=4, fisher=fisher)
    cfg = algo.cfg
    ref_grad, ref_fvp, _ = _per_task_loop_update(copy.deepcopy(policy), train, valid,
                                                 algo.advantages(valid), adapted, cfg)
    dev_policy = copy.deepcopy(policy).to(DEVICE, torch.float32)
    dev = MAMLTRPO(dev_policy, algo.sampler, cfg, algo.episodes_per_task)
    dev_train = [(_on(b), a.to(DEVICE, torch.float32)) for b, a in train]
    dev_valid = _on(valid)
    dev_adapted = {k: v.to(DEVICE, torch.float32) for k, v in adapted.items()}
    valid_adv = dev.advantages(dev_valid)
    theta = list(dev_policy.parameters())
    old_dist = dev_policy(dev_valid.observations, dev_adapted)
    loss, _ = surrogate_loss(dev_policy, dev._adapted_from_meta(dev_train, 4, True), dev_valid,
                             valid_adv, old_dist)
    if fisher != "first_order":  # the reference is the second-order gradient
        _close(flat(torch.autograd.grad(loss.mean(), theta)), ref_grad)
    v = _random_vector(policy)
    product = fisher_vector_product(fisher, dev_policy, dev_train, dev_valid, cfg.inner_step_size,
                                    dev_adapted, cfg.cg_damping)
    if fisher == "first_order":  # against its own CPU float64 batched value
        ref = fisher_vector_product(fisher, policy, train, valid, cfg.inner_step_size, adapted,
                                    cfg.cg_damping)(v)
    else:
        ref = ref_fvp(v)
    _close(product(v.to(DEVICE, torch.float32)), ref)


def _batch_fields(batch: EpisodeBatch) -> dict:
    return {f.name: getattr(batch, f.name) for f in dataclasses.fields(EpisodeBatch)
            if getattr(batch, f.name) is not None}


def test_rollouts_on_a_cpu_copy_are_the_cpu_rollouts_and_come_back_on_the_device():
    """``sampler.inference: cpu`` evaluates the policy on the CPU: the episodes are a CPU
    run's bit for bit (shared and per-task parameters, and RL²'s recurrent trials), and
    land on the device; ``inference: device`` agrees up to the device's rounding."""
    family = get_task_family("Navigation2D-v0")
    cpu = BatchSampler(family, horizon=20, device="cpu", seed=3)
    copy_ = BatchSampler(family, horizon=20, device=DEVICE, seed=3, inference="cpu")
    here = BatchSampler(family, horizon=20, device=DEVICE, seed=3)
    assert copy_.inference_device == torch.device("cpu")
    policy = GaussianMLPPolicy(cpu.obs_dim, cpu.act_dim, (16, 16), "tanh")
    dev_policy = copy.deepcopy(policy).to(DEVICE)
    tasks = cpu.sample_tasks(3, np.random.default_rng(0))
    shared = policy.params()
    stacked = {k: v.detach().expand(3, *v.shape).clone() + 0.01 * torch.randn(3, *v.shape)
               for k, v in shared.items()}
    for params in (shared, stacked):
        dev_params = {k: v.detach().to(DEVICE) for k, v in params.items()}
        ref = _batch_fields(cpu.sample(policy, params, tasks, 4))
        got = _batch_fields(copy_.sample(dev_policy, dev_params, tasks, 4))
        near = _batch_fields(here.sample(dev_policy, dev_params, tasks, 4))
        assert got.keys() == ref.keys()
        for name, value in ref.items():
            assert got[name].device.type == torch.device(DEVICE).type, name
            assert torch.equal(got[name].cpu(), value), name
            if value.is_floating_point():
                torch.testing.assert_close(near[name].cpu(), value, rtol=1e-4, atol=1e-4)
    gru = GaussianGRUPolicy(cpu.obs_dim, cpu.act_dim, 8)
    ref_trials = RecurrentSampler(cpu).sample(gru, tasks, 2, 2)
    trials = RecurrentSampler(copy_).sample(copy.deepcopy(gru).to(DEVICE), tasks, 2, 2)
    assert trials.inputs.device.type == torch.device(DEVICE).type
    assert torch.equal(trials.inputs.cpu(), ref_trials.inputs)
    for got, ref in zip(trials.episodes, ref_trials.episodes):
        assert torch.equal(got.actions.cpu(), ref.actions) and got.actions.device == trials.inputs.device


def _rows(run):
    with open(run / "progress.csv", newline="") as handle:
        return list(csv.DictReader(handle))


RL2_TINY = ["--set", "train.iterations=2", "--set", "algo.meta_batch_size=2",
            "--set", "algo.episodes_per_trial=2", "--set", "sampler.eval_episodes_per_task=2",
            "--set", "env.horizon=10", "--set", "train.checkpoint_every=1"]
SETTINGS = {"maml_trpo": (NAV_CONFIG, MAML_TINY),
            "promp": (ROOT / "configs" / "promp" / "navigation_2d.yaml", MAML_TINY),
            "rl2": (ROOT / "configs" / "rl2" / "navigation_2d.yaml", RL2_TINY),
            "pearl": (ROOT / "configs" / "pearl" / "navigation_2d.yaml", PEARL_TINY)}


@pytest.mark.parametrize("algo", list(SETTINGS))
def test_train_eval_and_resume_on_the_device(algo, tmp_path):
    config, tiny = SETTINGS[algo]
    run = tmp_path / "run"
    trained = metarl("train", config, *tiny, "--device", DEVICE, "--run-dir", run, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "metadata.json").read_text())["device"].startswith(DEVICE)
    evaluated = metarl("eval", run, "--tasks", 2, "--steps", 1, "--device", DEVICE, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    resumed = metarl("train", "--resume", run, "--set", "train.iterations=3", "--device",
                     DEVICE, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [int(r["iteration"]) for r in _rows(run)] == [1, 2, 3]


@pytest.mark.parametrize("written_on, read_on", [(DEVICE, "cpu"), ("cpu", DEVICE)])
def test_checkpoints_move_between_devices(written_on, read_on, tmp_path):
    run = tmp_path / "run"
    trained = metarl("train", NAV_CONFIG, *MAML_TINY, "--device", written_on, "--run-dir", run,
                     cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    evaluated = metarl("eval", run, "--tasks", 2, "--steps", 1, "--device", read_on,
                       cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    resumed = metarl("train", "--resume", run, "--set", "train.iterations=3", "--device",
                     read_on, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["device"] == read_on
