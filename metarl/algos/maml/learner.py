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
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ...optim import (
    LineSearchResult,
    backtracking_line_search,
    conjugate_gradient,
    flat,
    trust_region_step,
)
from ...policies import GaussianMLPPolicy, stack_params
from ...samplers import BatchSampler, EpisodeBatch
from ..base import Adaptation, BuildContext, IterationStats, MetaLearner, StepCallback
from .config import MAMLTRPOConfig, TRPOConfig
from .kernels import fisher_vector_product, inner_step
from .linear_value_baseline import fit_linear_baseline, predict_linear_baseline
from .policy_gradient import (
    advantages_from_values,
    compute_advantages,
    reinforce_loss,
    surrogate_loss,
)

Params = dict[str, torch.Tensor]


def _detached(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


@dataclass
class GradientAdaptation(Adaptation):
    """What :meth:`MAMLTRPO.adapt` returns: the batches (batch ``k`` sampled after ``k``
    gradient steps) and what the meta-update needs besides.

    Attributes:
        advantages: the advantages each adaptation step used (one per batch but the last).
        params: the final stacked per-task parameters.
        adapt_s: seconds spent on advantages (baseline fits) and inner steps.
    """

    advantages: list[torch.Tensor] = field(default_factory=list)
    params: Params = field(default_factory=dict)
    adapt_s: float = 0.0


class MAMLTRPO(MetaLearner):
    """MAML-TRPO on the :class:`~metarl.algos.MetaLearner` contract; ``adapt`` takes
    ``step_sizes`` too (``fine_tunable``), which evaluation's baselines use."""

    name = "maml_trpo"
    label = "maml"
    adaptation_units = "gradient steps"
    step_size_keys = "algo.max_kl or algo.inner_step_size"
    fine_tunable = True
    adapts_in_training = True

    def __init__(self, policy: GaussianMLPPolicy, sampler: BatchSampler,
                 cfg: MAMLTRPOConfig | TRPOConfig, episodes_per_task: int, seed: int = 0,
                 training: bool = True) -> None:
        self.policy = policy
        self.sampler = sampler
        self.cfg = cfg
        self.episodes_per_task = episodes_per_task
        self.training = training
        self.task_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        self.skip_reason: str | None = None  # why the last meta-update was skipped, if it was

    @property
    def inner_steps(self) -> int:
        """Inner steps per meta-iteration (none for TRPO)."""
        return self.cfg.inner_steps if self.adapts_in_training else 0

    @property
    def inner_step_size(self) -> float:
        return self.cfg.inner_step_size if self.adapts_in_training else 0.0

    # -- adaptation ---------------------------------------------------------------------------

    def advantages(self, batch: EpisodeBatch) -> torch.Tensor:
        """Per-task advantages of ``batch`` as the inner and outer losses use them."""
        cfg = self.cfg
        return compute_advantages(batch, cfg.gamma, cfg.gae_lambda, cfg.baseline_reg,
                                  cfg.normalize_advantages)

    def inner_step(self, params: Params, batch: EpisodeBatch, advantages: torch.Tensor,
                   step_size: float, create_graph: bool) -> Params:
        """One policy-gradient step for every task (see :func:`.kernels.inner_step`)."""
        return inner_step(self.policy, params, batch, advantages, step_size, create_graph)

    def adapt(self, tasks: Sequence[Any], k_max: int, episodes: int, sampler: BatchSampler,
              *, seed: int | None = None, on_step: StepCallback | None = None,
              step_sizes: Sequence[float] | None = None) -> GradientAdaptation:
        """Sample and take a policy-gradient step ``k_max`` times for every task at once.

        ``step_sizes[k]`` is used for step ``k`` (the last entry repeats); by default
        ``algo.eval_step_sizes``. Every task's rollouts of a step are one sampler call,
        with per-task parameters. ``seed`` is unused: all randomness is the sampler's.
        """
        if step_sizes is None:
            if k_max > 0 and not hasattr(self.cfg, "eval_step_sizes"):
                raise ValueError(f"{self.name}.adapt: step_sizes are needed (the algorithm "
                                 "has no algo.eval_step_sizes)")
            step_sizes = getattr(self.cfg, "eval_step_sizes", [0.0])
        params = stack_params(_detached(self.policy.params()), len(tasks))
        batches, advantages = [], []
        sample_s = adapt_s = 0.0
        failure = None
        for k in range(k_max + 1):
            t0 = time.perf_counter()
            batch = sampler.sample(self.policy, params, tasks, episodes)
            t1 = time.perf_counter()
            sample_s += t1 - t0
            batches.append(batch)
            if on_step is not None:
                on_step(k, batch)
            if k < k_max:
                advantages.append(self.advantages(batch))
                step_size = step_sizes[min(k, len(step_sizes) - 1)]
                params = _detached(self.inner_step(params, batch, advantages[-1], step_size,
                                                   create_graph=False))
                adapt_s += time.perf_counter() - t1
                failure = _first_nonfinite([("advantages", advantages[-1]),
                                            ("adapted parameters", flat(list(params.values())))])
                if failure is not None:  # sampling with NaN parameters is pointless
                    break
        return GradientAdaptation(batches, sample_s, failure, advantages, params, adapt_s)

    def _adapted_from_meta(self, train: Sequence[tuple[EpisodeBatch, torch.Tensor]],
                           num_tasks: int, create_graph: bool) -> Params:
        params = stack_params(self.policy.params(), num_tasks)
        for batch, adv in train:
            params = self.inner_step(params, batch, adv, self.inner_step_size, create_graph)
        return params

    # -- meta-update --------------------------------------------------------------------------

    def train_iteration(self) -> IterationStats:
        """Run one meta-iteration."""
        cfg = self.cfg
        tasks = self.sampler.sample_tasks(cfg.meta_batch_size, self.task_rng)
        adaptation = self.adapt(tasks, self.inner_steps, self.episodes_per_task, self.sampler,
                                step_sizes=[self.inner_step_size])
        batches = adaptation.batches
        t1 = time.perf_counter()
        if adaptation.failure is None:
            stats = self._meta_update_from(adaptation)
        else:
            self.skip_reason = f"{adaptation.failure} in the inner step"
            stats = self.skipped_update_stats()
        update_s = time.perf_counter() - t1

        planned = self.inner_steps + 1
        for k in range(planned):  # the same keys every iteration (progress.csv columns)
            batch = batches[k] if k < len(batches) else None
            stats[f"meta_train/return/adapt_{k}"] = (
                batch.episode_returns().mean().item() if batch is not None else float("nan"))
            # early termination (an ant leaving its healthy height) shows here first
            stats[f"diagnostics/episode_length/adapt_{k}"] = (
                batch.lengths.float().mean().item() if batch is not None else float("nan"))
            stats[f"diagnostics/terminated/adapt_{k}"] = (
                batch.terminated.float().mean().item() if batch is not None else float("nan"))
            if batches[0].success is not None:  # families that report success (Meta-World)
                stats[f"meta_train/success/adapt_{k}"] = (
                    batch.success.float().mean().item() if batch is not None
                    else float("nan"))
        if planned > 1:
            stats["meta_train/return/gain"] = (
                stats[f"meta_train/return/adapt_{planned - 1}"]
                - stats["meta_train/return/adapt_0"])
        stats.update({
            "diagnostics/sim_diverged": float(sum(b.num_diverged for b in batches)),
            # the meta-policy's exploration noise, whose control cost every task pays
            "diagnostics/policy_std": self.policy.log_std.detach().exp().mean().item(),
            "time/sample_s": adaptation.sample_s,
            "time/adapt_s": adaptation.adapt_s,
            "time/update_s": update_s,
        })
        return IterationStats(int(sum(b.num_steps for b in batches)), stats, self.skip_reason)

    def _meta_update_from(self, adaptation: GradientAdaptation) -> dict[str, float]:
        return self.meta_update(list(zip(adaptation.batches[:-1], adaptation.advantages)),
                                adaptation.batches[-1], adaptation.params)

    def meta_update(self, train: Sequence[tuple[EpisodeBatch, torch.Tensor]],
                    valid: EpisodeBatch, old_params: Params,
                    valid_adv: torch.Tensor | None = None) -> dict[str, float]:
        """One TRPO step on the post-adaptation surrogate, in place on the policy.

        ``train`` holds each inner step's batch and advantages, ``valid`` the batch
        sampled with ``old_params`` (the adapted parameters at the current ``theta``),
        ``valid_adv`` its advantages (default: :meth:`advantages`). The gradient flows
        through the inner steps (unless ``first_order``); the curvature is the Fisher of
        the mean KL, computed as ``algo.fisher`` says.
        """
        cfg = self.cfg
        if valid_adv is None:
            valid_adv = self.advantages(valid)
        self.skip_reason = _first_nonfinite(
            [("observations", b.observations) for b, _ in train]
            + [("rewards", b.rewards) for b, _ in train]
            + [("advantages", a) for _, a in train]
            + [("observations", valid.observations), ("rewards", valid.rewards),
               ("advantages", valid_adv)])
        with torch.no_grad():
            old_dist = self.policy(valid.observations, old_params)
            inner_loss = float("nan") if not train else reinforce_loss(
                self.policy, stack_params(self.policy.params(), valid.num_tasks),
                train[0][0], train[0][1]).mean().item()

        def surrogate(create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
            adapted = self._adapted_from_meta(train, valid.num_tasks, create_graph)
            loss, kl = surrogate_loss(self.policy, adapted, valid, valid_adv, old_dist)
            return loss.mean(), kl.mean()

        theta = list(self.policy.parameters())
        loss_before, kl_before = surrogate(create_graph=not self._first_order())
        flat_grad = flat(torch.autograd.grad(loss_before, theta)).detach()
        loss_before, kl_before = loss_before.detach(), kl_before.detach()
        full_step, residual = None, float("nan")
        self.skip_reason = self.skip_reason or _first_nonfinite(
            [("surrogate loss", loss_before), ("meta-gradient", flat_grad)])
        if self.skip_reason is None:
            fvp = fisher_vector_product(self._fisher_method(), self.policy, train, valid,
                                        self.inner_step_size,
                                        _detached(old_params), cfg.cg_damping,
                                        cfg.fisher_subsample, cfg.compile)
            direction, residual = conjugate_gradient(fvp, flat_grad, cfg.cg_iters)
            try:
                full_step = trust_region_step(direction, fvp, cfg.max_kl)
            except FloatingPointError as err:  # curvature not positive: no trustworthy step
                self.skip_reason = f"TRPO step ({err})"
            del fvp
            if full_step is not None and not torch.isfinite(full_step).all():
                full_step, self.skip_reason = None, "TRPO step (conjugate-gradient direction)"
        result = None  # skipped: theta stays as it is
        if full_step is not None:
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
        return _update_stats(bool(train), result, inner_loss, loss_before.item(),
                             kl_before.item(), residual)

    def skipped_update_stats(self) -> dict[str, float]:
        """The meta-update's statistics when it did not run (the same keys, NaN)."""
        nan = float("nan")
        return _update_stats(self.adapts_in_training, None, nan, nan, nan, nan)

    def _first_order(self) -> bool:
        return self.adapts_in_training and self.cfg.first_order

    def _fisher_method(self) -> str:
        if not self.adapts_in_training:
            return "gauss_newton"  # no inner step: every method is the policy's own Fisher
        return "first_order" if self.cfg.first_order else self.cfg.fisher

    # -- console and checkpointing ------------------------------------------------------------

    def progress_line(self, iteration: int, total: int, env_steps: int, iteration_s: float,
                      stats: IterationStats) -> str:
        """Returns before and after adaptation, the step's KL and line-search steps."""
        row = stats.scalars
        width = len(str(total))
        pre = row["meta_train/return/adapt_0"]
        post = row[f"meta_train/return/adapt_{self.inner_steps}"]
        kl = row.get("losses/kl_after", float("nan"))
        return (f"iter {iteration:>{width}}/{total} | env steps {env_steps:>11,} | return pre "
                f"{pre:8.2f} post {post:8.2f} | kl {kl:.4f} ls "
                f"{int(row.get('diagnostics/line_search_steps', 0)):>2} | {iteration_s:5.1f}s")

    def eval_settings(self) -> dict[str, Any]:
        return {"step_sizes": list(getattr(self.cfg, "eval_step_sizes", []))}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(),
                "task_rng": self.task_rng.bit_generator.state,
                "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The policy; when training, the task and sampler streams too (an evaluation build
        keeps its own sampler's)."""
        self.policy.load_state_dict(state["policy"])
        if self.training:
            self.task_rng.bit_generator.state = state["task_rng"]
            self.sampler.load_state_dict(state["sampler"])


def _update_stats(adapts: bool, result: LineSearchResult | None, inner_loss: float,
                  loss_before: float, kl_before: float, residual: float) -> dict[str, float]:
    """The meta-step's statistics; ``result`` is None when the update was skipped."""
    result = result or LineSearchResult(False, 0, 0.0, float("nan"), float("nan"))
    stats = {"losses/inner_loss": inner_loss} if adapts else {}
    return stats | {
        "diagnostics/skipped_updates": float(result.steps == 0),
        "losses/surrogate_before": loss_before,
        "losses/surrogate_after": result.loss,
        "losses/kl_before": kl_before,
        "losses/kl_after": result.kl,
        "diagnostics/line_search_steps": float(result.steps),
        "diagnostics/step_accepted": float(result.accepted),
        "diagnostics/step_fraction": result.step_fraction,
        "diagnostics/cg_residual": residual,
    }


def _first_nonfinite(named: Sequence[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first tensor holding a NaN or Inf, or None."""
    for name, tensor in named:
        if not bool(torch.isfinite(tensor).all()):
            return f"non-finite {name}"
    return None


class TRPO(MAMLTRPO):
    """TRPO on the mixture of tasks: one policy for all tasks, no adaptation while training.

    The MAML paper's *pretrained* baseline (and, with ``env.task_in_observation``,
    its *oracle*). It is :class:`MAMLTRPO` with zero inner steps, so it shares the
    sampler, the batched surrogate and the trust-region step; ``adapt`` (fine-tuning
    in evaluation) is the same vanilla policy gradient.
    """

    name = "trpo"
    step_size_keys = "algo.max_kl"
    adapts_in_training = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``pool_tasks``: the pooled baseline's coefficients ``[1, F]`` fitted on the last
        # iteration's episodes; None before the first fit (it then predicts 0, as rllab's)
        self.pooled_baseline: torch.Tensor | None = None

    def pooled_advantages(self, batch: EpisodeBatch) -> torch.Tensor:
        """``[1, E, H]`` advantages of a :meth:`~EpisodeBatch.pooled` batch as rllab's
        sampler computes them (``rllab/sampler/base.py`` ``process_samples``): values
        from the baseline fitted on the previous batch, then a refit on this one;
        standardised over all steps (``center_adv``)."""
        cfg = self.cfg
        returns = batch.discounted_returns(cfg.gamma)
        values = (torch.zeros_like(returns) if self.pooled_baseline is None
                  else predict_linear_baseline(batch, self.pooled_baseline))
        advantages = advantages_from_values(batch, values, cfg.gamma, cfg.gae_lambda,
                                            cfg.normalize_advantages)
        coeffs = fit_linear_baseline(batch, returns, cfg.baseline_reg)
        if bool(torch.isfinite(coeffs).all()):  # a NaN batch must not poison later fits
            self.pooled_baseline = coeffs
        return advantages

    def _meta_update_from(self, adaptation: GradientAdaptation) -> dict[str, float]:
        if not self.cfg.pool_tasks:
            return super()._meta_update_from(adaptation)
        batch = adaptation.batches[-1].pooled()
        return self.meta_update([], batch, stack_params(_detached(self.policy.params()), 1),
                                self.pooled_advantages(batch))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.pooled_baseline is not None:
            state["pooled_baseline"] = self.pooled_baseline.detach().cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.training and "pooled_baseline" in state:
            self.pooled_baseline = state["pooled_baseline"].to(self.policy.log_std.device)


def _policy(ctx: BuildContext) -> GaussianMLPPolicy:
    p = ctx.cfg.policy
    return GaussianMLPPolicy(ctx.sampler.obs_dim, ctx.sampler.act_dim, p.hidden_sizes,
                             p.activation, p.init_std, p.min_std).to(ctx.device)


def build_maml_trpo(ctx: BuildContext) -> MAMLTRPO:
    """``algo.name: maml_trpo``: the Gaussian MLP policy of ``policy`` and MAML-TRPO."""
    return MAMLTRPO(_policy(ctx), ctx.sampler, ctx.cfg.algo, ctx.cfg.sampler.episodes_per_task,
                    seed=ctx.seed, training=ctx.training)


def build_trpo(ctx: BuildContext) -> TRPO:
    """``algo.name: trpo``: the Gaussian MLP policy of ``policy`` and TRPO on the mixture."""
    return TRPO(_policy(ctx), ctx.sampler, ctx.cfg.algo, ctx.cfg.sampler.episodes_per_task,
                seed=ctx.seed, training=ctx.training)


@torch.no_grad()
def _assign(params: Sequence[torch.Tensor], vector: torch.Tensor) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        p.copy_(vector[offset:offset + n].view_as(p))
        offset += n
