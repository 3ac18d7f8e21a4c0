"""RL²: fast reinforcement learning via slow reinforcement learning (Duan et al. 2016;
Wang et al. 2016 "Learning to reinforcement learn"), on the meta-learner contract.

A GRU policy (:class:`~metarl.policies.GaussianGRUPolicy`) reads
``(o_t, a_{t-1}, r_{t-1}, d)`` at every step. One *trial* is ``episodes_per_trial``
episodes of one task with the hidden state carried across them and reset only between
trials, so adapting to a task is the policy's own computation: nothing is updated at
test time, and the adaptation curve is the return of episode ``k`` of a trial.

One iteration, as garage's RL² (github.com/rlworkgroup/garage ``src/garage/tf/algos/rl2.py``,
``_rl2npo.py``, ``rl2ppo.py``, ``rl2trpo.py``; settings from
``src/garage/examples/tf/rl2_ppo_halfcheetah.py``):

1. sample ``meta_batch_size`` tasks and roll out ``trials_per_task`` trials of each, all
   simulations together (:class:`~metarl.samplers.RecurrentSampler`);
2. treat each trial as one long episode of its real steps (garage concatenates a trial's
   episodes into one path): rewards plus ``entropy_coeff`` x the policy's entropy
   (garage's ``entropy_method='max'``, no gradient through it), discounted returns and
   GAE over the whole trial, against one linear feature baseline fitted on every trial
   of the iteration (features of the RL² inputs, time = step in the trial);
3. update the policy with PPO: ``ppo_epochs`` passes of Adam steps on minibatches of
   ``minibatch_size`` whole trials, loss ``-mean(min(r A, clip(r, 1 - eps, 1 + eps) A))``
   over their real steps (garage's ``FirstOrderOptimizer``), or with ``optimizer: trpo``
   one trust-region step (conjugate gradient on Fisher-vector products by double
   backprop of the mean KL through the GRU, backtracking line search).

Where this differs from garage: the previous action, reward and termination flag carry
over into the next episode of the trial, as in Duan et al. (sec. 2.2; garage's
``RL2Env`` restarts them at zero on every reset); the entropy bonus is the sampling
policy's (garage re-evaluates it inside every minibatch); ``normalize_advantages``
standardises over all steps (garage's ``center_adv`` per time index); there is no loss
tolerance for stopping the epochs early (garage's 1e-6).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch.distributions import Independent, kl_divergence

from ...optim import backtracking_line_search, conjugate_gradient, flat, trust_region_step
from ...optim.trpo import hessian_vector_product
from ...policies import GaussianGRUPolicy
from ...samplers import BatchSampler, EpisodeBatch, RecurrentSampler, TrialBatch
from ..base import Adaptation, BuildContext, IterationStats, MetaLearner, StepCallback
from ..maml.learner import _assign, _first_nonfinite
from ..maml.linear_value_baseline import fit_linear_baseline, predict_linear_baseline
from ..maml.policy_gradient import masked_task_mean, normalize_per_task
from ..promp.learner import clipped_surrogate
from .config import RL2Config


def ppo_loss(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
             mask: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """PPO's clipped surrogate loss ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))`` over every
    real step of ``[B, L]`` trials (one mean over all steps, as garage's)."""
    return clipped_surrogate(log_probs.unsqueeze(0), old_log_probs.unsqueeze(0),
                             advantages.unsqueeze(0), mask.unsqueeze(0), clip_eps)[0]


def trial_advantages(sequences: EpisodeBatch, bonus: torch.Tensor, gamma: float,
                     gae_lambda: float, baseline_reg: float, normalize: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(advantages, values, returns)``, each ``[1, B, L]``, of trials laid out as one
    episode each (:meth:`~metarl.samplers.TrialBatch.sequences`), with ``bonus`` added
    to every step's reward.

    The linear baseline is one fit over all ``B`` trials (its features are the RL²
    inputs and the step within the trial); the value after a trial's last step is 0.
    """
    augmented = EpisodeBatch(sequences.observations, sequences.actions,
                             (sequences.rewards + bonus) * sequences.mask, sequences.mask,
                             sequences.terminated)
    returns = augmented.discounted_returns(gamma)
    values = predict_linear_baseline(augmented, fit_linear_baseline(augmented, returns,
                                                                    baseline_reg))
    advantages = augmented.gae(values, gamma, gae_lambda)
    if normalize:
        advantages = normalize_per_task(advantages, sequences.mask)
    return advantages, values, returns


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor
                       ) -> float:
    """``1 - Var(returns - values) / Var(returns)`` over real steps (1: a perfect baseline)."""
    real = mask > 0
    target = returns[real]
    var = target.var(unbiased=False)
    if target.numel() < 2 or var.item() == 0:
        return float("nan")
    return float(1.0 - (target - values[real]).var(unbiased=False) / var)


class RL2(MetaLearner):
    """RL² on the :class:`~metarl.algos.MetaLearner` contract: ``adapt`` rolls out one
    trial of ``k_max + 1`` episodes per simulation; batch ``k`` is its episode ``k``."""

    name = "rl2"
    label = "rl2"
    adaptation_units = "episodes"
    rollouts_per_task = "trials"
    step_size_keys = "algo.learning_rate (ppo) or algo.max_kl (trpo)"

    def __init__(self, policy: GaussianGRUPolicy, sampler: BatchSampler, cfg: RL2Config,
                 seed: int = 0, training: bool = True) -> None:
        self.policy, self.sampler, self.cfg, self.training = policy, sampler, cfg, training
        self.task_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        # minibatch order; CPU, so a seed gives the same minibatches on every device
        self.minibatch_generator = torch.Generator()
        self.minibatch_generator.manual_seed(int(np.random.SeedSequence(
            seed, spawn_key=(2,)).generate_state(1, np.uint64)[0] >> np.uint64(1)))
        self.optimizer = (torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
                          if training and cfg.optimizer == "ppo" else None)
        self.skip_reason: str | None = None

    # -- rollouts and adaptation --------------------------------------------------------------

    def adapt(self, tasks: Sequence[Any], k_max: int, episodes: int, sampler: BatchSampler,
              *, seed: int | None = None, on_step: StepCallback | None = None) -> Adaptation:
        """One trial of ``k_max + 1`` episodes in each of ``episodes`` simulations per task
        (stochastic actions: the policy explores through its noise, as garage's meta-test
        samples). ``seed`` is unused: all randomness is the sampler's."""
        if k_max < 0:
            raise ValueError(f"RL2.adapt: k_max must be >= 0, got {k_max}")
        trials = RecurrentSampler(sampler).sample(self.policy, tasks, episodes, k_max + 1,
                                                  on_episode=on_step)
        return Adaptation(trials.episodes, trials.sample_s)

    def eval_settings(self) -> dict[str, Any]:
        return {"deterministic": False}  # the policy explores through its action noise

    # -- training -----------------------------------------------------------------------------

    def train_iteration(self) -> IterationStats:
        """Sample trials of ``meta_batch_size`` tasks, then one PPO (or TRPO) update."""
        cfg = self.cfg
        tasks = self.sampler.sample_tasks(cfg.meta_batch_size, self.task_rng)
        trials = RecurrentSampler(self.sampler).sample(self.policy, tasks, cfg.trials_per_task,
                                                       cfg.episodes_per_trial)
        t0 = time.perf_counter()
        stats = self.update(trials.sequences())
        update_s = time.perf_counter() - t0
        stats.update(_episode_stats(trials))
        stats.update({
            "diagnostics/sim_diverged": float(trials.num_diverged),
            "diagnostics/policy_std": self.policy.std().detach().mean().item(),
            "time/sample_s": trials.sample_s,
            "time/update_s": update_s,
        })
        return IterationStats(trials.num_steps, stats, self.skip_reason)

    def advantages(self, sequences: EpisodeBatch, entropy: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`trial_advantages` with the config's settings and entropy bonus."""
        cfg = self.cfg
        return trial_advantages(sequences, cfg.entropy_coeff * entropy, cfg.gamma,
                                cfg.gae_lambda, cfg.baseline_reg, cfg.normalize_advantages)

    def update(self, sequences: EpisodeBatch) -> dict[str, float]:
        """One update on ``[1, B, L]`` trial sequences, in place on the policy; on NaN/Inf
        the policy (and Adam's state) stay as they were and ``skip_reason`` says why."""
        inputs, actions, mask = sequences.observations[0], sequences.actions[0], sequences.mask[0]
        with torch.no_grad():
            old = self.policy(inputs)
            old_log_probs = old.log_prob(actions)
            entropy = old.entropy()
        advantages, values, returns = self.advantages(sequences, entropy.unsqueeze(0))
        self.skip_reason = _first_nonfinite([("policy inputs", inputs),
                                             ("rewards", sequences.rewards),
                                             ("advantages", advantages)])
        if self.skip_reason is not None:
            return self.skipped_update_stats()
        common = {"losses/entropy": masked_task_mean(entropy.unsqueeze(0), mask.unsqueeze(0)
                                                     ).item(),
                  "diagnostics/baseline_explained_variance": explained_variance(
                      values, returns, sequences.mask)}
        step = self._ppo if self.cfg.optimizer == "ppo" else self._trpo
        stats = step(inputs, actions, mask, advantages[0], old, old_log_probs)
        if self.skip_reason is not None:
            return self.skipped_update_stats() | {
                "losses/surrogate_before": stats.get("losses/surrogate_before", float("nan"))}
        return common | stats | {"diagnostics/skipped_updates": 0.0}

    def _ppo(self, inputs: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
             advantages: torch.Tensor, old: Independent, old_log_probs: torch.Tensor
             ) -> dict[str, float]:
        cfg = self.cfg
        assert self.optimizer is not None
        params = list(self.policy.parameters())
        start = [p.detach().clone() for p in params]
        start_optimizer = copy.deepcopy(self.optimizer.state_dict())
        lengths = mask.sum(1)

        def loss_on(index: torch.Tensor) -> torch.Tensor:
            # a minibatch needs only its own longest trial: padding is at the end
            length = max(int(lengths[index].max().item()), 1)
            part = (slice(None), slice(0, length))
            log_probs = self.policy(inputs[index][part]).log_prob(actions[index][part])
            return ppo_loss(log_probs, old_log_probs[index][part], advantages[index][part],
                            mask[index][part], cfg.clip_eps)

        everything = torch.arange(inputs.shape[0], device=inputs.device)
        with torch.no_grad():
            loss_before = loss_on(everything).item()
        with torch.enable_grad():
            for epoch in range(cfg.ppo_epochs):
                order = torch.randperm(inputs.shape[0], generator=self.minibatch_generator)
                for number, index in enumerate(order.split(cfg.minibatch_size)):
                    index = index.to(inputs.device)
                    loss = loss_on(index)
                    reason = _first_nonfinite([("PPO loss", loss)])
                    if reason is None:
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        reason = _first_nonfinite([("PPO gradient", flat(
                            [p.grad if p.grad is not None else torch.zeros_like(p)
                             for p in params]))])
                    if reason is not None:  # back to where the update started
                        self.skip_reason = f"{reason} (epoch {epoch + 1}, minibatch {number + 1})"
                        _assign(params, flat(start))
                        self.optimizer.load_state_dict(start_optimizer)
                        return {"losses/surrogate_before": loss_before}
                    self.optimizer.step()
        with torch.no_grad():
            new = self.policy(inputs)
            log_probs = new.log_prob(actions)
            loss_after = ppo_loss(log_probs, old_log_probs, advantages, mask, cfg.clip_eps)
            kl = masked_task_mean(kl_divergence(old, new).unsqueeze(0), mask.unsqueeze(0))
            clipped = ((torch.exp(log_probs - old_log_probs) - 1.0).abs() > cfg.clip_eps)
            clip_fraction = masked_task_mean(clipped.to(mask.dtype).unsqueeze(0),
                                             mask.unsqueeze(0))
        return {"losses/surrogate_before": loss_before,
                "losses/surrogate_after": loss_after.item(),
                "losses/kl_after": kl.item(),
                "diagnostics/clip_fraction": clip_fraction.item()}

    def _trpo(self, inputs: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
              advantages: torch.Tensor, old: Independent, old_log_probs: torch.Tensor
              ) -> dict[str, float]:
        cfg = self.cfg
        params = list(self.policy.parameters())

        def surrogate() -> tuple[torch.Tensor, torch.Tensor]:
            new = self.policy(inputs)
            ratio = torch.exp(new.log_prob(actions) - old_log_probs)
            loss = -masked_task_mean((ratio * advantages).unsqueeze(0), mask.unsqueeze(0))[0]
            kl = masked_task_mean(kl_divergence(old, new).unsqueeze(0), mask.unsqueeze(0))[0]
            return loss, kl

        with torch.enable_grad():
            loss_before, _ = surrogate()
            gradient = flat(torch.autograd.grad(loss_before, params)).detach()
            self.skip_reason = _first_nonfinite([("surrogate loss", loss_before),
                                                 ("surrogate gradient", gradient)])
            if self.skip_reason is not None:
                return {"losses/surrogate_before": loss_before.item()}
            # at theta_old the mean KL's Hessian is the Fisher: double backprop through the GRU
            kl_gradient = torch.autograd.grad(surrogate()[1], params, create_graph=True)
            fvp = hessian_vector_product(kl_gradient, params, cfg.cg_damping)
            direction, residual = conjugate_gradient(fvp, gradient, cfg.cg_iters)
            try:
                full_step = trust_region_step(direction, fvp, cfg.max_kl)
            except FloatingPointError as err:
                self.skip_reason = f"TRPO step ({err})"
                return {"losses/surrogate_before": loss_before.item()}
            del fvp, kl_gradient
        if not torch.isfinite(full_step).all():
            self.skip_reason = "TRPO step (conjugate-gradient direction)"
            return {"losses/surrogate_before": loss_before.item()}
        old_vector = flat(params).detach().clone()

        def evaluate(fraction: float) -> tuple[float, float]:
            _assign(params, old_vector - fraction * full_step)
            with torch.no_grad():
                loss, kl = surrogate()
            return loss.item(), kl.item()

        result = backtracking_line_search(evaluate, loss_before.item(), cfg.max_kl,
                                          cfg.ls_max_steps, cfg.ls_backtrack_ratio)
        if not result.accepted:
            _assign(params, old_vector)
        return {"losses/surrogate_before": loss_before.item(),
                "losses/surrogate_after": result.loss, "losses/kl_after": result.kl,
                "diagnostics/line_search_steps": float(result.steps),
                "diagnostics/step_accepted": float(result.accepted),
                "diagnostics/step_fraction": result.step_fraction,
                "diagnostics/cg_residual": residual}

    def skipped_update_stats(self) -> dict[str, float]:
        """The update's statistics when it did not run (the same keys, NaN)."""
        keys = ["losses/surrogate_before", "losses/surrogate_after", "losses/kl_after",
                "losses/entropy", "diagnostics/baseline_explained_variance"]
        keys += (["diagnostics/clip_fraction"] if self.cfg.optimizer == "ppo" else
                 ["diagnostics/line_search_steps", "diagnostics/step_accepted",
                  "diagnostics/step_fraction", "diagnostics/cg_residual"])
        return {key: float("nan") for key in keys} | {"diagnostics/skipped_updates": 1.0}

    # -- console and checkpointing ------------------------------------------------------------

    def progress_line(self, iteration: int, total: int, env_steps: int, iteration_s: float,
                      stats: IterationStats) -> str:
        """Return of each episode of the trial, the update's KL and clip share (ppo) or
        line-search steps (trpo)."""
        row = stats.scalars
        width = len(str(total))
        last = self.cfg.episodes_per_trial - 1
        shown = range(last + 1) if last < 5 else (0, 1, last - 1, last)
        returns = " ".join(f"{row[f'meta_train/return/adapt_{k}']:.2f}" for k in shown)
        if self.cfg.optimizer == "ppo":
            update = f"clip {row['diagnostics/clip_fraction']:.2f}"
        else:
            update = f"ls {int(np.nan_to_num(row['diagnostics/line_search_steps'])):>2}"
        return (f"iter {iteration:>{width}}/{total} | env steps {env_steps:>11,} | return by "
                f"episode {returns} | kl {row['losses/kl_after']:.4f} {update} | "
                f"{iteration_s:5.1f}s")

    def state_dict(self) -> dict[str, Any]:
        state = {"policy": self.policy.state_dict(),
                 "task_rng": self.task_rng.bit_generator.state,
                 "minibatch_generator": self.minibatch_generator.get_state(),
                 "sampler": self.sampler.state_dict()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The policy; when training, Adam's state and the task, minibatch and sampler
        streams too (an evaluation build keeps its own sampler's)."""
        self.policy.load_state_dict(state["policy"])
        if self.training:
            self.task_rng.bit_generator.state = state["task_rng"]
            self.minibatch_generator.set_state(state["minibatch_generator"])
            self.sampler.load_state_dict(state["sampler"])
            if self.optimizer is not None:
                self.optimizer.load_state_dict(state["optimizer"])


def _episode_stats(trials: TrialBatch) -> dict[str, float]:
    """Mean return, length and termination share (and success rate, for families that
    report success) of episode ``k`` of the trials, and the gain from the first episode to
    the last."""
    stats = {}
    for k, batch in enumerate(trials.episodes):
        stats[f"meta_train/return/adapt_{k}"] = batch.episode_returns().mean().item()
        stats[f"diagnostics/episode_length/adapt_{k}"] = batch.lengths.float().mean().item()
        stats[f"diagnostics/terminated/adapt_{k}"] = batch.terminated.float().mean().item()
        if batch.success is not None:  # families that report success (Meta-World)
            stats[f"meta_train/success/adapt_{k}"] = batch.success.float().mean().item()
    last = len(trials.episodes) - 1
    if last > 0:
        stats["meta_train/return/gain"] = (stats[f"meta_train/return/adapt_{last}"]
                                           - stats["meta_train/return/adapt_0"])
    return stats


def build_rl2(ctx: BuildContext) -> RL2:
    """``algo.name: rl2``: the GRU policy of ``algo`` and RL² on the recurrent sampler."""
    cfg = ctx.cfg.algo
    policy = GaussianGRUPolicy(ctx.sampler.obs_dim, ctx.sampler.act_dim, cfg.hidden_size,
                               cfg.init_std, cfg.min_std).to(ctx.device)
    return RL2(policy, ctx.sampler, cfg, seed=ctx.seed, training=ctx.training)
