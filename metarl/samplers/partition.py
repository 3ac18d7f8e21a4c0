"""Sampling a meta-batch in slices of tasks: the shape of work that distributed backends run.

A :class:`PartitionedSampler` splits the tasks of each ``sample`` call into at most
``num_partitions`` contiguous slices and rolls each slice out with its own seed,
drawn from the sampler's stream. The result depends only on the seed and the
partition, never on where or in which order the slices run, so the Ray backend
(:class:`~metarl.samplers.ray_sampler.RaySampler`) reproduces this in-process
sampler bit for bit, and a slice whose worker died can be redone exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..envs import TaskFamilySpec
from .batch_sampler import BatchSampler, RolloutStreams
from .episode_batch import EpisodeBatch


@dataclass
class SliceJob:
    """One slice of a ``sample`` call: which of its tasks, and the slice's seed."""

    index: int
    part: slice
    tasks: list[Any]
    seed: int


def partition(num_tasks: int, num_parts: int) -> list[slice]:
    """Contiguous, near-equal slices of ``range(num_tasks)`` (larger ones first), none empty."""
    if num_tasks < 1 or num_parts < 1:
        raise ValueError(f"need at least one task and one part, got {num_tasks} and {num_parts}")
    bounds = np.cumsum([0] + [len(a) for a in np.array_split(np.arange(num_tasks), num_parts)])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def slice_params(policy: torch.nn.Module, params: dict[str, torch.Tensor], num_tasks: int,
                 part: slice) -> dict[str, torch.Tensor]:
    """The parameters that tasks ``part`` use.

    A tensor is per task when it has one more dimension than the policy's own
    parameter of that name (stacked parameters), or, for inputs the policy does
    not own (e.g. a latent per task), when its leading dimension is ``num_tasks``.
    Shared tensors are passed whole.
    """
    own = dict(policy.named_parameters())
    out = {}
    for name, value in params.items():
        if name in own:
            per_task = value.dim() == own[name].dim() + 1
        else:
            per_task = value.dim() > 0 and value.shape[0] == num_tasks
        out[name] = value[part] if per_task else value
    return out


def merge_batches(batches: Sequence[EpisodeBatch], device: torch.device) -> EpisodeBatch:
    """Concatenate slices' batches along the task dimension, on ``device``."""
    merged = {}
    for f in dataclasses.fields(EpisodeBatch):
        values = [getattr(b, f.name) for b in batches]
        merged[f.name] = (None if any(v is None for v in values)
                          else torch.cat([v.to(device) for v in values]))
    return EpisodeBatch(**merged)


class PartitionedSampler(BatchSampler):
    """A :class:`BatchSampler` that rolls a meta-batch out slice by slice.

    In-process it is the reference the distributed backends must reproduce;
    subclasses override :meth:`run_jobs` to run the slices elsewhere.
    """

    def __init__(self, family: TaskFamilySpec, env_kwargs: dict[str, Any] | None = None,
                 horizon: int | None = None, device: torch.device | str = "cpu",
                 seed: int = 0, backend: str = "batch", threads: int = 0,
                 task_in_obs: bool = False, num_partitions: int = 2) -> None:
        if num_partitions < 1:
            raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
        # slices run on CPU workers, whatever the device: inference is on the CPU
        super().__init__(family, env_kwargs, horizon, device, seed, backend, threads, task_in_obs,
                         inference="cpu")
        self.num_partitions = num_partitions

    def jobs(self, tasks: Sequence[Any], streams: RolloutStreams | None = None
             ) -> list[SliceJob]:
        """The slices of one ``sample`` call (draws their seeds from ``streams``, by default
        the sampler's own)."""
        parts = partition(len(tasks), self.num_partitions)
        seeds = (streams or self.streams).reset_rng.integers(0, 2**63 - 1, size=len(parts))
        return [SliceJob(i, p, list(tasks[p]), int(s))
                for i, (p, s) in enumerate(zip(parts, seeds))]

    def run_jobs(self, policy: torch.nn.Module, params: dict[str, torch.Tensor],
                 jobs: list[SliceJob], episodes_per_task: int, deterministic: bool = False
                 ) -> list[EpisodeBatch]:
        """Roll out every slice here, one after another (``params`` on the CPU)."""
        worker = self._local_worker()
        num_tasks = sum(len(job.tasks) for job in jobs)
        out = []
        for job in jobs:
            worker.reseed(job.seed)
            out.append(worker.sample(policy, slice_params(policy, params, num_tasks, job.part),
                                     job.tasks, episodes_per_task, deterministic))
        return out

    def _local_worker(self) -> BatchSampler:
        if not hasattr(self, "_worker"):
            self._worker = BatchSampler(self.family, self.env_kwargs, self.horizon, "cpu", 0,
                                        self.backend, self.threads, self.task_in_obs)
        return self._worker

    def _sample(self, policy: torch.nn.Module, params: dict[str, torch.Tensor],
                tasks: Sequence[Any], episodes_per_task: int,
                deterministic: bool, streams: RolloutStreams) -> EpisodeBatch:
        cpu_policy, cpu_params = self.for_inference(policy, params)
        cpu_params = {k: v.detach() for k, v in cpu_params.items()}  # they travel to workers
        batches = self.run_jobs(cpu_policy, cpu_params, self.jobs(tasks, streams), episodes_per_task,
                                deterministic)
        return merge_batches(batches, self.device)  # workers sampled in the params' dtype

    def close(self) -> None:
        if hasattr(self, "_worker"):
            self._worker.close()
            del self._worker
        super().close()

