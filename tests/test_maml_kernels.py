"""MAML's batched kernels against independent references: a per-task Python loop,
``torch.func.hessian`` and explicitly sliced batches."""

import copy

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

from metarl.algos import MAMLTRPO
from metarl.algos.maml.kernels import fisher_vector_product, subsample
from metarl.algos.maml.policy_gradient import reinforce_loss, surrogate_loss
from metarl.algos.maml import MAMLTRPOConfig
from metarl.envs import get_task_family
from metarl.optim import backtracking_line_search, conjugate_gradient, flat, trust_region_step
from metarl.policies import GaussianMLPPolicy, stack_params
from metarl.samplers import BatchSampler, EpisodeBatch


def _setup(num_tasks=3, episodes=5, seed=0, activation="tanh", **algo_kwargs):
    torch.manual_seed(seed)
    sampler = BatchSampler(get_task_family("Navigation2D-v0"), horizon=15, seed=seed)
    policy = GaussianMLPPolicy(2, 2, (8, 8), activation, init_std=0.5).double()
    cfg = MAMLTRPOConfig(meta_batch_size=num_tasks, **algo_kwargs)
    algo = MAMLTRPO(policy, sampler, cfg, episodes, seed=seed)
    tasks = sampler.sample_tasks(num_tasks, np.random.default_rng(seed))
    adaptation = algo.adapt(tasks, cfg.inner_steps, episodes, sampler,
                            step_sizes=[cfg.inner_step_size])
    train = list(zip(adaptation.batches[:-1], adaptation.advantages))
    return policy, algo, train, adaptation.batches[-1], adaptation.params


def _task(batch: EpisodeBatch, i: int) -> EpisodeBatch:
    return EpisodeBatch(*(getattr(batch, f)[i:i + 1] for f in
                          ("observations", "actions", "rewards", "mask", "terminated", "diverged")))


def _random_vector(policy, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(sum(p.numel() for p in policy.parameters()), generator=g,
                       dtype=torch.float64)


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_gauss_newton_product_equals_exact_double_backprop(inner_steps):
    policy, algo, train, valid, adapted = _setup(inner_steps=inner_steps)
    v = _random_vector(policy)
    products = {m: fisher_vector_product(m, policy, train, valid, 0.1, adapted, damping=1e-3)(v)
                for m in ("exact", "gauss_newton")}
    torch.testing.assert_close(products["gauss_newton"], products["exact"], rtol=1e-9, atol=1e-12)


def test_first_order_product_is_mean_of_per_task_fisher_at_adapted_params():
    policy, algo, train, valid, adapted = _setup()
    v = _random_vector(policy)
    product = fisher_vector_product("first_order", policy, train, valid, 0.1, adapted)(v)
    names, shapes = list(adapted), [p.shape for p in policy.parameters()]
    sizes = [p.numel() for p in policy.parameters()]

    def task_kl(z, i):
        params = {n: t.view(s).unsqueeze(0) for n, t, s in
                  zip(names, torch.split(z, sizes), shapes)}
        old = policy(valid.observations[i:i + 1], {k: a[i:i + 1] for k, a in adapted.items()})
        new = policy(valid.observations[i:i + 1], params)
        kl = kl_divergence(old, new) * valid.mask[i:i + 1]
        return kl.sum() / valid.mask[i].sum()

    reference = torch.zeros_like(v)
    for i in range(valid.num_tasks):
        z = torch.cat([adapted[n][i].reshape(-1) for n in names]).detach()
        reference += torch.func.hessian(lambda z: task_kl(z, i))(z) @ v / valid.num_tasks
    torch.testing.assert_close(product, reference, rtol=1e-9, atol=1e-12)
    # It is an approximation when the inner step has curvature: not the exact product.
    exact = fisher_vector_product("exact", policy, train, valid, 0.1, adapted)(v)
    assert not torch.allclose(product, exact, rtol=1e-3)


@pytest.mark.parametrize("method", ["exact", "gauss_newton"])
def test_subsampled_product_is_kl_hessian_on_first_episodes_through_the_whole_inner_step(method):
    # fisher_subsample thins the states the KL averages over; the adaptation map inside
    # the product stays the one training uses (every inner episode).
    policy, algo, train, valid, adapted = _setup(episodes=5)
    v = _random_vector(policy)
    product = fisher_vector_product(method, policy, train, valid, 0.1, adapted, fraction=0.4)(v)
    kept = subsample(valid, 0.4)
    assert kept.episodes_per_task == 2  # ceil(0.4 * 5)
    names, shapes = list(adapted), [p.shape for p in policy.parameters()]
    sizes = [p.numel() for p in policy.parameters()]
    (batch, adv), = train

    def task_kl(z, i):
        params = {n: t.view(s).unsqueeze(0) for n, t, s in
                  zip(names, torch.split(z, sizes), shapes)}
        loss = reinforce_loss(policy, params, _task(batch, i), adv[i:i + 1]).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        inner = {n: p - 0.1 * g for (n, p), g in zip(params.items(), grads)}
        old = policy(kept.observations[i:i + 1], {k: a[i:i + 1].detach()
                                                   for k, a in adapted.items()})
        new = policy(kept.observations[i:i + 1], inner)
        return (kl_divergence(old, new) * kept.mask[i:i + 1]).sum() / kept.mask[i].sum()

    theta = torch.cat([p.detach().reshape(-1) for p in policy.parameters()])
    reference = sum(torch.autograd.functional.hvp(lambda z: task_kl(z, i), theta, v)[1]
                    for i in range(valid.num_tasks)) / valid.num_tasks
    torch.testing.assert_close(product, reference, rtol=1e-8, atol=1e-11)
    # subsampling the inner steps as well is a different quantity
    sliced = [(subsample(b, 0.4), a[:, :2]) for b, a in train]
    other = fisher_vector_product(method, policy, sliced, kept, 0.1, adapted)(v)
    assert not torch.allclose(product, other, rtol=1e-3)


def _per_task_loop_update(policy, train, valid, valid_adv, old_params, cfg):
    """A straightforward reference: every quantity computed task by task, then averaged."""
    theta = list(policy.parameters())
    names = list(policy.params())
    num_tasks = valid.num_tasks

    def per_task(i, create_graph):
        params = dict(zip(names, theta))
        for batch, adv in train:
            loss = reinforce_loss(policy, stack_params(params, 1), _task(batch, i),
                                  adv[i:i + 1]).sum()
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
            params = {k: v - cfg.inner_step_size * g for (k, v), g in zip(params.items(), grads)}
        vt = _task(valid, i)
        old = policy(vt.observations, {k: v[i:i + 1] for k, v in old_params.items()})
        new = policy(vt.observations, stack_params(params, 1))
        ratio = torch.exp(new.log_prob(vt.actions) - old.log_prob(vt.actions))
        n = vt.mask.sum()
        surrogate = -(ratio * valid_adv[i:i + 1] * vt.mask).sum() / n
        kl = (kl_divergence(old, new) * vt.mask).sum() / n
        return surrogate, kl

    def totals(create_graph):
        with torch.enable_grad():
            pairs = [per_task(i, create_graph) for i in range(num_tasks)]
        return (sum(p[0] for p in pairs) / num_tasks, sum(p[1] for p in pairs) / num_tasks)

    loss, kl = totals(create_graph=True)
    grad = flat(torch.autograd.grad(loss, theta, retain_graph=True))
    grad_kl = flat(torch.autograd.grad(kl, theta, create_graph=True))

    def fvp(v):
        return flat(torch.autograd.grad(grad_kl @ v, theta, retain_graph=True)) + cfg.cg_damping * v

    direction, _ = conjugate_gradient(fvp, grad.detach(), cfg.cg_iters)
    step = trust_region_step(direction, fvp, cfg.max_kl)
    start = flat(theta).detach().clone()

    def evaluate(fraction):
        torch.nn.utils.vector_to_parameters(start - fraction * step, theta)
        with torch.no_grad():
            trial_loss, trial_kl = totals(create_graph=False)
        return trial_loss.item(), trial_kl.item()

    result = backtracking_line_search(evaluate, loss.item(), cfg.max_kl, cfg.ls_max_steps,
                                      cfg.ls_backtrack_ratio)
    if not result.accepted:
        torch.nn.utils.vector_to_parameters(start, theta)
    return grad.detach(), fvp, result


@pytest.mark.parametrize("fisher", ["exact", "gauss_newton"])
def test_batched_meta_update_equals_per_task_loop(fisher):
    policy, algo, train, valid, adapted = _setup(num_tasks=4, fisher=fisher, max_kl=0.05)
    reference_policy = copy.deepcopy(policy)
    valid_adv = algo.advantages(valid)
    ref_grad, ref_fvp, ref_result = _per_task_loop_update(reference_policy, train, valid,
                                                          valid_adv, adapted, algo.cfg)

    # The batched gradient and Fisher-vector product at the starting parameters ...
    theta = list(policy.parameters())
    old_dist = policy(valid.observations, adapted)
    loss, _ = surrogate_loss(policy, algo._adapted_from_meta(train, valid.num_tasks, True), valid, valid_adv,
                             old_dist)
    grad = flat(torch.autograd.grad(loss.mean(), theta))
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
    fvp = fisher_vector_product(fisher, policy, train, valid, 0.1, adapted, algo.cfg.cg_damping)
    v = _random_vector(policy)
    torch.testing.assert_close(fvp(v), ref_fvp(v), rtol=1e-5, atol=1e-8)

    # ... and the whole TRPO meta-step give the same parameters.
    start = flat(theta).detach().clone()
    stats = algo.meta_update(train, valid, adapted)
    assert ref_result.accepted and stats["diagnostics/step_accepted"] == 1.0
    assert stats["diagnostics/line_search_steps"] == ref_result.steps
    # CG amplifies the last bits of the products (summed in a different order), so the
    # steps agree to 1e-5 of their length rather than elementwise to a fixed atol
    step = flat(list(policy.parameters())) - start
    ref_step = flat(list(reference_policy.parameters())) - start
    assert ref_step.norm() > 0
    assert (step - ref_step).norm() <= 1e-5 * ref_step.norm()
