"""Numerical kernels against independent references (numpy, torch.func, finite differences)."""

import numpy as np
import pytest
import torch

from metarl.algos import MAMLTRPO
from metarl.algos.maml.policy_gradient import reinforce_loss, surrogate_loss
from metarl.algos.maml import MAMLTRPOConfig
from metarl.envs import get_task_family
from metarl.optim import (
    backtracking_line_search,
    conjugate_gradient,
    flat,
    hessian_vector_product,
    trust_region_step,
)
from metarl.policies import GaussianMLPPolicy, stack_params
from metarl.samplers import BatchSampler


@pytest.mark.parametrize("n", [3, 10, 25])
def test_conjugate_gradient_matches_numpy_solve(n):
    rng = np.random.default_rng(n)
    m = rng.normal(size=(n, n))
    a = m @ m.T + n * np.eye(n)  # symmetric positive definite
    b = rng.normal(size=n)
    a_t = torch.tensor(a)
    x, residual = conjugate_gradient(lambda v: a_t @ v, torch.tensor(b), iters=n, residual_tol=1e-20)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert residual < 1e-6


def test_conjugate_gradient_few_iterations_reduces_residual():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(50, 50))
    a = torch.tensor(m @ m.T + np.eye(50))
    b = torch.tensor(rng.normal(size=50))
    _, r2 = conjugate_gradient(lambda v: a @ v, b, iters=2)
    _, r10 = conjugate_gradient(lambda v: a @ v, b, iters=10)
    assert r10 < r2 < float(b.norm())


def test_hessian_vector_product_matches_torch_func_hessian():
    torch.manual_seed(0)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(7, 4, dtype=torch.float64)

    def f(w, c):
        return torch.log1p(torch.exp(torch.tanh(x @ w) @ c)).sum()

    grad = torch.autograd.grad(f(w, c), [w, c], create_graph=True)
    hvp = hessian_vector_product(grad, [w, c], damping=0.1)
    v = torch.randn(15, dtype=torch.float64)
    full = torch.func.hessian(lambda z: f(z[:12].view(4, 3), z[12:]))(flat([w, c]).detach())
    np.testing.assert_allclose(hvp(v).numpy(), (full @ v + 0.1 * v).numpy(), rtol=1e-10)


def _nav_setup(num_tasks=3, episodes=4, seed=0):
    torch.manual_seed(seed)
    family = get_task_family("Navigation2D-v0")
    sampler = BatchSampler(family, horizon=20, seed=seed)
    policy = GaussianMLPPolicy(2, 2, (8, 8), "tanh").double()
    algo = MAMLTRPO(policy, sampler, MAMLTRPOConfig(meta_batch_size=num_tasks), episodes, seed=seed)
    tasks = sampler.sample_tasks(num_tasks, np.random.default_rng(seed))
    return policy, sampler, algo, tasks


def test_stacked_inner_step_equals_per_task_loop():
    policy, sampler, algo, tasks = _nav_setup()
    batch = sampler.sample(policy, policy.params(), tasks, 4)
    adv = algo.advantages(batch)
    stacked = algo.inner_step(stack_params(policy.params(), len(tasks)), batch, adv, 0.1,
                              create_graph=False)
    for i in range(len(tasks)):
        params = {k: v.detach().requires_grad_() for k, v in policy.params().items()}
        loss = reinforce_loss(policy, stack_params(params, 1),
                              _slice(batch, i), adv[i:i + 1]).sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        for (name, p), g in zip(params.items(), grads):
            torch.testing.assert_close(stacked[name][i], p - 0.1 * g, rtol=1e-10, atol=1e-12)


def _slice(batch, i):
    from metarl.samplers import EpisodeBatch
    return EpisodeBatch(batch.observations[i:i + 1], batch.actions[i:i + 1],
                        batch.rewards[i:i + 1], batch.mask[i:i + 1], batch.terminated[i:i + 1])


def test_meta_kl_hvp_through_inner_step_matches_finite_differences():
    """The second-order Fisher-vector product used by the TRPO meta-step."""
    policy, sampler, algo, tasks = _nav_setup()
    adaptation = algo.adapt(tasks, 1, 4, sampler, step_sizes=[0.1])
    train = [(adaptation.batches[0], adaptation.advantages[0])]
    valid, old = adaptation.batches[1], adaptation.params
    valid_adv = algo.advantages(valid)
    old_dist = policy(valid.observations, old)
    theta = list(policy.parameters())

    def grad_kl(create_graph):
        adapted = algo._adapted_from_meta(train, valid.num_tasks, create_graph=True)
        _, kl = surrogate_loss(policy, adapted, valid, valid_adv, old_dist)
        return torch.autograd.grad(kl.mean(), theta, create_graph=create_graph)

    hvp = hessian_vector_product(grad_kl(True), theta)
    v = torch.randn(sum(p.numel() for p in theta), dtype=torch.float64)
    base = flat(theta).detach().clone()
    eps = 1e-5
    grads = []
    for sign in (1, -1):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(base + sign * eps * v, theta)
        grads.append(flat(grad_kl(False)).detach())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(base, theta)
    finite_diff = (grads[0] - grads[1]) / (2 * eps)
    np.testing.assert_allclose(hvp(v).numpy(), finite_diff.numpy(), rtol=1e-4, atol=1e-7)
    # The Fisher of the KL at its minimum is positive semi-definite.
    assert torch.dot(v, hvp(v)) > 0


def test_trust_region_step_hits_max_kl_in_quadratic_model():
    h = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
    step = trust_region_step(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64), lambda v: h @ v, 0.01)
    assert float(0.5 * step @ h @ step) == pytest.approx(0.01)


def test_line_search_accepts_only_improvement_within_kl():
    # Loss improves only for fractions <= 0.5; KL is fine below 0.7.
    trials = []

    def evaluate(fraction):
        trials.append(fraction)
        return (1.0 if fraction > 0.5 else 0.5), fraction ** 2

    result = backtracking_line_search(evaluate, loss_before=0.9, max_kl=0.49, ratio=0.8)
    assert result.accepted and result.step_fraction == pytest.approx(0.8 ** 4)
    assert all(f > 0.5 for f in trials[:-1])
    rejected = backtracking_line_search(lambda f: (2.0, 0.0), loss_before=1.0, max_kl=0.1, max_steps=5)
    assert not rejected.accepted and rejected.steps == 5 and rejected.step_fraction == 0.0
    nan = backtracking_line_search(lambda f: (float("nan"), 0.0), loss_before=1.0, max_kl=0.1)
    assert not nan.accepted
