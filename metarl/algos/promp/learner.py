"""ProMP: proximal meta-policy search (Rothfuss et al. 2019), batched over tasks.

One meta-iteration samples and adapts exactly as MAML-TRPO does (the same sampler,
linear-baseline advantages and inner policy-gradient step, reused from
:class:`~metarl.algos.maml.MAMLTRPO`). The meta-update differs, as in the reference code
(github.com/jonasrothfuss/ProMP ``meta_policy_search/meta_algos/pro_mp.py``):

* **Inner step (LVC).** Inside the meta-objective each task's inner step descends the
  low-variance curvature objective ``-mean(pi_theta(a|s) / pi_old(a|s) * A)`` on its
  pre-adaptation batch, ``pi_old`` being the policy that sampled it. At
  ``theta = theta_old`` its gradient is the vanilla policy gradient MAML uses; its Hessian
  is ``-mean((grad^2 log pi + grad log pi grad log pi^T) * A)``, where differentiating
  MAML's ``-mean(log pi * A)`` twice gives only the first term (:func:`lvc_inner_loss`).
* **Outer objective.** The PPO-clipped surrogate of the adapted policies on the
  post-adaptation batch, ``-mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`` with ``r`` the
  likelihood ratio to the adapted policy that sampled it, plus ``eta_k`` times the mean
  KL between the policy that sampled inner batch ``k`` and the current one
  (``_adapt_kl_coeff`` halves or doubles ``eta_k`` when ``adaptive_inner_kl_penalty``).
* **Optimiser.** ``promp_steps`` full-batch Adam steps on that objective per meta-batch
  (``MAMLPPOOptimizer``: ``num_minibatches`` 1), Adam's moments kept across iterations.
  (TensorFlow's Adam adds its epsilon to the bias-uncorrected ``sqrt(v)``; torch's to the
  corrected one. With epsilon 1e-8 the steps differ below float32 resolution.)

Means are per task over its real steps, then over tasks, as the reference's
``reduce_mean`` over a task's stacked paths and then over tasks.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.distributions import Distribution, kl_divergence

from ...policies import GaussianMLPPolicy, stack_params
from ...samplers import BatchSampler, EpisodeBatch
from ..base import BuildContext, IterationStats
from ..maml.learner import MAMLTRPO, Params, _detached, _first_nonfinite, _policy
from ..maml.policy_gradient import masked_task_mean
from .config import ProMPConfig


def lvc_inner_loss(policy: GaussianMLPPolicy, params: Params, batch: EpisodeBatch,
                   advantages: torch.Tensor, old_log_probs: torch.Tensor) -> torch.Tensor:
    """``[T]`` LVC objective ``-mean(pi_theta(a|s) / pi_old(a|s) * A)`` per task.

    ``old_log_probs`` are ``log pi_old(a|s)`` of the policy that sampled ``batch``
    (constants). Its gradient at ``pi_theta = pi_old`` is the policy gradient; its
    Hessian there is ``-mean((grad^2 log pi + grad log pi grad log pi^T) A)``.
    """
    return _lvc(policy(batch.observations, params), batch, advantages, old_log_probs)


def _lvc(dist: Distribution, batch: EpisodeBatch, advantages: torch.Tensor,
         old_log_probs: torch.Tensor) -> torch.Tensor:
    """:func:`lvc_inner_loss` from the policy's distribution on ``batch``."""
    ratio = torch.exp(dist.log_prob(batch.actions) - old_log_probs)
    return -masked_task_mean(ratio * advantages, batch.mask)


def clipped_surrogate(log_probs: torch.Tensor, old_log_probs: torch.Tensor,
                      advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float
                      ) -> torch.Tensor:
    """``[T]`` PPO's clipped surrogate loss ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))``."""
    ratio = torch.exp(log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -masked_task_mean(torch.minimum(ratio * advantages, clipped * advantages), mask)


def adapt_kl_coefficient(coefficient: float, kl: float, target: float) -> float:
    """Halve the weight when ``kl < target / 1.5``, double it when ``kl > 1.5 target``
    (the reference's ``_adapt_kl_coeff``)."""
    if kl < target / 1.5:
        return coefficient / 2.0
    if kl > target * 1.5:
        return coefficient * 2.0
    return coefficient


class ProMP(MAMLTRPO):
    """ProMP on the :class:`~metarl.algos.MetaLearner` contract; sampling, adaptation and
    evaluation are MAML-TRPO's, the meta-update is :meth:`meta_update`."""

    name = "promp"
    label = "promp"
    step_size_keys = "algo.learning_rate or algo.inner_step_size"

    def __init__(self, policy: GaussianMLPPolicy, sampler: BatchSampler, cfg: ProMPConfig,
                 episodes_per_task: int, seed: int = 0, training: bool = True) -> None:
        super().__init__(policy, sampler, cfg, episodes_per_task, seed, training)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
        self.inner_kl_coefficients = [cfg.inner_kl_penalty] * cfg.inner_steps

    def meta_update(self, train: Sequence[tuple[EpisodeBatch, torch.Tensor]],
                    valid: EpisodeBatch, old_params: Params) -> dict[str, float]:
        """``promp_steps`` Adam steps on the clipped, KL-penalised meta-objective."""
        cfg = self.cfg
        valid_adv = self.advantages(valid)
        self.skip_reason = _first_nonfinite(
            [("observations", b.observations) for b, _ in train]
            + [("advantages", a) for _, a in train]
            + [("observations", valid.observations), ("advantages", valid_adv)])
        if self.skip_reason is not None:
            return self.skipped_update_stats()
        sampled_by = self._sampling_distributions(train)
        with torch.no_grad():
            old_valid = self.policy(valid.observations, _detached(old_params))
            old_valid_log_probs = old_valid.log_prob(valid.actions)
            inner_old_log_probs = [d.log_prob(b.actions) for d, (b, _) in zip(sampled_by, train)]
        start = [p.detach().clone() for p in self.policy.parameters()]

        def objective() -> tuple[torch.Tensor, list[torch.Tensor], Distribution]:
            """The meta-objective, the inner KL per step and the adapted policies."""
            params = stack_params(self.policy.params(), valid.num_tasks)
            inner_kls = []
            for k, (batch, adv) in enumerate(train):
                dist = self.policy(batch.observations, params)
                inner_kls.append(masked_task_mean(kl_divergence(sampled_by[k], dist),
                                                  batch.mask).mean())
                loss = _lvc(dist, batch, adv, inner_old_log_probs[k])
                grads = torch.autograd.grad(loss.sum(), list(params.values()),
                                            create_graph=True)
                params = {n: p - self.inner_step_size * g
                          for (n, p), g in zip(params.items(), grads)}
            adapted = self.policy(valid.observations, params)
            surrogate = clipped_surrogate(adapted.log_prob(valid.actions), old_valid_log_probs,
                                          valid_adv, valid.mask, cfg.clip_eps).mean()
            penalty = torch.stack([c * kl for c, kl in
                                   zip(self.inner_kl_coefficients, inner_kls)]).mean()
            return surrogate + penalty, inner_kls, adapted

        loss_before = float("nan")
        with torch.enable_grad():
            for step in range(cfg.promp_steps):
                loss = objective()[0]
                if step == 0:
                    loss_before = loss.item()
                self.skip_reason = _first_nonfinite([("meta-objective", loss)])
                if self.skip_reason is None:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.skip_reason = _first_nonfinite([("meta-gradient", torch.cat(
                        [p.grad.reshape(-1) for p in self.policy.parameters()]))])
                if self.skip_reason is not None:
                    self.skip_reason += f" (Adam step {step + 1})"
                    with torch.no_grad():  # back to where the meta-update started
                        for p, s in zip(self.policy.parameters(), start):
                            p.copy_(s)
                    return self.skipped_update_stats() | {"losses/surrogate_before": loss_before}
                self.optimizer.step()
            loss_after, inner_kls, adapted = objective()
        with torch.no_grad():
            outer_kl = masked_task_mean(kl_divergence(old_valid, adapted), valid.mask).mean()
            ratio = torch.exp(adapted.log_prob(valid.actions) - old_valid_log_probs)
            clip_fraction = masked_task_mean(((ratio - 1.0).abs() > cfg.clip_eps).to(
                ratio.dtype), valid.mask).mean()
        inner_kl = [kl.item() for kl in inner_kls]
        if cfg.adaptive_inner_kl_penalty:
            self.inner_kl_coefficients = [
                adapt_kl_coefficient(c, kl, cfg.target_inner_kl)
                for c, kl in zip(self.inner_kl_coefficients, inner_kl)]
        return {"losses/surrogate_before": loss_before,
                "losses/surrogate_after": loss_after.item(),
                "losses/inner_kl": sum(inner_kl) / len(inner_kl),
                "losses/kl_after": outer_kl.item(),
                "diagnostics/inner_kl_coefficient": sum(self.inner_kl_coefficients)
                / len(self.inner_kl_coefficients),
                "diagnostics/clip_fraction": clip_fraction.item(),
                "diagnostics/skipped_updates": 0.0}

    def _sampling_distributions(self, train: Sequence[tuple[EpisodeBatch, torch.Tensor]]
                                ) -> list[Distribution]:
        """The policies that sampled each inner batch: ``theta``, then each inner step's
        result (recomputed without a graph: the same values ``adapt`` sampled with)."""
        params = stack_params(_detached(self.policy.params()), train[0][0].num_tasks)
        dists = []
        for k, (batch, adv) in enumerate(train):
            with torch.no_grad():
                dists.append(self.policy(batch.observations, params))
            if k + 1 < len(train):  # the last step's result sampled the outer batch: not needed
                params = _detached(self.inner_step(params, batch, adv, self.inner_step_size,
                                                   create_graph=False))
        return dists

    def skipped_update_stats(self) -> dict[str, float]:
        nan = float("nan")
        return {"losses/surrogate_before": nan,
                "losses/surrogate_after": nan, "losses/inner_kl": nan, "losses/kl_after": nan,
                "diagnostics/inner_kl_coefficient": sum(self.inner_kl_coefficients)
                / len(self.inner_kl_coefficients),
                "diagnostics/clip_fraction": nan, "diagnostics/skipped_updates": 1.0}

    def progress_line(self, iteration: int, total: int, env_steps: int, iteration_s: float,
                      stats: IterationStats) -> str:
        """Returns before and after adaptation, the outer and inner KL of the update."""
        row = stats.scalars
        width = len(str(total))
        return (f"iter {iteration:>{width}}/{total} | env steps {env_steps:>11,} | return pre "
                f"{row['meta_train/return/adapt_0']:8.2f} post "
                f"{row[f'meta_train/return/adapt_{self.inner_steps}']:8.2f} | kl "
                f"{row['losses/kl_after']:.4f} inner {row['losses/inner_kl']:.5f} | "
                f"{iteration_s:5.1f}s")

    def state_dict(self) -> dict:
        return super().state_dict() | {"optimizer": self.optimizer.state_dict(),
                                       "inner_kl_coefficients": list(self.inner_kl_coefficients)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.training:
            self.optimizer.load_state_dict(state["optimizer"])
            self.inner_kl_coefficients = [float(c) for c in state["inner_kl_coefficients"]]


def build_promp(ctx: BuildContext) -> ProMP:
    """``algo.name: promp``: the Gaussian MLP policy of ``policy`` and ProMP."""
    return ProMP(_policy(ctx), ctx.sampler, ctx.cfg.algo, ctx.cfg.sampler.episodes_per_task,
                 seed=ctx.seed, training=ctx.training)
