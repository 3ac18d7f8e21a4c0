"""Sampler that steps every (task, episode) simulation of a meta-batch at once."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch

from ..envs import BatchTaskEnv, ReferenceTaskSet, TaskFamilySpec
from ..envs.wrappers import TaskInObservation
from .episode_batch import EpisodeBatch, EpisodeRecorder
from .gym_vector import GymVectorEnv

BACKENDS = ("batch", "gym")
INFERENCE = ("device", "cpu")  # where rollouts evaluate the policy (sampler.inference)


@contextlib.contextmanager
def single_torch_thread(device: torch.device) -> Iterator[None]:
    """Run CPU policy inference on one torch thread while simulations step.

    Torch's idle OpenMP workers spin-wait after each small matmul and take CPU from
    MuJoCo's stepping threads: on 2 cores, 2 torch threads made the sampler reach
    0.73x the physics-only speed, 1 thread 1.0x (``metarl bench sampler``).
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class NonFiniteActionError(RuntimeError):
    """The policy produced NaN or Inf actions (its parameters have diverged)."""


class SamplerPolicy(Protocol):
    """What the sampler needs from a policy.

    ``mean_std(obs, params)`` takes ``obs`` shaped ``[tasks, episodes, obs_dim]`` and
    returns the mean and standard deviation of a Gaussian over (pre-squashing)
    actions. A policy may also define ``actions_from_noise(mean, std, noise)`` to map
    standard-normal noise to actions (e.g. ``tanh`` squashing); without it the action
    is ``mean + std * noise``.
    """

    def mean_std(self, obs: torch.Tensor, params: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]: ...


class RolloutStreams:
    """The random streams of rollouts: action noise (a CPU ``torch.Generator``, so a seed
    gives the same noise on every device) and the initial-state seeds of the simulations.

    A sampler owns one; whoever needs rollouts independent of it (evaluation, a
    meta-test during training) passes its own to :meth:`BatchSampler.using`.
    """

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.reset_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(),
                "reset_rng": self.reset_rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if "reset_rng" in state:
            self.reset_rng.bit_generator.state = state["reset_rng"]


class SamplerView:
    """A sampler's envs with other random streams: ``sample`` draws from ``streams`` and
    leaves the sampler's own untouched; everything else is the sampler's."""

    def __init__(self, sampler: "BatchSampler", streams: RolloutStreams) -> None:
        self.sampler, self.streams = sampler, streams

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sampler, name)

    def sample(self, policy: SamplerPolicy, params: dict[str, torch.Tensor],
               tasks: Sequence[Any], episodes_per_task: int,
               deterministic: bool = False) -> EpisodeBatch:
        return self.sampler.sample(policy, params, tasks, episodes_per_task, deterministic,
                                   streams=self.streams)

    def using(self, streams: RolloutStreams) -> "SamplerView":
        return self.sampler.using(streams)

    # the view's streams, never the sampler's own
    def reseed(self, seed: int) -> None:
        self.streams = RolloutStreams(seed)

    def state_dict(self) -> dict[str, Any]:
        return self.streams.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streams.load_state_dict(state)


class BatchSampler:
    """Roll out a functional policy in ``len(tasks) * episodes_per_task`` simulations.

    Backends: ``batch`` steps the family's batched env (one vectorized call per step
    for all simulations; ``threads`` threads for MuJoCo families); ``gym`` steps a
    gymnasium ``SyncVectorEnv`` of the family's gymnasium env. At each step the
    policy is evaluated once for all simulations (with per-task parameters when
    ``params`` are stacked). Action noise comes from a CPU ``torch.Generator`` and
    initial-state noise from per-simulation seeds, so a seed gives the same samples
    on CPU and GPU and with either backend.

    With ``task_in_obs`` every env is wrapped in
    :class:`~metarl.envs.wrappers.TaskInObservation` (the paper's *oracle* baseline).

    A simulation that diverges (non-finite values, or MuJoCo's instability reset)
    ends its episode before the diverged step, which is masked out; it is flagged
    in ``EpisodeBatch.diverged``.
    """

    def __init__(self, family: TaskFamilySpec, env_kwargs: dict[str, Any] | None = None,
                 horizon: int | None = None, device: torch.device | str = "cpu",
                 seed: int = 0, backend: str = "batch", threads: int = 0,
                 task_in_obs: bool = False, inference: str = "device") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"sampler backend must be one of {BACKENDS}, got {backend!r}")
        if inference not in INFERENCE:
            raise ValueError(f"sampler inference must be one of {INFERENCE}, got {inference!r}")
        self.inference = inference
        self.family = family
        self.env_kwargs = dict(env_kwargs or {})
        self.horizon = horizon or family.max_episode_steps
        self.device = torch.device(device)
        self.backend, self.threads = backend, threads
        self.task_in_obs = task_in_obs
        self.streams = RolloutStreams(seed)
        self._envs: dict[int, BatchTaskEnv] = {}
        probe = self.env(1)
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        self.act_dim = int(np.prod(probe.action_space.shape))

    @property
    def inference_device(self) -> torch.device:
        """Where rollouts evaluate the policy: the sampler's device, or the CPU when
        ``inference="cpu"`` (the batch still comes back on the sampler's device)."""
        return torch.device("cpu") if self.inference == "cpu" else self.device

    def for_inference(self, policy: Any, params: dict[str, torch.Tensor]
                      ) -> tuple[Any, dict[str, torch.Tensor]]:
        """``policy`` and ``params`` on :attr:`inference_device`: themselves when they are
        there already, else detached CPU copies, made once per sampling call (the policy's
        own weights too, which PEARL's actor reads)."""
        if self.inference == "device" or all(
                t.device.type == "cpu" for t in [*params.values(), *policy.parameters()]):
            return policy, params
        return (copy.deepcopy(policy).cpu(), {k: v.detach().cpu() for k, v in params.items()})

    def reseed(self, seed: int) -> None:
        """Restart this sampler's own action-noise and initial-state streams from ``seed``
        (remote workers do this for every slice they are given)."""
        self.streams = RolloutStreams(seed)

    def using(self, streams: RolloutStreams) -> SamplerView:
        """This sampler drawing from ``streams`` instead of its own."""
        return SamplerView(self, streams)

    def env(self, num_envs: int) -> BatchTaskEnv:
        """The (cached) env of ``num_envs`` simulations this sampler steps."""
        if num_envs not in self._envs:
            if self.backend == "batch":
                env = self.family.make_batch_env(num_envs, horizon=self.horizon,
                                                 threads=self.threads, **self.env_kwargs)
            else:
                env = GymVectorEnv(self.family, num_envs, self.horizon, **self.env_kwargs)
            if self.task_in_obs:
                env = TaskInObservation(env)
            self._envs[num_envs] = env
        return self._envs[num_envs]

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """``n`` tasks from the family's distribution."""
        return self.env(1).sample_tasks(n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """``n`` held-out tasks: the family's test split where it has one (Meta-World's
        held-out classes or goals), else draws like :meth:`sample_tasks`."""
        return self.env(1).sample_test_tasks(n, rng)

    def reference_task_set(self) -> ReferenceTaskSet | None:
        """The family's fixed reference train/test tasks, or ``None`` when it has none."""
        return self.env(1).reference_task_set()

    @torch.no_grad()
    def sample(self, policy: SamplerPolicy, params: dict[str, torch.Tensor],
               tasks: Sequence[Any], episodes_per_task: int,
               deterministic: bool = False, streams: RolloutStreams | None = None
               ) -> EpisodeBatch:
        """Roll out ``episodes_per_task`` episodes of every task; returns a padded batch
        (floating tensors in the parameters' dtype, on the sampler's device).

        ``params`` are whatever the policy's ``mean_std`` takes: for
        :class:`~metarl.policies.GaussianMLPPolicy`, shared (one policy for all tasks)
        or stacked with a leading dimension of ``len(tasks)`` (one policy per task);
        for :class:`~metarl.policies.tanh_gaussian.TanhGaussianPolicy`, a latent ``z``
        per simulation.
        ``deterministic`` acts with zero noise (the mean action, squashed if the policy
        squashes) and leaves the action-noise stream untouched. ``streams`` replaces the
        sampler's own random streams for this call.
        """
        with single_torch_thread(self.inference_device):
            return self._sample(policy, params, tasks, episodes_per_task, deterministic,
                                streams or self.streams)

    def _sample(self, policy: SamplerPolicy, params: dict[str, torch.Tensor],
                tasks: Sequence[Any], episodes_per_task: int,
                deterministic: bool, streams: RolloutStreams) -> EpisodeBatch:
        num_tasks, horizon = len(tasks), self.horizon
        n = num_tasks * episodes_per_task
        policy, params = self.for_inference(policy, params)
        device = self.inference_device
        env = self.env(n)
        seeds = streams.reset_rng.integers(0, 2**63 - 1, size=n)
        sim_tasks = [task for task in tasks for _ in range(episodes_per_task)]
        obs = env.reset(sim_tasks, seeds).reshape(n, self.obs_dim)
        recorder = EpisodeRecorder(horizon, num_tasks, episodes_per_task, self.obs_dim,
                                   self.act_dim)
        actions_from_noise = getattr(policy, "actions_from_noise", None)
        dtype = next(iter(params.values())).dtype
        noise_shape = (num_tasks, episodes_per_task, self.act_dim)
        for t in range(horizon):
            obs_t = torch.from_numpy(recorder.observe(t, obs)).to(device, dtype)
            mean, std = policy.mean_std(obs_t.view(num_tasks, episodes_per_task, self.obs_dim),
                                        params)
            if deterministic:
                noise = torch.zeros_like(mean)
            else:
                noise = torch.randn(noise_shape, generator=streams.generator).to(device, dtype)
            actions = (mean + std * noise if actions_from_noise is None
                       else actions_from_noise(mean, std, noise))
            actions = actions.reshape(n, self.act_dim).cpu().numpy()
            if not np.isfinite(actions).all():
                raise NonFiniteActionError(f"task family '{self.family.id}': the policy produced "
                                           f"non-finite actions at step {t}")
            obs, reward, term, trunc, info = env.step(actions)
            obs, _ = recorder.record(t, actions, obs.reshape(n, self.obs_dim), reward, term,
                                     trunc, info)
            if recorder.done:
                break
        return recorder.batch(self.device, dtype)

    def diagnostics(self) -> dict[str, float]:
        """Counters of the sampler's own health since the last call, keyed by TensorBoard tag
        (none here; the Ray backend counts worker restarts)."""
        return {}

    def close(self) -> None:
        """Release the envs (threads, vector envs)."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def state_dict(self) -> dict[str, Any]:
        return self.streams.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streams.load_state_dict(state)
