"""PEARL: off-policy meta-RL with probabilistic context variables (Rakelly et al. 2019),
batched over tasks.

A context encoder turns transitions ``(s, a, r[, s'])`` of a task into a posterior
``q(z | c)`` over a latent task variable; soft actor-critic learns ``pi(a | s, z)``,
``Q(s, a, z)`` and ``V(s, z)``. One iteration (the reference code's schedule):

1. (first iteration) ``num_initial_steps`` per training task with ``z ~ N(0, I)``;
2. for ``num_tasks_sample`` training tasks: clear the task's encoder buffer, collect
   ``num_steps_prior`` steps with ``z ~ prior``, ``num_steps_posterior`` with ``z`` from
   the posterior of context drawn from the encoder buffer (re-inferred after each
   trajectory), and ``num_extra_rl_steps_posterior`` more with posterior ``z`` that go
   to the RL buffer only. Each phase starts from the prior (its first trajectory
   uses ``z ~ N(0, I)``), as in the reference. All sampled tasks, and every
   trajectory whose ``z`` does not depend on an earlier one, are one sampler call
   with a different ``z`` per simulation;
3. ``num_train_steps_per_itr`` gradient steps, each over ``meta_batch_size`` tasks at once
   (see :mod:`.losses`).

Meta-test (:meth:`PEARL.adapt`): start from the prior, roll out one trajectory per
simulation, infer the posterior from all context collected so far, repeat.

The fixed training and held-out tasks are drawn from the family with the run's seed
(``algo.task_set: sampled``) or are the family's reference set (``reference``: e.g.
oyster's seeded cheetah-vel velocities; :func:`task_sets`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from ...envs import TaskFamilyError
from ...samplers import BatchSampler, EpisodeBatch, RolloutStreams
from ...schema import ConfigError, check_settings
from ..base import Adaptation, BuildContext, IterationStats, MetaLearner, StepCallback
from .collection import MAX_ROUNDS_WITHOUT_STEPS, Collected, Collection, CollectionError
from .config import PEARLConfig
from .losses import actor_value_loss, critic_loss
from .networks import PEARLNetworks
from .replay_buffer import MultiTaskReplayBuffer
from .rollback import NonFiniteStateError, Rollback, _non_finite, _some

__all__ = ["MAX_ROUNDS_WITHOUT_STEPS", "PEARL", "CollectionError", "NonFiniteStateError",
           "PEARLConfig", "build_pearl", "task_sets"]


class PEARL(Collection, Rollback, MetaLearner):
    """PEARL on the :class:`~metarl.algos.MetaLearner` contract: ``train_iteration()``,
    ``adapt()`` (k = context trajectories), ``meta_test()`` on the fixed held-out tasks
    (``evaluate_during_training``), ``state_dict()`` for exact resume.

    ``training=False`` builds only the networks (no replay buffers, no optimisers): what
    evaluation needs to adapt. ``meta_test_episodes`` is the simulations per held-out task
    of the meta-test during training (``sampler.eval_episodes_per_task``).
    """

    name = "pearl"
    adaptation_units = "context trajectories"
    rollouts_per_task = "simulations"
    step_size_keys = "algo.lr or algo.reward_scale"

    def __init__(self, sampler: BatchSampler, cfg: PEARLConfig,
                 device: torch.device | str | None = None, seed: int = 0,
                 training: bool = True, meta_test_episodes: int = 1) -> None:
        check_settings(cfg, "algo.")
        self.sampler, self.cfg, self.training = sampler, cfg, training
        self.meta_test_episodes = meta_test_episodes
        self.device = torch.device(device) if device is not None else sampler.device
        if self.device.type != sampler.device.type or None not in (
                self.device.index, sampler.device.index) and self.device != sampler.device:
            raise ValueError(f"PEARL: the sampler runs the policy on {sampler.device} but the "
                             f"networks are asked for {self.device}; build both on one device")
        seeds = np.random.SeedSequence(seed).spawn(6)

        def torch_seed(i: int) -> int:
            return int(seeds[i].generate_state(1, np.uint64)[0] >> np.uint64(1))

        self.train_tasks, self.test_tasks = task_sets(sampler, cfg,
                                                      np.random.default_rng(seeds[0]))
        self.task_rng = np.random.default_rng(seeds[1])  # which tasks collect and train
        # minibatches, z and SAC's action noise; meta-test draws z from its own stream
        # CPU generators (draws are moved to the device): one seed gives the same minibatches,
        # latents and action noise on the CPU and on a GPU
        self.generator = torch.Generator()
        self.generator.manual_seed(torch_seed(2))
        self.eval_generator = torch.Generator()
        self.eval_generator.manual_seed(torch_seed(3))
        # the meta-test's initial states, the same at every meta-test; training's sampler
        # streams are never touched by it, however often it runs
        self.meta_test_seed = torch_seed(5)

        obs_dim, act_dim = sampler.obs_dim, sampler.act_dim
        self.context_dim = obs_dim + act_dim + 1 + (obs_dim if cfg.use_next_obs_in_context else 0)
        space = sampler.env(1).action_space
        with torch.random.fork_rng(devices=[]):  # initialisation leaves global RNGs alone
            torch.manual_seed(torch_seed(4))
            self.nets = PEARLNetworks(obs_dim, act_dim, cfg.latent_size, self.context_dim,
                                      cfg.encoder_hidden_sizes, cfg.hidden_sizes,
                                      space.low, space.high).to(self.device)
        self.initial_collected = False
        self.train_steps = 0
        self.skip_reason: str | None = None  # why the last iteration's update was rolled back
        # CPU copy of the learner after the last iteration that ended finite: what a rollback
        # restores. Only finite states are kept, and only one, off the accelerator.
        self._snapshot: dict[str, Any] | None = None
        if not training:
            return
        nets = self.nets
        self.critic_optimizer = torch.optim.Adam(
            [*nets.qf1.parameters(), *nets.qf2.parameters(), *nets.encoder.parameters()], cfg.lr)
        self.actor_optimizer = torch.optim.Adam(
            [*nets.policy.parameters(), *nets.vf.parameters()], cfg.lr)
        buffers = {"num_tasks": cfg.num_train_tasks, "obs_dim": obs_dim, "act_dim": act_dim,
                   "capacity": cfg.replay_buffer_size, "device": self.device}
        self.replay_buffer = MultiTaskReplayBuffer(**buffers)
        self.encoder_buffer = MultiTaskReplayBuffer(**buffers)

    # -- training -----------------------------------------------------------------------------

    def gradient_step(self, task_ids: Sequence[int]) -> torch.Tensor:
        """One SAC + encoder update on ``task_ids`` (one batched forward/backward per loss);
        returns the detached statistics ``[qf, vf, policy, kl, |z mean|, z var, q, log pi]``."""
        cfg, nets = self.cfg, self.nets
        batch = self.replay_buffer.sample(task_ids, cfg.batch_size, self.generator)
        context = self.context(self.encoder_buffer.sample(task_ids, cfg.embedding_batch_size,
                                                          self.generator))
        z_noise = torch.randn(len(task_ids), cfg.latent_size,
                              generator=self.generator).to(self.device)
        critic = critic_loss(nets, batch, context, z_noise, cfg.reward_scale, cfg.gamma,
                             cfg.kl_lambda)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic.loss.backward()
        self.critic_optimizer.step()

        action_noise = torch.randn(batch.actions.shape, generator=self.generator).to(self.device)
        actor = actor_value_loss(nets, batch, critic.z, action_noise, cfg.policy_mean_reg,
                                 cfg.policy_std_reg)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor.loss.backward()
        self.actor_optimizer.step()
        nets.update_target(cfg.tau)
        self.train_steps += 1
        return torch.stack([critic.qf, actor.vf, actor.policy, critic.kl.mean(),
                            critic.posterior_mean.abs().mean(), critic.posterior_var.mean(),
                            critic.q_pred.mean(), actor.log_pi.mean()]).detach()

    def train_iteration(self) -> IterationStats:
        """Collect data, then take ``num_train_steps_per_itr`` gradient steps; returns
        scalar statistics keyed by TensorBoard tag (the same keys every iteration).

        If any loss, parameter, target-network or optimiser tensor became NaN/Inf, the
        iteration's updates are rolled back (the collected data stays) to the state after the
        last iteration that ended finite, and ``skip_reason`` says so. A state that is already
        non-finite when the iteration starts is rolled back the same way before collecting,
        and that iteration takes no gradient step; with no finite state to return to,
        :class:`NonFiniteStateError` is raised. :class:`CollectionError` is raised when a
        task's simulations produce no valid step.
        """
        cfg = self.cfg
        t0 = time.perf_counter()
        self.skip_reason = self._restore_if_non_finite()
        initial = Collected()  # its episodes' returns are not the iteration's
        if not self.initial_collected and cfg.num_initial_steps > 0:
            initial = self._collect(range(cfg.num_train_tasks), cfg.num_initial_steps, False,
                                    True, "algo.num_initial_steps")
        self.initial_collected = True
        tasks = sorted(self.task_rng.choice(cfg.num_train_tasks, cfg.num_tasks_sample,
                                            replace=False).tolist())
        for task in tasks:
            self.encoder_buffer.clear(task)
        collected = Collected()
        for num_steps, posterior, to_encoder, setting in (
                (cfg.num_steps_prior, False, True, "algo.num_steps_prior"),
                (cfg.num_steps_posterior, True, True, "algo.num_steps_posterior"),
                (cfg.num_extra_rl_steps_posterior, True, False,
                 "algo.num_extra_rl_steps_posterior")):
            if num_steps > 0:
                collected += self._collect(tasks, num_steps, posterior, to_encoder, setting)
        steps = initial.steps + collected.steps
        diverged = initial.diverged + collected.diverged
        t1 = time.perf_counter()

        # after a restore at the start, the iteration counts as skipped: no gradient steps
        num_updates = 0 if self.skip_reason else cfg.num_train_steps_per_itr
        totals = torch.zeros(8, device=self.device)
        for _ in range(num_updates):
            ids = self.task_rng.integers(0, cfg.num_train_tasks, cfg.meta_batch_size).tolist()
            totals += self.gradient_step(ids)
        means = (totals / num_updates).tolist() if num_updates else [float("nan")] * len(totals)
        if num_updates:
            names = ("qf", "vf", "policy", "kl_z")
            bad_losses = [n for n, v in zip(names, means) if not math.isfinite(v)]
            bad_tensors = _non_finite(self._learner_tensors())
            if bad_losses or bad_tensors:
                what = (f"losses ({', '.join(bad_losses)})" if bad_losses else
                        f"state ({_some(bad_tensors)})")
                self.skip_reason = f"non-finite {what}; this iteration's gradient steps were " \
                                   f"rolled back"
                assert self._snapshot is not None  # kept before the iteration's updates
                self._load_learner_state(self._snapshot)  # finite: only finite ones are kept
            else:
                self._snapshot = self._learner_state()
        update_s = time.perf_counter() - t1

        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        stats = {
            "losses/qf": means[0], "losses/vf": means[1], "losses/policy": means[2],
            "losses/kl_z": means[3],
            "diagnostics/z_mean_abs": means[4], "diagnostics/z_var": means[5],
            "diagnostics/q_pred": means[6], "diagnostics/log_pi": means[7],
            "diagnostics/skipped_updates": float(self.skip_reason is not None),
            "diagnostics/sim_diverged": float(diverged),
            "meta_train/return/adapt_0": mean(collected.prior_returns),
            "time/sample_s": t1 - t0, "time/update_s": update_s,
        }
        # every iteration rolls out prior-z episodes: they tell whether the family reports
        # success, so the keys are the same every iteration
        reports_success = bool(collected.prior_success)
        if reports_success:  # families that report success (Meta-World)
            stats["meta_train/success/adapt_0"] = mean(collected.prior_success)
        if cfg.num_steps_posterior + cfg.num_extra_rl_steps_posterior > 0:
            stats["meta_train/return/posterior"] = mean(collected.posterior_returns)
            if reports_success:
                stats["meta_train/success/posterior"] = mean(collected.posterior_success)
        return IterationStats(steps, stats, self.skip_reason)

    # -- meta-test ----------------------------------------------------------------------------

    @torch.no_grad()
    def adapt(self, tasks: Sequence[Any], k_max: int, episodes: int, sampler: BatchSampler,
              *, seed: int | None = None, on_step: StepCallback | None = None,
              deterministic: bool = True) -> Adaptation:
        """Roll out ``k_max + 1`` trajectories one after another in each of ``episodes``
        independent simulations per task: the first with ``z ~ N(0, I)``, trajectory ``k``
        with ``z`` sampled from the posterior given the simulation's ``k`` earlier ones (the
        paper's meta-test). All simulations step together. ``deterministic`` acts with the
        actor's mean (as the reference evaluates); ``seed`` fixes the ``z`` draws, else a
        stream kept apart from training's is used.
        """
        if k_max < 0:
            raise ValueError(f"PEARL.adapt: k_max must be >= 0, got {k_max}")
        generator = self.eval_generator
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        shape = (len(tasks), episodes, self.cfg.latent_size)
        contexts: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        batches: list[EpisodeBatch] = []
        sample_s = 0.0
        for k in range(k_max + 1):
            noise = torch.randn(shape, generator=generator).to(self.device)
            if k == 0:
                z = noise
            else:
                mean, var = self.nets.encoder(torch.cat(contexts, dim=2), torch.cat(masks, dim=2))
                z = mean + var.sqrt() * noise
            t0 = time.perf_counter()
            batch = sampler.sample(self.nets.policy, {"z": z}, tasks, episodes,
                                   deterministic=deterministic)
            sample_s += time.perf_counter() - t0
            batches.append(batch)
            if on_step is not None:
                on_step(k, batch)
            contexts.append(self.context(self.transitions(batch)))
            masks.append(batch.mask)
        return Adaptation(batches, sample_s)

    def meta_test(self, tasks: Sequence[Any] | None = None, k_max: int | None = None,
                  episodes: int | None = None, seed: int | None = None) -> dict[str, float]:
        """Mean return after k = 0..``k_max`` context trajectories over ``tasks`` (default:
        the fixed held-out set and ``meta_test_trajectories - 1``), keyed
        ``meta_test/return/adapt_{k}``, plus ``meta_test/return/gain`` (last - first) and,
        for families that report success, ``meta_test/success/adapt_{k}``.

        Its rollouts draw from streams of their own, restarted at every meta-test, so
        training samples the same data whether or how often it is interrupted to meta-test.
        """
        tasks = self.test_tasks if tasks is None else tasks
        k_max = self.cfg.meta_test_trajectories - 1 if k_max is None else k_max
        sampler = self.sampler.using(RolloutStreams(self.meta_test_seed))
        adaptation = self.adapt(tasks, k_max, episodes or self.meta_test_episodes, sampler,
                                seed=seed)
        returns = adaptation.task_returns()
        stats = {f"meta_test/return/adapt_{k}": float(r.mean()) for k, r in enumerate(returns)}
        stats["meta_test/return/gain"] = float(returns[-1].mean() - returns[0].mean())
        success = adaptation.task_success()
        if success is not None:  # families that report success (Meta-World)
            stats |= {f"meta_test/success/adapt_{k}": float(r.mean())
                      for k, r in enumerate(success)}
        return stats

    def eval_settings(self) -> dict[str, Any]:
        return {"deterministic": True}  # adapt() acts with the actor's mean, as the reference

    def held_out_tasks(self) -> tuple[list[Any], str] | None:
        """With ``algo.task_set: reference``, the reference's held-out tasks (meta-tested
        during training too); with ``sampled`` none: evaluation draws fresh tasks."""
        if self.cfg.task_set != "reference":
            return None
        return list(self.test_tasks), "the reference held-out set (algo.task_set: reference)"

    def evaluate_during_training(self, iteration: int) -> dict[str, float]:
        """The meta-test after the first iteration and every ``algo.eval_every``."""
        every = self.cfg.eval_every
        if every > 0 and (iteration % every == 0 or iteration == 1):
            return self.meta_test()
        return {}

    def progress_line(self, iteration: int, total: int, env_steps: int, iteration_s: float,
                      stats: IterationStats) -> str:
        """Training returns with prior and posterior z, critic loss, KL of the posterior and,
        when it ran, the meta-test curve."""
        row = stats.scalars
        width = len(str(total))
        line = (f"iter {iteration:>{width}}/{total} | env steps {env_steps:>11,} | return prior "
                f"{row['meta_train/return/adapt_0']:8.2f} posterior "
                f"{row.get('meta_train/return/posterior', math.nan):8.2f} | qf "
                f"{row['losses/qf']:9.3g} kl_z {row['losses/kl_z']:7.3f}")
        prefix = "meta_test/return/adapt_"
        test = sorted((k for k in row if k.startswith(prefix)), key=lambda k: int(k[len(prefix):]))
        if test:
            line += " | test k=0.. " + " ".join(f"{row[k]:.2f}" for k in test)
        return f"{line} | {iteration_s:5.1f}s"

    # -- checkpointing ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, both buffers and every random stream (exact resume); an
        evaluation build has only its networks."""
        if not self.training:
            return {"networks": self.nets.state_dict()}
        return {"networks": self.nets.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "replay_buffer": self.replay_buffer.state_dict(),
                "encoder_buffer": self.encoder_buffer.state_dict(),
                "generator": self.generator.get_state(),
                "eval_generator": self.eval_generator.get_state(),
                "task_rng": self.task_rng.bit_generator.state,
                "sampler": self.sampler.state_dict(),
                "initial_collected": self.initial_collected,
                "train_steps": self.train_steps,
                "tasks": [repr(t) for t in self.train_tasks + self.test_tasks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Everything :meth:`state_dict` saved; an evaluation build (``training=False``)
        loads the networks only."""
        if not self.training:
            self.nets.load_state_dict(state["networks"])
            return
        tasks = [repr(t) for t in self.train_tasks + self.test_tasks]
        if state["tasks"] != tasks:
            raise ValueError("PEARL.load_state_dict: the checkpoint's train/test task sets differ "
                             "from this run's (different seed, family kwargs or task counts)")
        self.nets.load_state_dict(state["networks"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.replay_buffer.load_state_dict(state["replay_buffer"])
        self.encoder_buffer.load_state_dict(state["encoder_buffer"])
        self.generator.set_state(state["generator"])
        self.eval_generator.set_state(state["eval_generator"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.sampler.load_state_dict(state["sampler"])
        self.initial_collected = bool(state["initial_collected"])
        self.train_steps = int(state["train_steps"])
        self._snapshot = None  # belonged to the replaced state; the next iteration checks anew


def task_sets(sampler: BatchSampler, cfg: PEARLConfig, rng: np.random.Generator
              ) -> tuple[list[Any], list[Any]]:
    """The fixed training and held-out tasks ``cfg.task_set`` asks for.

    ``sampled``: ``num_train_tasks`` draws from the family, then ``num_test_tasks`` from
    its held-out tasks (its test split where it has one), with ``rng``. ``reference``: the family's :class:`~metarl.envs.ReferenceTaskSet` (the
    first ``num_train_tasks`` of its training and last ``num_test_tasks`` of its held-out
    tasks); :class:`ConfigError` when the family has none or fewer tasks than asked.
    """
    if cfg.task_set == "sampled":
        return (sampler.sample_tasks(cfg.num_train_tasks, rng),
                sampler.sample_test_tasks(cfg.num_test_tasks, rng))
    family = getattr(getattr(sampler, "family", None), "id", "this task family")
    try:
        reference = sampler.reference_task_set()
    except TaskFamilyError as err:
        raise ConfigError(f"algo.task_set: 'reference' with {family}: {err} (use 'sampled' "
                          "for these kwargs)") from None
    if reference is None:
        raise ConfigError(f"algo.task_set: 'reference' needs a family with a reference task "
                          f"set, and {family} has none (the PEARL* families have one); use "
                          "'sampled'")
    for key, asked, have, kind in (("num_train_tasks", cfg.num_train_tasks,
                                    len(reference.train), "training"),
                                   ("num_test_tasks", cfg.num_test_tasks,
                                    len(reference.test), "held-out")):
        if asked > have:
            raise ConfigError(f"algo.{key}: {asked} is more than the {have} {kind} tasks of "
                              f"{family}'s reference set (algo.task_set: reference; "
                              f"{reference.source})")
    return reference.split(cfg.num_train_tasks, cfg.num_test_tasks)


def build_pearl(ctx: BuildContext) -> PEARL:
    """``algo.name: pearl``: its networks, and (when training) buffers and optimisers."""
    return PEARL(ctx.sampler, ctx.cfg.algo, ctx.device, seed=ctx.seed, training=ctx.training,
                 meta_test_episodes=ctx.cfg.sampler.eval_episodes_per_task)
