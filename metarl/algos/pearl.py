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
3. ``num_train_steps_per_itr`` gradient steps, each over ``meta_batch`` tasks at once
   (see :mod:`.pearl_losses`).

Meta-test (:meth:`PEARL.adapt`): start from the prior, roll out one trajectory per
simulation, infer the posterior from all context collected so far, repeat.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import torch

from ..config import pearl_schedule_problem
from ..errors import NumericalError
from ..replay_buffer import MultiTaskReplayBuffer, Transitions
from ..samplers import BatchSampler, EpisodeBatch
from .pearl_losses import actor_value_loss, critic_loss
from .pearl_networks import PEARLNetworks


# Consecutive collection rounds a task may add no valid step before collection gives up: one
# round of simulations that all diverge at their first step can be bad luck with initial-state
# noise, three in a row is the family's dynamics (and the loop would otherwise never end).
MAX_ROUNDS_WITHOUT_STEPS = 3


class CollectionError(NumericalError, RuntimeError):
    """A training task's simulations keep producing no valid step (every one diverges at its
    first step), so collection cannot reach the steps the schedule asks for."""


class NonFiniteStateError(NumericalError, FloatingPointError):
    """The learner state (networks, target network or optimiser state) holds NaN/Inf and no
    finite snapshot exists to roll back to."""


def _to_cpu(obj: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def _non_finite(named: Sequence[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or Inf (one sync per device)."""
    groups: dict[torch.device, list[int]] = {}
    for i, (_, t) in enumerate(named):
        if t.is_floating_point() or t.is_complex():
            groups.setdefault(t.device, []).append(i)
    bad: set[int] = set()
    for indices in groups.values():
        flags = torch.stack([torch.isfinite(named[i][1]).all() for i in indices]).tolist()
        bad.update(i for i, ok in zip(indices, flags) if not ok)
    return [named[i][0] for i in sorted(bad)]


def _some(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 4 more``: a bounded list for one-line messages."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _doc(default: Any, doc: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class PEARLConfig:
    """PEARL hyperparameters; defaults are the reference code's (``configs/default.py`` of
    github.com/katerakelly/oyster). Its cheetah-vel config sets
    ``num_extra_rl_steps_posterior: 600`` and ``embedding_batch_size: 100``."""

    latent_size: int = _doc(5, "Size of the task latent z.")
    encoder_hidden_sizes: list[int] = _doc([200, 200, 200], "Context encoder hidden layers.")
    hidden_sizes: list[int] = _doc([300, 300, 300], "Actor, Q and V hidden layers.")
    use_next_obs_in_context: bool = _doc(False, "Context transitions include s' (for tasks "
                                         "that differ in dynamics).")
    lr: float = _doc(3e-4, "Adam learning rate of every network.")
    gamma: float = _doc(0.99, "Discount factor.")
    tau: float = _doc(0.005, "Polyak rate of the target V network.")
    reward_scale: float = _doc(5.0, "Rewards are multiplied by this in the Bellman target "
                               "(the inverse entropy temperature).")
    kl_lambda: float = _doc(0.1, "Weight of KL(q(z|c) || N(0, I)) in the encoder's loss.")
    policy_mean_reg: float = _doc(1e-3, "Penalty on the actor's squared pre-tanh mean.")
    policy_std_reg: float = _doc(1e-3, "Penalty on the actor's squared log-std.")
    batch_size: int = _doc(256, "Transitions per task in each actor-critic batch.")
    embedding_batch_size: int = _doc(64, "Context transitions per task given to the encoder.")
    meta_batch: int = _doc(16, "Tasks per gradient step.")
    num_train_tasks: int = _doc(100, "Size of the fixed set of training tasks.")
    num_test_tasks: int = _doc(30, "Size of the fixed set of held-out tasks.")
    num_tasks_sample: int = _doc(5, "Training tasks that collect data each iteration.")
    num_initial_steps: int = _doc(2000, "Steps per training task collected with z ~ prior "
                                  "before the first gradient step.")
    num_steps_prior: int = _doc(400, "Steps per sampled task with z ~ prior (both buffers).")
    num_steps_posterior: int = _doc(0, "Steps per sampled task with z ~ posterior (both "
                                    "buffers).")
    num_extra_rl_steps_posterior: int = _doc(400, "Steps per sampled task with z ~ posterior "
                                             "for the RL buffer only.")
    num_train_steps_per_itr: int = _doc(2000, "Gradient steps per iteration.")
    replay_buffer_size: int = _doc(1_000_000, "Capacity of each task's replay buffers.")
    meta_test_trajectories: int = _doc(3, "Trajectories per held-out task in meta-test (the "
                                       "reference's 600 eval steps at horizon 200).")

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        positive = ("latent_size", "batch_size", "embedding_batch_size", "meta_batch",
                    "num_train_tasks", "num_test_tasks", "num_tasks_sample",
                    "replay_buffer_size", "meta_test_trajectories", "lr")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"pearl.{name}: must be > 0, got {getattr(self, name)}")
        for name in ("num_initial_steps", "num_steps_prior", "num_steps_posterior",
                     "num_extra_rl_steps_posterior", "num_train_steps_per_itr", "kl_lambda",
                     "policy_mean_reg", "policy_std_reg", "reward_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"pearl.{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("gamma", "tau"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"pearl.{name}: must be in (0, 1], got {getattr(self, name)}")
        for name in ("encoder_hidden_sizes", "hidden_sizes"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ValueError(f"pearl.{name}: need a non-empty list of widths >= 1, got "
                                 f"{getattr(self, name)}")
        problem = pearl_schedule_problem(self, "pearl.")
        if problem:
            raise ValueError(problem)

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """One-line documentation of every setting (for config schemas and tables)."""
        return {f.name: f.metadata["doc"] for f in fields(cls)}


@dataclass
class ContextAdaptation:
    """What :meth:`PEARL.adapt` returns.

    Attributes:
        batches: one batch per trajectory index; batch ``k`` was rolled out with ``z``
            from the posterior given the ``k`` earlier trajectories of its simulation.
        sample_s: seconds spent rolling out.
    """

    batches: list[EpisodeBatch]
    sample_s: float

    def task_returns(self) -> np.ndarray:
        """``[trajectories, tasks]`` mean return per task at each trajectory index."""
        return np.stack([b.episode_returns().mean(1).cpu().numpy() for b in self.batches])


class PEARL:
    """PEARL meta-learner: ``train_iteration()`` for training, ``adapt()`` / ``meta_test()``
    for held-out tasks, ``state_dict()`` for exact resume."""

    name = "pearl"
    adapts_in_training = True

    def __init__(self, sampler: BatchSampler, cfg: PEARLConfig,
                 device: torch.device | str | None = None, seed: int = 0) -> None:
        cfg.check()
        self.sampler, self.cfg = sampler, cfg
        self.device = torch.device(device) if device is not None else sampler.device
        if self.device.type != sampler.device.type or None not in (
                self.device.index, sampler.device.index) and self.device != sampler.device:
            raise ValueError(f"PEARL: the sampler runs the policy on {sampler.device} but the "
                             f"networks are asked for {self.device}; build both on one device")
        seeds = np.random.SeedSequence(seed).spawn(5)

        def torch_seed(i: int) -> int:
            return int(seeds[i].generate_state(1, np.uint64)[0] >> np.uint64(1))

        task_set_rng = np.random.default_rng(seeds[0])
        self.train_tasks = sampler.sample_tasks(cfg.num_train_tasks, task_set_rng)
        self.test_tasks = sampler.sample_tasks(cfg.num_test_tasks, task_set_rng)
        self.task_rng = np.random.default_rng(seeds[1])  # which tasks collect and train
        # minibatches, z and SAC's action noise; meta-test draws z from its own stream
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(torch_seed(2))
        self.eval_generator = torch.Generator(device=self.device)
        self.eval_generator.manual_seed(torch_seed(3))

        obs_dim, act_dim = sampler.obs_dim, sampler.act_dim
        self.context_dim = obs_dim + act_dim + 1 + (obs_dim if cfg.use_next_obs_in_context else 0)
        space = sampler.env(1).action_space
        with torch.random.fork_rng(devices=[]):  # initialisation leaves global RNGs alone
            torch.manual_seed(torch_seed(4))
            self.nets = PEARLNetworks(obs_dim, act_dim, cfg.latent_size, self.context_dim,
                                      cfg.encoder_hidden_sizes, cfg.hidden_sizes,
                                      space.low, space.high).to(self.device)
        nets = self.nets
        self.critic_optimizer = torch.optim.Adam(
            [*nets.qf1.parameters(), *nets.qf2.parameters(), *nets.encoder.parameters()], cfg.lr)
        self.actor_optimizer = torch.optim.Adam(
            [*nets.policy.parameters(), *nets.vf.parameters()], cfg.lr)
        buffers = {"num_tasks": cfg.num_train_tasks, "obs_dim": obs_dim, "act_dim": act_dim,
                   "capacity": cfg.replay_buffer_size, "device": self.device}
        self.replay_buffer = MultiTaskReplayBuffer(**buffers)
        self.encoder_buffer = MultiTaskReplayBuffer(**buffers)
        self.initial_collected = False
        self.train_steps = 0
        self.skip_reason: str | None = None  # why the last iteration's update was rolled back
        # CPU copy of the learner after the last iteration that ended finite: what a rollback
        # restores. Only finite states are kept, and only one, off the accelerator.
        self._snapshot: dict[str, Any] | None = None

    # -- data collection ----------------------------------------------------------------------

    def context(self, transitions: Transitions) -> torch.Tensor:
        """Encoder input ``(s, a, r[, s'])`` per transition, ``[..., context_dim]``."""
        parts = [transitions.observations, transitions.actions,
                 transitions.rewards.unsqueeze(-1)]
        if self.cfg.use_next_obs_in_context:
            parts.append(transitions.next_observations)
        return torch.cat(parts, dim=-1)

    def transitions(self, batch: EpisodeBatch) -> Transitions:
        """``[T, E, H, ...]`` transitions of a sampled batch, actions normalized to [-1, 1]
        and ``terminals`` 1 at the last step of terminated episodes."""
        last = (batch.lengths.long() - 1).clamp(min=0).unsqueeze(-1)
        ended = (batch.terminated & (batch.lengths > 0)).to(batch.rewards.dtype).unsqueeze(-1)
        terminals = torch.zeros_like(batch.rewards).scatter(2, last, ended)
        return Transitions(batch.observations, self.nets.policy.normalize_action(batch.actions),
                           batch.rewards, batch.next_observations(), terminals)

    @torch.no_grad()
    def _latents(self, task_ids: Sequence[int], episodes: int,
                 from_prior: torch.Tensor) -> torch.Tensor:
        """``[tasks, episodes, latent]`` samples: ``N(0, I)`` where ``from_prior``, else
        from the posterior of a fresh context batch of the task's encoder buffer."""
        shape = (len(task_ids), episodes, self.cfg.latent_size)
        noise = torch.randn(shape, generator=self.generator, device=self.device)
        mean, var = torch.zeros(shape, device=self.device), torch.ones(shape, device=self.device)
        posterior = ~from_prior.to(self.device)
        if posterior.any():
            owners = [t for t, row in zip(task_ids, from_prior.tolist()) for p in row if not p]
            context = self.context(self.encoder_buffer.sample(
                owners, self.cfg.embedding_batch_size, self.generator))
            mean[posterior], var[posterior] = self.nets.encoder(context)
        return mean + var.sqrt() * noise

    def _collect(self, task_ids: Sequence[int], num_steps: int, posterior: bool,
                 add_to_encoder: bool, setting: str = "collection"
                 ) -> tuple[list[float], list[float], int, int]:
        """Collect at least ``num_steps`` steps for every task (whole episodes); returns
        the returns of prior-z and posterior-z episodes, steps and diverged episodes.

        Raises :class:`CollectionError` when a task adds no valid step in
        ``MAX_ROUNDS_WITHOUT_STEPS`` rounds in a row (``setting`` names the schedule key in
        the message); a task whose episodes are merely short keeps collecting.
        """
        horizon = self.sampler.horizon
        remaining = dict.fromkeys(task_ids, num_steps)
        stalled = dict.fromkeys(task_ids, 0)  # consecutive rounds without a valid step
        prior_returns: list[float] = []
        posterior_returns: list[float] = []
        steps = diverged = 0
        first_round = True
        while active := [t for t in task_ids if remaining[t] > 0]:
            # a posterior that must see the previous trajectory forces one episode per round
            episodes = 1 if posterior and add_to_encoder else max(
                math.ceil(remaining[t] / horizon) for t in active)
            from_prior = torch.full((len(active), episodes), not posterior)
            if posterior and first_round:
                from_prior[:, 0] = True
            z = self._latents(active, episodes, from_prior)
            batch = self.sampler.sample(self.nets.policy, {"z": z},
                                        [self.train_tasks[t] for t in active], episodes)
            data = self.transitions(batch)
            mask = batch.mask.bool()
            for i, task in enumerate(active):
                task_data = Transitions(*(x[i][mask[i]] for x in data))
                self.replay_buffer.add(task, task_data)
                if add_to_encoder:
                    self.encoder_buffer.add(task, task_data)
            lengths = batch.lengths.long().cpu()
            for i, task in enumerate(active):
                added = int(lengths[i].sum())
                remaining[task] -= added
                stalled[task] = 0 if added else stalled[task] + 1
            stuck = [t for t in active if stalled[t] >= MAX_ROUNDS_WITHOUT_STEPS]
            if stuck:
                raise CollectionError(self._stuck_message(stuck, remaining[stuck[0]], num_steps,
                                                          setting, episodes))
            returns = batch.episode_returns().cpu()
            prior_returns += returns[from_prior].tolist()
            posterior_returns += returns[~from_prior].tolist()
            steps += int(lengths.sum())
            diverged += batch.num_diverged
            first_round = False
        return prior_returns, posterior_returns, steps, diverged

    def _stuck_message(self, stuck: Sequence[int], remaining: int, num_steps: int,
                       setting: str, episodes: int) -> str:
        """One line naming the first stuck task, what is missing, why, and what to do."""
        task = stuck[0]
        others = f" (so did {len(stuck) - 1} more training task(s))" if len(stuck) > 1 else ""
        family = getattr(getattr(self.sampler, "family", None), "id", "?")
        return (f"PEARL: training task {task} {self.train_tasks[task]!r} of family '{family}' "
                f"still needs {remaining} of the {num_steps} steps of {setting}, but in its last "
                f"{MAX_ROUNDS_WITHOUT_STEPS} collection rounds every simulation "
                f"({episodes} per round) diverged at its first step (info['diverged'] or a "
                f"non-finite observation or reward), so no valid step was added{others}; check "
                f"the family's dynamics and env.kwargs for these task parameters (e.g. lower "
                f"the action range or time step)")

    # -- training -----------------------------------------------------------------------------

    def gradient_step(self, task_ids: Sequence[int]) -> torch.Tensor:
        """One SAC + encoder update on ``task_ids`` (one batched forward/backward per loss);
        returns the detached statistics ``[qf, vf, policy, kl, |z mean|, z var, q, log pi]``."""
        cfg, nets = self.cfg, self.nets
        batch = self.replay_buffer.sample(task_ids, cfg.batch_size, self.generator)
        context = self.context(self.encoder_buffer.sample(task_ids, cfg.embedding_batch_size,
                                                          self.generator))
        z_noise = torch.randn(len(task_ids), cfg.latent_size, generator=self.generator,
                              device=self.device)
        critic = critic_loss(nets, batch, context, z_noise, cfg.reward_scale, cfg.gamma,
                             cfg.kl_lambda)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic.loss.backward()
        self.critic_optimizer.step()

        action_noise = torch.randn(batch.actions.shape, generator=self.generator,
                                   device=self.device)
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

    def _learner_state(self) -> dict[str, Any]:
        """CPU copy of what a rollback restores: every network (the target V included) and
        both optimisers' states. On the CPU so that a snapshot costs no accelerator memory."""
        return _to_cpu({"nets": self.nets.state_dict(),
                        "critic": self.critic_optimizer.state_dict(),
                        "actor": self.actor_optimizer.state_dict()})

    def _load_learner_state(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.critic_optimizer.load_state_dict(state["critic"])
        self.actor_optimizer.load_state_dict(state["actor"])

    def _learner_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every tensor :meth:`_learner_state` saves, named for messages (optimiser state by
        the parameter it belongs to, e.g. ``critic_optimizer[qf1.net.0.weight].exp_avg``)."""
        names = {id(p): n for n, p in self.nets.named_parameters()}
        named = [(f"networks.{k}", v) for k, v in self.nets.state_dict().items()]
        for label, optimizer in (("critic_optimizer", self.critic_optimizer),
                                 ("actor_optimizer", self.actor_optimizer)):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    named += [(f"{label}[{names.get(id(p), '?')}].{k}", v)
                              for k, v in optimizer.state.get(p, {}).items()
                              if isinstance(v, torch.Tensor)]
        return named

    def _restore_if_non_finite(self) -> str | None:
        """Before an iteration: keep a first snapshot if none exists; if the learner already
        holds NaN/Inf (it was set from outside), restore the last finite snapshot and say so.
        Raises :class:`NonFiniteStateError` when there is nothing finite to restore."""
        bad = _non_finite(self._learner_tensors())
        if not bad:
            if self._snapshot is None:
                self._snapshot = self._learner_state()
            return None
        if self._snapshot is None:
            raise NonFiniteStateError(
                f"PEARL: the learner state holds NaN/Inf before this iteration ({_some(bad)}) "
                f"and no finite snapshot exists to roll back to (none is kept across a restart "
                f"or load_state_dict); resume from an earlier checkpoint whose state is finite, "
                f"or start the run afresh")
        self._load_learner_state(self._snapshot)
        return (f"non-finite state before the iteration ({_some(bad)}); rolled back to the "
                f"last finite state and skipped this iteration's gradient steps")

    def train_iteration(self) -> dict[str, float]:
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
        steps = diverged = 0
        if not self.initial_collected and cfg.num_initial_steps > 0:
            _, _, steps, diverged = self._collect(range(cfg.num_train_tasks),
                                                  cfg.num_initial_steps, False, True,
                                                  "pearl.num_initial_steps")
        self.initial_collected = True
        tasks = sorted(self.task_rng.choice(cfg.num_train_tasks, cfg.num_tasks_sample,
                                            replace=False).tolist())
        for task in tasks:
            self.encoder_buffer.clear(task)
        prior_returns, posterior_returns = [], []
        for num_steps, posterior, to_encoder, setting in (
                (cfg.num_steps_prior, False, True, "pearl.num_steps_prior"),
                (cfg.num_steps_posterior, True, True, "pearl.num_steps_posterior"),
                (cfg.num_extra_rl_steps_posterior, True, False,
                 "pearl.num_extra_rl_steps_posterior")):
            if num_steps > 0:
                prior, post, n, d = self._collect(tasks, num_steps, posterior, to_encoder,
                                                  setting)
                prior_returns += prior
                posterior_returns += post
                steps, diverged = steps + n, diverged + d
        t1 = time.perf_counter()

        # after a restore at the start, the iteration counts as skipped: no gradient steps
        num_updates = 0 if self.skip_reason else cfg.num_train_steps_per_itr
        totals = torch.zeros(8, device=self.device)
        for _ in range(num_updates):
            ids = self.task_rng.integers(0, cfg.num_train_tasks, cfg.meta_batch).tolist()
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
            "meta_train/return/adapt_0": mean(prior_returns),
            "time/sample_s": t1 - t0, "time/update_s": update_s,
            "env_steps": float(steps),
        }
        if cfg.num_steps_posterior + cfg.num_extra_rl_steps_posterior > 0:
            stats["meta_train/return/posterior"] = mean(posterior_returns)
        return stats

    # -- meta-test ----------------------------------------------------------------------------

    @torch.no_grad()
    def adapt(self, tasks: Sequence[Any], num_trajectories: int, episodes_per_task: int = 1,
              deterministic: bool = True, seed: int | None = None) -> ContextAdaptation:
        """Roll out ``num_trajectories`` trajectories one after another in each of
        ``episodes_per_task`` independent simulations per task: the first with
        ``z ~ N(0, I)``, each later one with ``z`` sampled from the posterior given all
        the simulation's earlier trajectories (the paper's meta-test). All simulations
        step together. ``deterministic`` acts with the actor's mean (as the reference
        evaluates); ``seed`` fixes the ``z`` draws, else a stream kept apart from
        training's is used.
        """
        if num_trajectories < 1:
            raise ValueError(f"PEARL.adapt: num_trajectories must be >= 1, got {num_trajectories}")
        generator = self.eval_generator
        if seed is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
        shape = (len(tasks), episodes_per_task, self.cfg.latent_size)
        contexts: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        batches: list[EpisodeBatch] = []
        sample_s = 0.0
        for k in range(num_trajectories):
            noise = torch.randn(shape, generator=generator, device=self.device)
            if k == 0:
                z = noise
            else:
                mean, var = self.nets.encoder(torch.cat(contexts, dim=2), torch.cat(masks, dim=2))
                z = mean + var.sqrt() * noise
            t0 = time.perf_counter()
            batch = self.sampler.sample(self.nets.policy, {"z": z}, tasks, episodes_per_task,
                                        deterministic=deterministic)
            sample_s += time.perf_counter() - t0
            batches.append(batch)
            contexts.append(self.context(self.transitions(batch)))
            masks.append(batch.mask)
        return ContextAdaptation(batches, sample_s)

    def meta_test(self, tasks: Sequence[Any] | None = None, num_trajectories: int | None = None,
                  episodes_per_task: int = 1, seed: int | None = None) -> dict[str, float]:
        """Mean return at each trajectory index over ``tasks`` (default: the held-out set),
        keyed ``meta_test/return/adapt_{k}``, plus ``meta_test/return/gain`` (last - first)."""
        tasks = self.test_tasks if tasks is None else tasks
        k_max = num_trajectories or self.cfg.meta_test_trajectories
        # the rollouts draw initial states from the sampler's stream: put it back, so that
        # training samples the same data whether or how often it is interrupted to meta-test
        sampler_state = copy.deepcopy(self.sampler.state_dict())
        try:
            returns = self.adapt(tasks, k_max, episodes_per_task, seed=seed).task_returns()
        finally:
            self.sampler.load_state_dict(sampler_state)
        stats = {f"meta_test/return/adapt_{k}": float(r.mean()) for k, r in enumerate(returns)}
        stats["meta_test/return/gain"] = float(returns[-1].mean() - returns[0].mean())
        return stats

    # -- checkpointing ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, both buffers and every random stream (exact resume)."""
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
