"""ProMP: the LVC inner step against per-sample torch.func derivatives, the clipped
objective against hand-computed values, learning on navigation, resume and NaN guards."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, vmap

from metarl.algos.maml.policy_gradient import reinforce_loss
from metarl.algos.promp.learner import adapt_kl_coefficient, clipped_surrogate, lvc_inner_loss
from metarl.cli import main
from metarl.config import load_config
from metarl.envs import get_task_family
from metarl.experiment import build
from metarl.policies import GaussianMLPPolicy, stack_params
from metarl.samplers import BatchSampler

from cli_helpers import metarl, two_plus_two_equals_four

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "promp" / "navigation_2d.yaml")


def _batch(num_tasks=2, episodes=3, horizon=8, seed=0):
    torch.manual_seed(seed)
    sampler = BatchSampler(get_task_family("Navigation2D-v0"), horizon=horizon, seed=seed)
    policy = GaussianMLPPolicy(2, 2, (5,), "tanh", init_std=0.7).double()
    tasks = sampler.sample_tasks(num_tasks, np.random.default_rng(seed))
    batch = sampler.sample(policy, stack_params(policy.params(), num_tasks), tasks, episodes)
    advantages = torch.randn(batch.rewards.shape, dtype=torch.float64) * batch.mask
    return policy, batch, advantages


def _flat(policy):
    return torch.cat([p.detach().reshape(-1) for p in policy.parameters()])


def _unflat(policy, z, num_tasks):
    names, shapes = list(policy.params()), [p.shape for p in policy.parameters()]
    sizes = [p.numel() for p in policy.parameters()]
    return {n: t.view(s).unsqueeze(0).expand(num_tasks, *s)
            for n, t, s in zip(names, torch.split(z, sizes), shapes)}


def test_lvc_gradient_is_the_policy_gradient_and_its_hessian_adds_the_score_outer_product():
    policy, batch, adv = _batch()
    task = 0
    theta = _flat(policy)
    with torch.no_grad():
        old = policy(batch.observations, stack_params(policy.params(), batch.num_tasks)
                     ).log_prob(batch.actions)

    def lvc(z):
        return lvc_inner_loss(policy, _unflat(policy, z, batch.num_tasks), batch, adv, old)[task]

    def maml(z):
        return reinforce_loss(policy, _unflat(policy, z, batch.num_tasks), batch, adv)[task]

    # Independent reference: per-sample derivatives of log pi(a|s) with torch.func.
    obs = batch.observations[task].reshape(-1, 2)
    act = batch.actions[task].reshape(-1, 2)
    weights = (adv[task] * batch.mask[task]).reshape(-1) / batch.mask[task].sum()

    def log_prob(z, s, a):
        params = {k: v[0] for k, v in _unflat(policy, z, 1).items()}
        return policy(s.unsqueeze(0), params).log_prob(a.unsqueeze(0)).squeeze(0)

    scores = vmap(grad(log_prob), in_dims=(None, 0, 0))(theta, obs, act)
    curvatures = vmap(hessian(log_prob), in_dims=(None, 0, 0))(theta, obs, act)
    gradient = -(weights[:, None] * scores).sum(0)
    hess_logp = -(weights[:, None, None] * curvatures).sum(0)
    outer = -(weights[:, None, None] * scores[:, :, None] * scores[:, None, :]).sum(0)

    lvc_grad = torch.autograd.functional.jacobian(lvc, theta)
    torch.testing.assert_close(lvc_grad, gradient, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.autograd.functional.jacobian(maml, theta), gradient,
                               rtol=1e-10, atol=1e-12)
    lvc_hessian = torch.autograd.functional.hessian(lvc, theta)
    maml_hessian = torch.autograd.functional.hessian(maml, theta)
    torch.testing.assert_close(lvc_hessian, hess_logp + outer, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(maml_hessian, hess_logp, rtol=1e-9, atol=1e-11)
    # The score outer product is what MAML's -mean(log pi A) drops: not small.
    gap = (lvc_hessian - maml_hessian).norm() / maml_hessian.norm()
    assert gap > 0.3, gap


def test_clipped_surrogate_matches_hand_computed_values():
    ratio = torch.tensor([[[0.5, 1.0, 1.5, 0.5]]], dtype=torch.float64)
    adv = torch.tensor([[[1.0, -1.0, 2.0, -1.0]]], dtype=torch.float64)
    mask = torch.tensor([[[1.0, 1.0, 1.0, 1.0]]], dtype=torch.float64)
    loss = clipped_surrogate(ratio.log(), torch.zeros_like(ratio), adv, mask, clip_eps=0.2)
    # min(r A, clip(r, 0.8, 1.2) A): 0.5, -1.0, min(3.0, 2.4) = 2.4, min(-0.5, -0.8) = -0.8
    torch.testing.assert_close(loss, torch.tensor([-(0.5 - 1.0 + 2.4 - 0.8) / 4],
                                                  dtype=torch.float64))
    mask[..., 2] = 0.0  # padding does not count
    loss = clipped_surrogate(ratio.log(), torch.zeros_like(ratio), adv, mask, clip_eps=0.2)
    torch.testing.assert_close(loss, torch.tensor([-(0.5 - 1.0 - 0.8) / 3], dtype=torch.float64))


@pytest.mark.parametrize("kl, expected", [(0.005, 0.5), (0.0067, 1.0), (0.014, 1.0),
                                          (0.016, 2.0)])
def test_inner_kl_coefficient_halves_or_doubles_outside_the_band(kl, expected):
    assert adapt_kl_coefficient(1.0, kl, 0.01) == expected


def _train(iterations, overrides=()):
    cfg = load_config(CONFIG, ["algo.meta_batch_size=10", "sampler.episodes_per_task=10",
                               "env.horizon=50", "train.seed=0", *overrides])
    parts = build(cfg, torch.device("cpu"))
    return parts.algo, [parts.algo.train_iteration().scalars for _ in range(iterations)]


def test_promp_learns_to_adapt_on_navigation():
    algo, stats = _train(12)
    pre = np.array([s["meta_train/return/adapt_0"] for s in stats])
    post = np.array([s["meta_train/return/adapt_1"] for s in stats])
    assert post[-3:].mean() > post[0] + 10, post
    assert (post[-3:] - pre[-3:]).mean() > 1, (pre, post)
    for s in stats:
        assert s["diagnostics/skipped_updates"] == 0.0
        assert s["losses/surrogate_after"] < s["losses/surrogate_before"]
        assert 0.0 <= s["diagnostics/clip_fraction"] <= 1.0
    assert algo.optimizer.state  # Adam's moments persist across iterations


def test_adaptive_inner_kl_penalty_moves_the_coefficient():
    algo, stats = _train(2, ["algo.adaptive_inner_kl_penalty=true", "algo.target_inner_kl=1.0"])
    # the inner KL is far below 1.0 / 1.5: the coefficient halves after each update
    assert algo.inner_kl_coefficients == [5e-4 / 4]
    assert stats[-1]["diagnostics/inner_kl_coefficient"] == pytest.approx(5e-4 / 4)


def test_non_finite_advantages_skip_the_update_and_keep_the_parameters():
    cfg = load_config(CONFIG, ["algo.meta_batch_size=2", "sampler.episodes_per_task=2",
                               "env.horizon=10"])
    algo = build(cfg, torch.device("cpu")).algo
    before = [p.detach().clone() for p in algo.policy.parameters()]
    real, calls = algo.advantages, []

    def poisoned(batch):  # first call: the inner step; second: the outer objective
        calls.append(batch)
        adv = real(batch)
        return adv if len(calls) < 2 else torch.full_like(adv, float("nan"))

    algo.advantages = poisoned
    result = algo.train_iteration()
    assert result.skip_reason == "non-finite advantages"
    assert result.scalars["diagnostics/skipped_updates"] == 1.0
    for p, q in zip(algo.policy.parameters(), before):
        assert torch.equal(p, q)


SMALL = ["--set", "algo.meta_batch_size=2", "--set", "sampler.episodes_per_task=2",
         "--set", "env.horizon=10", "--set", "train.checkpoint_every=2",
         "--set", "logging.console=false", "--set", "logging.tensorboard=false"]


def test_resume_equals_an_uninterrupted_run_and_eval_runs(tmp_path):
    full, _, _, _ = two_plus_two_equals_four(CONFIG, tmp_path, SMALL)
    assert main(["eval", str(full), "--tasks", "3", "--steps", "1", "--device", "cpu"]) == 0
    assert (full / "eval" / "adaptation.csv").exists()


def test_bench_maml_times_promp(tmp_path):
    out = tmp_path / "bench.json"
    proc = metarl("bench", "maml", "--config", CONFIG, "--iterations", 1, "--warmup", 0,
                  "--device", "cpu", "--set", "algo.meta_batch_size=3",
                  "--set", "sampler.episodes_per_task=2", "--set", "env.horizon=20",
                  "--json", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    assert figures["update_s"] > 0 and figures["update_gflop"] > 0
    compare = metarl("bench", "maml", "--config", CONFIG, "--compare", cwd=tmp_path)
    assert compare.returncode == 2 and "--compare times MAML-TRPO" in compare.stderr
