"""The hand-derived MLP curvature products against autograd on the same network, and
the compiled Fisher-vector products against the eager ones."""

import math
import shutil
import warnings

import numpy as np
import pytest
import torch

from metarl.algos import MAMLTRPO
from metarl.algos.maml import MAMLTRPOConfig, kernels, mlp_curvature
from metarl.algos.maml.policy_gradient import reinforce_loss
from metarl.envs import get_task_family
from metarl.policies import GaussianMLPPolicy, stack_params
from metarl.samplers import BatchSampler, EpisodeBatch

CASES = [("relu", False), ("relu", True), ("tanh", False), ("tanh", True)]


def _problem(activation, clamped, seed=0):
    """A 3-layer policy on a random padded batch; with ``clamped``, one log-std below
    ``min_std`` so its gradient is cut by the clamp."""
    torch.manual_seed(seed)
    tasks, episodes, horizon = 3, 4, 5
    policy = GaussianMLPPolicy(3, 2, (7, 6), activation, init_std=0.5,
                               min_std=0.45 if clamped else 1e-6).double()
    with torch.no_grad():
        policy.log_std[1] = math.log(0.3)
    shape = (tasks, episodes, horizon)
    zeros = torch.zeros(shape, dtype=torch.float64)
    batch = EpisodeBatch(torch.randn(*shape, 3, dtype=torch.float64),
                         torch.randn(*shape, 2, dtype=torch.float64), zeros,
                         (torch.rand(shape) < 0.8).double(), zeros.bool(), zeros.bool())
    advantages = torch.randn(shape, dtype=torch.float64)
    params = {k: (v + 0.1 * torch.randn_like(v)).detach().requires_grad_()
              for k, v in stack_params(policy.params(), tasks).items()}
    return policy, batch, advantages, params


@pytest.mark.parametrize("activation,clamped", CASES)
def test_inner_loss_gradient_and_hvp_equal_autograd(activation, clamped):
    policy, batch, advantages, params = _problem(activation, clamped)
    leaf = list(params.values())
    grads = torch.autograd.grad(reinforce_loss(policy, params, batch, advantages).sum(), leaf,
                                create_graph=True)
    v = [torch.randn_like(p) for p in leaf]
    hvp = torch.autograd.grad(grads, leaf, v)
    curvature = mlp_curvature.InnerLossCurvature(policy, [p.detach() for p in leaf], batch,
                                                 advantages)
    for ours, reference in zip(curvature.gradient(), grads):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    for ours, reference in zip(curvature.hvp(v), hvp):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    if clamped:  # the clamped log-std has neither gradient nor curvature
        assert curvature.gradient()[-1][:, 1].abs().max() == 0


@pytest.mark.parametrize("activation,clamped", CASES)
def test_jvp_and_vjp_equal_autograd(activation, clamped):
    policy, batch, _, params = _problem(activation, clamped)
    leaf = tuple(p.detach() for p in params.values())
    obs = batch.observations
    tasks = obs.shape[0]

    def mean_log_std(*ps):
        mean, std = policy.mean_std(obs, dict(zip(params, ps)))
        return mean.reshape(tasks, -1, 2), torch.log(std.reshape(tasks, -1, 2)[:, 0])

    net = mlp_curvature.Linearization(policy, list(leaf), obs)
    v = tuple(torch.randn_like(p) for p in leaf)
    (mean, _), (d_mean, d_log_std) = torch.func.jvp(mean_log_std, leaf, v)
    ours_mean, ours_log_std, _ = net.jvp(list(v))
    torch.testing.assert_close(net.mean, mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_mean, d_mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours_log_std, d_log_std, rtol=1e-10, atol=1e-12)
    cotangents = (torch.randn_like(mean), torch.randn(tasks, 2, dtype=torch.float64))
    _, pullback = torch.func.vjp(mean_log_std, *leaf)
    for ours, reference in zip(net.vjp(*cotangents), pullback(cotangents)):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_only_the_derived_policy_is_supported():
    class Shifted(GaussianMLPPolicy):
        def mean_std(self, obs, params=None):
            mean, std = super().mean_std(obs, params)
            return mean + 1.0, std

    assert mlp_curvature.supports(GaussianMLPPolicy(2, 2))
    assert not mlp_curvature.supports(Shifted(2, 2))


def _meta_batch(inner_steps=1):
    torch.manual_seed(0)
    sampler = BatchSampler(get_task_family("Navigation2D-v0"), horizon=15, seed=0)
    policy = GaussianMLPPolicy(2, 2, (16, 16), "relu", init_std=0.5)
    cfg = MAMLTRPOConfig(meta_batch_size=4, inner_steps=inner_steps)
    algo = MAMLTRPO(policy, sampler, cfg, 5, seed=0)
    tasks = sampler.sample_tasks(4, np.random.default_rng(0))
    adaptation = algo.adapt(tasks, inner_steps, 5, sampler, step_sizes=[0.1])
    train = list(zip(adaptation.batches[:-1], adaptation.advantages))
    return policy, train, adaptation.batches[-1], adaptation.params


@pytest.mark.parametrize("method", ["gauss_newton", "first_order"])
def test_derived_products_equal_the_autograd_products_in_float32(method, monkeypatch):
    policy, train, valid, adapted = _meta_batch(inner_steps=2)
    v = torch.randn(sum(p.numel() for p in policy.parameters()))
    ours = kernels.fisher_vector_product(method, policy, train, valid, 0.1, adapted, 1e-3)(v)
    monkeypatch.setattr(mlp_curvature, "supports", lambda policy: False)
    reference = kernels.fisher_vector_product(method, policy, train, valid, 0.1, adapted,
                                              1e-3)(v)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_products_equal_eager_ones():
    policy, train, valid, adapted = _meta_batch()
    eager = kernels.fisher_vector_product("gauss_newton", policy, train, valid, 0.1, adapted)
    with warnings.catch_warnings():
        # a fallback to eager would warn (torch's own deprecation notices are not ours)
        warnings.simplefilter("error", RuntimeWarning)
        fast = kernels.fisher_vector_product("gauss_newton", policy, train, valid, 0.1,
                                             adapted, compile=True)
        for seed in range(2):
            v = torch.randn(sum(p.numel() for p in policy.parameters()),
                            generator=torch.Generator().manual_seed(seed))
            torch.testing.assert_close(fast(v), eager(v), rtol=1e-5, atol=1e-7)


def test_a_failing_compiler_warns_once_and_runs_eagerly(monkeypatch):
    def broken(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler here\nmore detail")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(mlp_curvature, "_compile_failed", None)
    policy, train, valid, adapted = _meta_batch()
    eager = kernels.fisher_vector_product("gauss_newton", policy, train, valid, 0.1, adapted)
    v = torch.randn(sum(p.numel() for p in policy.parameters()))
    with pytest.warns(RuntimeWarning, match=r"algo.compile: .*RuntimeError: no compiler here"):
        product = kernels.fisher_vector_product("gauss_newton", policy, train, valid, 0.1,
                                                adapted, compile=True)
        torch.testing.assert_close(product(v), eager(v))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # once per process
        again = kernels.fisher_vector_product("gauss_newton", policy, train, valid, 0.1,
                                              adapted, compile=True)
        torch.testing.assert_close(again(v), eager(v))
