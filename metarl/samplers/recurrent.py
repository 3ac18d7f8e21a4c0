"""Recurrent sampler: RL² trials, every (task, trial) simulation stepping together.

A *trial* is ``episodes_per_trial`` episodes of one task, run one after another in one
simulation by a recurrent policy whose hidden state carries over from episode to
episode. :class:`RecurrentSampler` runs ``len(tasks) * trials_per_task`` simulations at
once on the family's batched env (the one :class:`~metarl.samplers.BatchSampler` builds,
with its threads, seeding and random streams): one batched env call and one policy call
per step for all of them, no loop over tasks.

Episodes run in lock-step: episode ``k`` of every trial starts at the same env reset
(fresh initial-state seeds from the streams' ``reset_rng``) and lasts up to the horizon;
a simulation whose episode ended early idles, masked, until the others finish. Its hidden
state, previous action and previous reward are frozen while it idles and at a masked
(diverged) step, so the state at every real step is what a policy that saw only that
trial's real steps, in order, would have: :meth:`TrialBatch.sequences` rebuilds exactly
those sequences for the update.

Hidden state resets: the state is created once per :meth:`RecurrentSampler.sample` call
(``policy.initial_state``) and only ever replaced by the policy's own update at a real
step. Each call runs exactly one trial per simulation, so a reset happens at every trial
boundary and at no episode boundary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from .batch_sampler import BatchSampler, NonFiniteActionError, RolloutStreams, single_torch_thread
from .episode_batch import EpisodeBatch, EpisodeRecorder


class RecurrentPolicy(Protocol):
    """What the recurrent sampler needs from a policy (e.g.
    :class:`~metarl.policies.GaussianGRUPolicy`)."""

    def initial_state(self, n: int) -> torch.Tensor: ...

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@dataclass
class TrialBatch:
    """Trials of several tasks: episode ``k`` of every trial, and the policy's inputs.

    Attributes:
        episodes: ``K`` batches ``[T, N, H, ...]`` (``T`` tasks, ``N`` trials per task):
            batch ``k`` holds episode ``k`` of every trial.
        inputs: ``[T, N, K, H, input_dim]`` the RL² input the policy read at each step
            ``(o_t, a_prev, r_prev, d)``; meaningless on padding.
        sample_s: seconds spent rolling out.
    """

    episodes: list[EpisodeBatch]
    inputs: torch.Tensor
    sample_s: float = 0.0

    @property
    def num_steps(self) -> int:
        """Real environment steps."""
        return sum(e.num_steps for e in self.episodes)

    @property
    def num_diverged(self) -> int:
        """Episodes cut short by a diverged simulation."""
        return sum(e.num_diverged for e in self.episodes)

    def episode_returns(self) -> torch.Tensor:
        """``[T, N, K]`` undiscounted return of every episode."""
        return torch.stack([e.episode_returns() for e in self.episodes], dim=-1)

    def sequences(self) -> EpisodeBatch:
        """Every trial as one sequence of its real steps, in order: a batch of shape
        ``[1, T * N, L]`` (``L``: the longest trial's real steps) whose *observations*
        are the policy inputs, padded at the end only.

        Masked steps (an episode that ended before the horizon, a diverged step) are
        removed, so episode ``k + 1`` follows episode ``k``'s last real step directly:
        returns and GAE run over the whole trial, across its episode boundaries, and a
        recurrent policy run along a sequence sees what it saw while sampling.
        """
        num_trials = self.inputs.shape[0] * self.inputs.shape[1]

        def along_trial(values: torch.Tensor) -> torch.Tensor:  # [T, N, K, H, ...] -> [TN, KH, ...]
            return values.reshape(num_trials, -1, *values.shape[4:])

        mask = along_trial(torch.stack([e.mask for e in self.episodes], dim=2))
        # a stable sort of the padding flags puts every real step first, in order
        order = torch.sort((mask == 0).to(torch.int8), dim=1, stable=True).indices
        length = max(int(mask.sum(1).max().item()), 1)
        order = order[:, :length]

        def compact(values: torch.Tensor) -> torch.Tensor:
            index = order.view(*order.shape, *([1] * (values.dim() - 2)))
            return values.gather(1, index.expand(-1, -1, *values.shape[2:])).unsqueeze(0)

        def stacked(name: str) -> torch.Tensor:
            return along_trial(torch.stack([getattr(e, name) for e in self.episodes], dim=2))

        compact_mask = compact(mask)
        return EpisodeBatch(
            observations=compact(along_trial(self.inputs)) * compact_mask.unsqueeze(-1),
            actions=compact(stacked("actions")) * compact_mask.unsqueeze(-1),
            rewards=compact(stacked("rewards")) * compact_mask, mask=compact_mask,
            terminated=torch.zeros(1, num_trials, dtype=torch.bool, device=mask.device))


EpisodeCallback = Callable[[int, EpisodeBatch], None]


class RecurrentSampler:
    """Roll out a recurrent policy for whole trials in a sampler's batched env.

    ``sampler`` is a :class:`~metarl.samplers.BatchSampler` or a view of one with other
    random streams (``sampler.using(streams)``): its env, horizon, device and streams
    are used; its own ``sample`` is not.
    """

    def __init__(self, sampler: BatchSampler) -> None:
        self.sampler = sampler

    @torch.no_grad()
    def sample(self, policy: RecurrentPolicy, tasks: Sequence[Any], trials_per_task: int,
               episodes_per_trial: int, deterministic: bool = False,
               on_episode: EpisodeCallback | None = None) -> TrialBatch:
        """One trial of ``episodes_per_trial`` episodes in each of ``trials_per_task``
        simulations per task, all simulations at once.

        Each episode draws ``n`` initial-state seeds from the streams' ``reset_rng`` and
        then, unless ``deterministic`` (the mean action), its action noise
        ``[horizon, n, act_dim]`` from the streams' CPU generator in one draw, so a seed
        gives the same trials on every device. ``on_episode(k, batch)`` is called when
        episode ``k`` of every trial has ended.
        """
        if trials_per_task < 1 or episodes_per_trial < 1:
            raise ValueError(f"RecurrentSampler.sample: need trials_per_task >= 1 and "
                             f"episodes_per_trial >= 1, got {trials_per_task} and "
                             f"{episodes_per_trial}")
        start = time.perf_counter()
        with single_torch_thread(self.sampler.inference_device):
            episodes, inputs = self._sample(policy, tasks, trials_per_task, episodes_per_trial,
                                            deterministic, self.sampler.streams, on_episode)
        return TrialBatch(episodes, inputs, time.perf_counter() - start)

    def _sample(self, policy: RecurrentPolicy, tasks: Sequence[Any], trials_per_task: int,
                episodes_per_trial: int, deterministic: bool, streams: RolloutStreams,
                on_episode: EpisodeCallback | None) -> tuple[list[EpisodeBatch], torch.Tensor]:
        sampler = self.sampler
        num_tasks, horizon, device = len(tasks), sampler.horizon, sampler.inference_device
        policy, _ = sampler.for_inference(policy, {})
        obs_dim, act_dim = sampler.obs_dim, sampler.act_dim
        n = num_tasks * trials_per_task
        env = sampler.env(n)
        sim_tasks = [task for task in tasks for _ in range(trials_per_task)]
        hidden = policy.initial_state(n).to(device)  # the trial starts: the only reset
        dtype = hidden.dtype
        input_dim = obs_dim + act_dim + 2
        prev_action = np.zeros((n, act_dim), dtype=np.float32)
        prev_reward = np.zeros(n, dtype=np.float32)
        inputs_buf = np.zeros((episodes_per_trial, horizon, n, input_dim), dtype=np.float32)

        episodes = []
        for k in range(episodes_per_trial):
            seeds = streams.reset_rng.integers(0, 2**63 - 1, size=n)
            obs = env.reset(sim_tasks, seeds).reshape(n, obs_dim).astype(np.float32)
            noise = (None if deterministic else
                     torch.randn((horizon, n, act_dim), generator=streams.generator))
            # the paper's termination flag: 1 on the first step after an episode ended
            new_episode = np.full(n, float(k > 0), dtype=np.float32)
            recorder = EpisodeRecorder(horizon, num_tasks, trials_per_task, obs_dim, act_dim)
            for t in range(horizon):
                recorder.observe(t, obs)
                step_inputs = inputs_buf[k, t]
                step_inputs[:, :obs_dim] = obs
                step_inputs[:, obs_dim:obs_dim + act_dim] = prev_action
                step_inputs[:, -2] = prev_reward
                step_inputs[:, -1] = new_episode
                mean, std, next_hidden = policy.step(
                    torch.from_numpy(step_inputs).to(device, dtype), hidden)
                actions_t = mean if noise is None else mean + std * noise[t].to(device, dtype)
                actions = actions_t.cpu().numpy().astype(np.float32)
                active = recorder.active
                if not np.isfinite(actions[active]).all():
                    raise NonFiniteActionError(
                        f"task family '{sampler.family.id}': the recurrent policy produced "
                        f"non-finite actions at step {t} of episode {k}")
                actions[~active] = 0.0  # idle simulations read meaningless observations
                obs, reward, term, trunc, info = env.step(actions)
                obs, live = recorder.record(t, actions, obs.reshape(n, obs_dim), reward, term,
                                            trunc, info)
                obs = obs.astype(np.float32)
                # the memory advances only on real steps (idle and diverged ones freeze it)
                live_t = torch.from_numpy(live).to(device)
                hidden = torch.where(live_t.unsqueeze(-1), next_hidden, hidden)
                prev_action = np.where(live[:, None], actions, prev_action)
                prev_reward = np.where(live, reward, prev_reward).astype(np.float32)
                new_episode = np.where(live, 0.0, new_episode).astype(np.float32)
                if recorder.done:
                    break
            batch = recorder.batch(sampler.device, dtype)
            episodes.append(batch)
            if on_episode is not None:
                on_episode(k, batch)
        inputs = inputs_buf.reshape(episodes_per_trial, horizon, num_tasks, trials_per_task,
                                    input_dim)
        inputs = torch.from_numpy(np.ascontiguousarray(inputs.transpose(2, 3, 0, 1, 4)))
        return episodes, inputs.to(sampler.device, dtype)
