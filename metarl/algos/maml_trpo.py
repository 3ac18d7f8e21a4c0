"""MAML with a TRPO meta-optimizer (Finn et al. 2017, Algorithm 3), batched over tasks.

One meta-iteration:

1. sample a meta-batch of tasks; roll out the meta-policy ``theta`` in all of them;
2. adapt: ``theta'_i = theta - alpha * grad L_i(theta)`` for every task ``i`` at once
   (stacked per-task parameters; a vanilla policy gradient with a linear baseline);
   roll out every ``theta'_i`` (repeat for ``inner_steps``);
3. TRPO on the post-adaptation surrogate as a function of ``theta``: its gradient
   and the Fisher-vector products of the mean KL are differentiated *through* the
   inner step (second order, unless ``first_order``), the direction comes from
   conjugate gradient, and a backtracking line search accepts only a step that
   improves the surrogate with mean KL <= ``max_kl``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from ..config import AlgoConfig
from ..optim import (
    LineSearchResult,
    backtracking_line_search,
    conjugate_gradient,
    flat,
    hessian_vector_product,
    trust_region_step,
)
from ..policies import GaussianMLPPolicy, stack_params
from ..samplers import BatchSampler, EpisodeBatch
from .policy_gradient import compute_advantages, reinforce_loss, surrogate_loss

Params = dict[str, torch.Tensor]


def _detached(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


class MAMLTRPO:
    """Meta-learner exposing ``train_iteration()`` and, for evaluation, ``adapt()``."""

    name = "maml_trpo"

    def __init__(self, policy: GaussianMLPPolicy, sampler: BatchSampler, cfg: AlgoConfig,
                 episodes_per_task: int, seed: int = 0) -> None:
        self.policy = policy
        self.sampler = sampler
        self.cfg = cfg
        self.episodes_per_task = episodes_per_task
        self.task_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))

    # -- adaptation ---------------------------------------------------------------------------

    def advantages(self, batch: EpisodeBatch) -> torch.Tensor:
        """Per-task advantages of ``batch`` as the inner and outer losses use them."""
        cfg = self.cfg
        return compute_advantages(batch, cfg.gamma, cfg.gae_lambda, cfg.baseline_reg,
                                  cfg.normalize_advantages)

    def inner_step(self, params: Params, batch: EpisodeBatch, advantages: torch.Tensor,
                   step_size: float, create_graph: bool) -> Params:
        """One policy-gradient step for every task: ``theta_i - alpha * grad L_i``.

        ``params`` are stacked per task (``[T, ...]``). With ``create_graph`` the
        result stays differentiable through the gradient (second-order MAML);
        otherwise the gradient is treated as a constant.
        """
        with torch.enable_grad():
            inputs = params if create_graph else {k: v.detach().requires_grad_()
                                                  for k, v in params.items()}
            # Summing per-task losses gives each task its own gradient w.r.t. its slice.
            loss = reinforce_loss(self.policy, inputs, batch, advantages).sum()
            grads = torch.autograd.grad(loss, list(inputs.values()), create_graph=create_graph)
        return {k: v - step_size * g for (k, v), g in zip(params.items(), grads)}

    def adapt(self, tasks: Sequence[Any], num_steps: int, step_sizes: Sequence[float],
              episodes_per_task: int
              ) -> tuple[list[EpisodeBatch], list[torch.Tensor], Params]:
        """Sample and adapt ``num_steps`` times for every task at once.

        Returns the ``num_steps + 1`` batches (batch ``k`` sampled after ``k``
        adaptation steps), the advantages each adaptation step used (one per
        batch but the last) and the final per-task parameters. ``step_sizes[k]``
        is used for step ``k`` (the last entry repeats).
        """
        params = stack_params(_detached(self.policy.params()), len(tasks))
        batches, advantages = [], []
        for k in range(num_steps + 1):
            batch = self.sampler.sample(self.policy, params, tasks, episodes_per_task)
            batches.append(batch)
            if k < num_steps:
                advantages.append(self.advantages(batch))
                step_size = step_sizes[min(k, len(step_sizes) - 1)]
                params = _detached(self.inner_step(params, batch, advantages[-1], step_size,
                                                   create_graph=False))
        return batches, advantages, params

    def _adapted_from_meta(self, train: Sequence[tuple[EpisodeBatch, torch.Tensor]],
                           create_graph: bool) -> Params:
        params = stack_params(self.policy.params(), train[0][0].num_tasks)
        for batch, adv in train:
            params = self.inner_step(params, batch, adv, self.cfg.inner_step_size, create_graph)
        return params

    # -- meta-update --------------------------------------------------------------------------

    def train_iteration(self) -> dict[str, float]:
        """Run one meta-iteration; returns scalar statistics keyed by TensorBoard tag."""
        cfg = self.cfg
        t0 = time.perf_counter()
        tasks = self.sampler.sample_tasks(cfg.meta_batch_size, self.task_rng)
        batches, train_advantages, old_params = self.adapt(
            tasks, cfg.inner_steps, [cfg.inner_step_size], self.episodes_per_task)
        sample_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        train = list(zip(batches[:-1], train_advantages))
        valid = batches[-1]
        valid_adv = self.advantages(valid)
        with torch.no_grad():
            old_dist = self.policy(valid.observations, old_params)
            inner_loss = reinforce_loss(self.policy, stack_params(self.policy.params(), len(tasks)),
                                        train[0][0], train[0][1]).mean().item()

        def surrogate(create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
            adapted = self._adapted_from_meta(train, create_graph)
            loss, kl = surrogate_loss(self.policy, adapted, valid, valid_adv, old_dist)
            return loss.mean(), kl.mean()

        theta = list(self.policy.parameters())
        loss_before, kl_before = surrogate(create_graph=not cfg.first_order)
        grads = torch.autograd.grad(loss_before, theta, retain_graph=True)
        grad_kl = torch.autograd.grad(kl_before, theta, create_graph=True)
        flat_grad = flat(grads).detach()
        hvp = hessian_vector_product(grad_kl, theta, cfg.cg_damping)
        full_step, residual = None, float("nan")
        if torch.isfinite(flat_grad).all() and torch.isfinite(loss_before):
            direction, residual = conjugate_gradient(hvp, flat_grad, cfg.cg_iters)
            try:
                full_step = trust_region_step(direction, hvp, cfg.max_kl)
            except FloatingPointError:  # curvature not positive: no trustworthy step
                pass
        del grad_kl, hvp
        if full_step is None:  # skip the update, keep theta
            result = LineSearchResult(False, 0, 0.0, float("nan"), float("nan"))
        else:
            old_vector = flat(theta).detach().clone()

            def evaluate(fraction: float) -> tuple[float, float]:
                _assign(theta, old_vector - fraction * full_step)
                with torch.no_grad():  # the inner step re-enables grad for its own gradient
                    loss, kl = surrogate(create_graph=False)
                return loss.item(), kl.item()

            result = backtracking_line_search(evaluate, loss_before.item(), cfg.max_kl,
                                              cfg.ls_max_steps, cfg.ls_backtrack_ratio)
            if not result.accepted:
                _assign(theta, old_vector)
        update_s = time.perf_counter() - t1

        env_steps = sum(b.num_steps for b in batches)
        stats: dict[str, float] = {"diagnostics/skipped_updates": float(full_step is None),
                                   "diagnostics/sim_diverged":
                                       float(sum(b.num_diverged for b in batches))}
        for k, batch in enumerate(batches):
            stats[f"meta_train/return/adapt_{k}"] = batch.episode_returns().mean().item()
        stats["meta_train/return/gain"] = (stats[f"meta_train/return/adapt_{len(batches) - 1}"]
                                           - stats["meta_train/return/adapt_0"])
        stats.update({
            "losses/inner_loss": inner_loss,
            "losses/surrogate_before": loss_before.item(),
            "losses/surrogate_after": result.loss,
            "losses/kl_before": kl_before.item(),
            "losses/kl_after": result.kl,
            "diagnostics/line_search_steps": float(result.steps),
            "diagnostics/step_accepted": float(result.accepted),
            "diagnostics/step_fraction": result.step_fraction,
            "diagnostics/cg_residual": residual,
            "time/sample_s": sample_s,
            "time/update_s": update_s,
            "env_steps": float(env_steps),
        })
        return stats

    # -- checkpointing ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(),
                "task_rng": self.task_rng.bit_generator.state,
                "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.sampler.load_state_dict(state["sampler"])


@torch.no_grad()
def _assign(params: Sequence[torch.Tensor], vector: torch.Tensor) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        p.copy_(vector[offset:offset + n].view_as(p))
        offset += n
