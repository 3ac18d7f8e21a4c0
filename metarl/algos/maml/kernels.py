"""MAML's batched kernels: the inner policy-gradient step and the Fisher-vector
products of the post-adaptation mean KL, for all tasks of a meta-batch at once.

Parameters are stacked per task (``[T, ...]``, see :func:`~metarl.policies.stack_params`),
so every kernel is one batched computation over tasks, never a loop.

The TRPO meta-step needs ``F v`` where ``F`` is the Hessian, with respect to the
meta-parameters ``theta``, of ``KL(theta) = mean_i KL(pi_old_i || pi_{theta'_i(theta)})``
on the post-adaptation batch, taken at the current ``theta`` (where the KL and its
gradient are zero). Three ways to compute it (``algo.fisher``):

``exact``
    Double backprop of the mean KL through the inner step (what the reference code
    does): each product back-propagates through a graph that already contains a
    second-order inner step. Slowest.
``gauss_newton``
    At the current parameters the KL's Hessian equals ``J^T M J`` exactly, with
    ``J = d(mean, std)/d theta`` through the inner step and ``M`` the Gaussian's
    Fisher (``1/std^2`` for the mean, ``2/std^2`` for the std). By the chain rule
    ``J = J' (I - alpha H)``, so a product is two Hessian-vector products of the inner
    loss (graph built once) around one Jacobian-vector and one vector-Jacobian
    product on the post-adaptation batch: no third-order graph, nothing recomputed.
    Same result as ``exact`` (tested); on the navigation paper config 13.2 GFLOP
    per product against 16.5 for the earlier ``torch.func`` jvp/vjp form. For the
    Gaussian MLP policy the four products are written out by hand
    (:mod:`.mlp_curvature`), which also lets ``algo.compile`` fuse them; other
    policies use autograd.
``first_order``
    Ignores the inner step's Jacobian (``J = d(mean, std)/d theta'``), i.e. the
    average of the per-task policy Fisher at the adapted parameters. An approximation,
    about 4x cheaper than ``gauss_newton``; it is also what ``exact`` reduces to
    when the meta-gradient itself is first order (``algo.first_order``).

``algo.fisher_subsample`` evaluates the KL on the first ``ceil(f * E)`` of each task's
``E`` post-adaptation episodes (episodes are i.i.d., so this is a uniform subsample of
the states the KL averages over, as rllab's ``subsample_factor`` subsamples the KL's
inputs). The inner steps inside the products always use every episode: subsampling
them too would precondition with the curvature of a different adaptation map
(``metarl bench fisher`` measures both). The meta-gradient and the line search always
use every episode.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch.distributions import Independent, Normal, kl_divergence

from ...optim import hessian_vector_product
from ...policies import GaussianMLPPolicy, stack_params
from ...samplers import EpisodeBatch
from . import mlp_curvature
from .policy_gradient import reinforce_loss

Params = dict[str, torch.Tensor]
InnerData = Sequence[tuple[EpisodeBatch, torch.Tensor]]  # (batch, advantages) per inner step

FISHER_METHODS = ("exact", "gauss_newton", "first_order")


def inner_step(policy: GaussianMLPPolicy, params: Params, batch: EpisodeBatch,
               advantages: torch.Tensor, step_size: float, create_graph: bool) -> Params:
    """One policy-gradient step for every task: ``theta_i - alpha * grad L_i`` (autograd).

    ``params`` are stacked per task. With ``create_graph`` the result stays
    differentiable through the gradient (second-order MAML); otherwise the gradient
    is treated as a constant.
    """
    with torch.enable_grad():
        inputs = params if create_graph else {k: v.detach().requires_grad_()
                                              for k, v in params.items()}
        # Summing per-task losses gives each task its own gradient w.r.t. its slice.
        loss = reinforce_loss(policy, inputs, batch, advantages).sum()
        grads = torch.autograd.grad(loss, list(inputs.values()), create_graph=create_graph)
    return {k: v - step_size * g for (k, v), g in zip(params.items(), grads)}


def subsample(batch: EpisodeBatch, fraction: float) -> EpisodeBatch:
    """The first ``ceil(fraction * E)`` episodes of every task (at least one)."""
    keep = _kept_episodes(batch.episodes_per_task, fraction)
    if keep == batch.episodes_per_task:
        return batch
    return EpisodeBatch(batch.observations[:, :keep], batch.actions[:, :keep],
                        batch.rewards[:, :keep], batch.mask[:, :keep],
                        batch.terminated[:, :keep], batch.diverged[:, :keep])


def _kept_episodes(episodes: int, fraction: float) -> int:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fisher_subsample must be in (0, 1], got {fraction!r}")
    return max(1, min(episodes, math.ceil(fraction * episodes - 1e-9)))


def kl_weights(mask: torch.Tensor) -> torch.Tensor:
    """``[T, E, H, 1]`` weights turning a per-step sum into the mean over tasks of
    each task's mean over its real steps (how the TRPO constraint averages the KL)."""
    per_task = mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    return (mask / per_task / mask.shape[0]).unsqueeze(-1)


def fisher_vector_product(method: str, policy: GaussianMLPPolicy, train: InnerData,
                          valid: EpisodeBatch, step_size: float, adapted: Params,
                          damping: float = 0.0, fraction: float = 1.0,
                          compile: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (F + damping I) v`` for flat vectors ``v`` over ``policy``'s parameters.

    Args:
        method: one of :data:`FISHER_METHODS`.
        train: the batches and advantages of the inner steps, in order.
        valid: the post-adaptation batch (only observations and mask are used).
        step_size: the inner step size ``alpha``.
        adapted: the stacked post-adaptation parameters ``theta'`` at the current
            ``theta`` (used by ``first_order``).
        damping: added multiple of the identity.
        fraction: share of each task's post-adaptation episodes the KL is evaluated on
            (``algo.fisher_subsample``); the inner steps use all of ``train``.
        compile: run the product through ``torch.compile`` (``algo.compile``). Only
            the hand-written MLP products (``gauss_newton``, ``first_order`` on a
            :class:`GaussianMLPPolicy`) compile; autograd's double backward does not.
    """
    if method not in FISHER_METHODS:
        raise ValueError(f"fisher must be one of {FISHER_METHODS}, got {method!r}")
    valid = subsample(valid, fraction)
    weights = kl_weights(valid.mask)
    if method == "exact":
        return _exact_product(policy, train, valid.observations, weights, step_size, damping)
    train = train if method == "gauss_newton" else None
    if not mlp_curvature.supports(policy):
        return _gauss_newton_product(policy, train, valid.observations, weights, step_size,
                                     adapted, damping)
    product = _gauss_newton_product_mlp(policy, train, valid.observations, weights,
                                        step_size, adapted, damping)
    return mlp_curvature.compiled(product) if compile else product


def _exact_product(policy: GaussianMLPPolicy, train: InnerData, obs: torch.Tensor,
                   weights: torch.Tensor, step_size: float, damping: float
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    theta = list(policy.parameters())
    with torch.enable_grad():
        params = stack_params(policy.params(), obs.shape[0])
        for batch, adv in train:
            params = inner_step(policy, params, batch, adv, step_size, create_graph=True)
        mean, std = policy.mean_std(obs, params)
        old = Independent(Normal(mean.detach(), std.detach(), validate_args=False), 1)
        new = Independent(Normal(mean, std, validate_args=False), 1)
        kl = (kl_divergence(old, new) * weights.squeeze(-1)).sum()
        grad_kl = torch.autograd.grad(kl, theta, create_graph=True)
    return hessian_vector_product(grad_kl, theta, damping)


def _starting_point(policy: GaussianMLPPolicy, train: InnerData | None, adapted: Params,
                    num_tasks: int) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    """Parameter names, the detached ``theta``, and the stacked parameters the products
    linearise first: ``theta`` per task before the inner steps, or ``adapted`` for
    ``first_order`` (``train=None``)."""
    names = list(policy.params())
    theta = [p.detach() for p in policy.params().values()]
    if train is None:
        return names, theta, [adapted[k].detach() for k in names]
    return names, theta, [t.unsqueeze(0).expand(num_tasks, *t.shape) for t in theta]


def _gauss_newton_product(policy: GaussianMLPPolicy, train: InnerData | None,
                          obs: torch.Tensor, weights: torch.Tensor, step_size: float,
                          adapted: Params, damping: float
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> J^T M J v`` by the chain rule through the inner steps.

    With ``theta_{k+1} = theta_k - alpha g_k(theta_k)`` per task, ``J = J' A_K ... A_1``
    where ``J'`` is the Jacobian of ``(mean, std)`` at the adapted parameters and
    ``A_k = I - alpha H_k`` (``H_k`` the per-task Hessian of the inner loss at
    ``theta_k``; symmetric, so ``A_k^T = A_k``). A product is then K Hessian-vector
    products (double backprop through the inner gradients' graphs, built once), one
    Jacobian-vector and one vector-Jacobian product on the post-adaptation batch, and K
    more Hessian-vector products: nothing is recomputed per product. ``train=None``
    (``first_order``) takes ``A = I`` at the given ``adapted`` parameters.
    """
    names, theta, current = _starting_point(policy, train, adapted, obs.shape[0])
    num_tasks = obs.shape[0]
    steps: list[tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]] = []
    with torch.enable_grad():
        for batch, adv in train or ():
            leaf = [c.detach().clone().requires_grad_() for c in current]
            loss = reinforce_loss(policy, dict(zip(names, leaf)), batch, adv).sum()
            grads = torch.autograd.grad(loss, leaf, create_graph=True)
            steps.append((leaf, grads))
            current = [(p - step_size * g).detach() for p, g in zip(leaf, grads)]
        final = [c.detach().requires_grad_() for c in current]
        mean, std = policy.mean_std(obs, dict(zip(names, final)))
        # J' u as the derivative of the vector-Jacobian product's graph in its cotangent
        # (the "double-vjp trick"): plain autograd, on the post-adaptation batch only
        cotangents = (torch.zeros_like(mean, requires_grad=True),
                      torch.zeros_like(std, requires_grad=True))
        pullback = torch.autograd.grad((mean, std), final, cotangents, create_graph=True)
    inv_var = weights / std.detach() ** 2
    scales = (inv_var, 2.0 * inv_var)  # the Gaussian's Fisher for (mean, std)
    shapes = [p.shape for p in theta]
    sizes = [p.numel() for p in theta]

    def through_inner_steps(vectors: list[torch.Tensor], order: Sequence[Any]
                            ) -> list[torch.Tensor]:
        for leaf, grads in order:  # v -> (I - alpha H_k) v
            hvp = torch.autograd.grad(grads, leaf, vectors, retain_graph=True)
            vectors = [v - step_size * h for v, h in zip(vectors, hvp)]
        return vectors

    def product(vector: torch.Tensor) -> torch.Tensor:
        per_task = [t.view(s).unsqueeze(0).expand(num_tasks, *s)
                    for t, s in zip(torch.split(vector, sizes), shapes)]
        with torch.enable_grad():
            u = through_inner_steps(per_task, steps)
            jac_mean, jac_std = torch.autograd.grad(pullback, cotangents, u, retain_graph=True)
            back = torch.autograd.grad((mean, std), final, (scales[0] * jac_mean,
                                                            scales[1] * jac_std),
                                       retain_graph=True)
            back = through_inner_steps(list(back), steps[::-1])
        # theta is shared by the tasks: its derivative sums theirs
        return torch.cat([b.sum(0).reshape(-1) for b in back]).detach() + damping * vector

    return product


def _gauss_newton_product_mlp(policy: GaussianMLPPolicy, train: InnerData | None,
                              obs: torch.Tensor, weights: torch.Tensor, step_size: float,
                              adapted: Params, damping: float
                              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`_gauss_newton_product` with the products written out for the MLP
    (:mod:`.mlp_curvature`) instead of differentiated by autograd: same quantity,
    less elementwise work per product."""
    names, theta, current = _starting_point(policy, train, adapted, obs.shape[0])
    num_tasks = obs.shape[0]
    steps = []
    for batch, adv in train or ():
        curvature = mlp_curvature.InnerLossCurvature(policy, current, batch, adv)
        steps.append(curvature)
        current = [p - step_size * g for p, g in zip(current, curvature.gradient())]
    final = mlp_curvature.Linearization(policy, current, obs)
    flat_weights = weights.reshape(num_tasks, -1, 1)
    mean_scale = flat_weights * torch.exp(-2.0 * final.log_std).unsqueeze(1)
    log_std_scale = 2.0 * flat_weights.sum(1)  # the Gaussian's Fisher for log std: 2 per step
    shapes = [p.shape for p in theta]
    sizes = [p.numel() for p in theta]

    def through_inner_steps(vectors: list[torch.Tensor], order: Sequence[Any]
                            ) -> list[torch.Tensor]:
        for curvature in order:  # v -> (I - alpha H_k) v
            vectors = [v - step_size * h for v, h in zip(vectors, curvature.hvp(vectors))]
        return vectors

    def product(vector: torch.Tensor) -> torch.Tensor:
        per_task = [t.view(s).unsqueeze(0).expand(num_tasks, *s)
                    for t, s in zip(torch.split(vector.detach(), sizes), shapes)]
        u = through_inner_steps(per_task, steps)
        d_mean, d_log_std, _ = final.jvp(u)
        back = final.vjp(mean_scale * d_mean, log_std_scale * d_log_std)
        back = through_inner_steps(back, steps[::-1])
        return torch.cat([b.sum(0).reshape(-1) for b in back]) + damping * vector

    return product
