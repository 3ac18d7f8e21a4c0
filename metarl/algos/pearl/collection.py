"""PEARL's data collection: rolling out the latent-conditioned actor in training tasks and
filling the replay and encoder buffers, as the reference code's schedule asks
(``rlkit/core/rl_algorithm.py`` of github.com/katerakelly/oyster, ``collect_data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ...errors import NumericalError
from ...samplers import EpisodeBatch
from .replay_buffer import Transitions

# Consecutive collection rounds a task may add no valid step before collection gives up: one
# round of simulations that all diverge at their first step can be bad luck with initial-state
# noise, three in a row is the family's dynamics (and the loop would otherwise never end).
MAX_ROUNDS_WITHOUT_STEPS = 3


class CollectionError(NumericalError, RuntimeError):
    """A training task's simulations keep producing no valid step (every one diverges at its
    first step), so collection cannot reach the steps the schedule asks for."""


@dataclass
class Collected:
    """What collection rolled out: per-episode returns and success flags of the prior-z and
    posterior-z episodes (success only for families that report it), steps and diverged
    episodes. ``+=`` adds another collection's."""

    prior_returns: list[float] = field(default_factory=list)
    posterior_returns: list[float] = field(default_factory=list)
    prior_success: list[float] = field(default_factory=list)
    posterior_success: list[float] = field(default_factory=list)
    steps: int = 0
    diverged: int = 0

    def __iadd__(self, other: "Collected") -> "Collected":
        self.prior_returns += other.prior_returns
        self.posterior_returns += other.posterior_returns
        self.prior_success += other.prior_success
        self.posterior_success += other.posterior_success
        self.steps += other.steps
        self.diverged += other.diverged
        return self


class Collection:
    """Mixed into :class:`~metarl.algos.pearl.learner.PEARL`: context, transitions and
    collection. Uses the learner's ``cfg``, ``nets``, ``sampler``, ``train_tasks``,
    ``generator``, ``device`` and buffers."""

    cfg: Any
    nets: Any
    sampler: Any
    train_tasks: list[Any]
    generator: torch.Generator
    device: torch.device
    replay_buffer: Any
    encoder_buffer: Any

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
        noise = torch.randn(shape, generator=self.generator).to(self.device)
        mean, var = torch.zeros(shape, device=self.device), torch.ones(shape, device=self.device)
        posterior = ~from_prior.to(self.device)
        if posterior.any():
            owners = [t for t, row in zip(task_ids, from_prior.tolist()) for p in row if not p]
            context = self.context(self.encoder_buffer.sample(
                owners, self.cfg.embedding_batch_size, self.generator))
            mean[posterior], var[posterior] = self.nets.encoder(context)
        return mean + var.sqrt() * noise

    def _collect(self, task_ids: Sequence[int], num_steps: int, posterior: bool,
                 add_to_encoder: bool, setting: str = "collection") -> Collected:
        """Collect at least ``num_steps`` steps for every task (whole episodes); returns
        the returns (and success) of prior-z and posterior-z episodes, steps and diverged
        episodes.

        Raises :class:`CollectionError` when a task adds no valid step in
        ``MAX_ROUNDS_WITHOUT_STEPS`` rounds in a row (``setting`` names the schedule key in
        the message); a task whose episodes are merely short keeps collecting.
        """
        horizon = self.sampler.horizon
        remaining = dict.fromkeys(task_ids, num_steps)
        stalled = dict.fromkeys(task_ids, 0)  # consecutive rounds without a valid step
        out = Collected()
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
            out.prior_returns += returns[from_prior].tolist()
            out.posterior_returns += returns[~from_prior].tolist()
            if batch.success is not None:
                success = batch.success.float().cpu()
                out.prior_success += success[from_prior].tolist()
                out.posterior_success += success[~from_prior].tolist()
            out.steps += int(lengths.sum())
            out.diverged += batch.num_diverged
            first_round = False
        return out

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
