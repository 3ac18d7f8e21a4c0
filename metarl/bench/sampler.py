"""``metarl bench sampler``: our sampler against the physics limit and gymnasium's SyncVectorEnv.

Three measurements of the same family, tasks and horizon, in one process:

* ``raw``: ``mujoco.batch.Batch.step`` with fixed controls, no policy, no rewards,
  no storage; the physics engine's own speed and the ceiling for any sampler.
* ``metarl``: :class:`~metarl.samplers.BatchSampler` (batch backend) with a 2x100
  ReLU Gaussian policy, rewards, masks and episode storage.
* ``gym_sync``: the same sampler on the ``gym`` backend, a gymnasium
  ``SyncVectorEnv`` of the family's gymnasium env (fewer episodes: it is slow).
* ``cpu_inference`` (with a GPU ``device``): the ``metarl`` sampler with its policy
  on the GPU, once evaluating it there every step (``sampler.inference: device``,
  the ``metarl`` figure) and once on a CPU copy of its parameters made per call
  (``sampler.inference: cpu``): where rollout inference is faster for this size.
* ``ray`` (with ``backend="ray"``): the same tasks split across ``workers`` Ray
  actors (:class:`~metarl.samplers.ray_sampler.RaySampler`, one MuJoCo thread
  each; ``ray_to_batch`` is against ``metarl``, on whichever device), with its
  per-call overhead (wall time beyond the slowest actor's own
  rollout) and the bytes that travel per call.

Each is run ``repeats`` times, interleaved, and the fastest run is kept (noise on
a shared machine only ever slows a run down).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..samplers.ray_sampler import RaySampler

import numpy as np
import torch

from ..envs import MujocoBatchEnv, TaskFamilyError, get_task_family
from ..policies import GaussianMLPPolicy
from ..samplers import BatchSampler


@dataclass
class SamplerBenchResult:
    """Environment steps per second of each path, and the ratios the targets are set on."""

    raw_steps_per_s: float
    metarl_steps_per_s: float
    gym_sync_steps_per_s: float
    ratio_to_raw: float
    speedup_vs_gym_sync: float
    device: str | None = None  # set when the policy lives on a GPU
    cpu_inference_steps_per_s: float | None = None
    cpu_inference_to_device: float | None = None
    ray_workers: int | None = None
    ray_steps_per_s: float | None = None
    ray_to_batch: float | None = None
    ray_overhead_s: float | None = None
    ray_params_bytes: int | None = None
    ray_batch_bytes: int | None = None

    def to_dict(self) -> dict[str, float | str]:
        """The measured figures (the ray and cpu-inference ones only when measured)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _raw_steps_per_s(env: MujocoBatchEnv, tasks: list[Any], rng: np.random.Generator) -> float:
    env.reset(tasks, rng.integers(0, 2**31, size=env.num_envs))
    low, high = env.action_space.low, env.action_space.high
    env.batch.bind("ctrl")[...] = rng.uniform(low, high, size=(env.num_envs, low.shape[0]))
    frame_skip = env.family.frame_skip
    start = time.perf_counter()
    for _ in range(env.horizon):
        env.batch.step(nstep=frame_skip)
    return env.num_envs * env.horizon / (time.perf_counter() - start)


def _sampler_steps_per_s(sampler: BatchSampler, policy: GaussianMLPPolicy, tasks: list[Any],
                         episodes: int) -> float:
    params = policy.params()
    start = time.perf_counter()
    batch = sampler.sample(policy, params, tasks, episodes)
    return batch.num_steps / (time.perf_counter() - start)


def bench_sampler(family_id: str, tasks: int = 40, episodes: int = 20, horizon: int = 200,
                  threads: int = 0, gym_episodes: int = 1, repeats: int = 2, seed: int = 0,
                  env_kwargs: dict[str, Any] | None = None, backend: str = "batch",
                  workers: int = 2, device: str = "cpu", log: Callable[[str], None] = print
                  ) -> SamplerBenchResult:
    """Measure raw / metarl / gym-sync (and, with ``backend="ray"``, Ray; with a GPU
    ``device``, CPU-copy inference) env-steps per second for ``family_id``.

    ``tasks * episodes`` simulations run ``horizon`` steps in the raw, metarl and ray
    measurements; the gym-sync one uses ``tasks * gym_episodes`` simulations.
    """
    if backend not in ("batch", "ray"):
        raise ValueError(f"--backend must be batch or ray, got {backend!r}")
    for name, value in (("tasks", tasks), ("episodes", episodes), ("horizon", horizon),
                        ("gym_episodes", gym_episodes), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    family = get_task_family(family_id)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device(device)
    sampler = BatchSampler(family, env_kwargs, horizon, dev, seed, backend="batch",
                           threads=threads)
    gym_sampler = BatchSampler(family, env_kwargs, horizon, "cpu", seed, backend="gym")
    env = sampler.env(tasks * episodes)
    if not isinstance(env, MujocoBatchEnv):
        raise TaskFamilyError(f"task family '{family.id}' is not a MuJoCo batched family; "
                              "the raw physics measurement needs mujoco.batch")
    policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, (100, 100), "relu")
    dev_policy = copy.deepcopy(policy).to(dev)
    task_list = sampler.sample_tasks(tasks, rng)
    sim_tasks = [t for t in task_list for _ in range(episodes)]
    log(f"{family.id}: {tasks} tasks x {episodes} episodes x {horizon} steps, "
        f"{env.batch.nthread} physics threads, torch {torch.get_num_threads()} threads, "
        f"policy on {dev}")
    runs = {
        "raw": lambda: _raw_steps_per_s(env, sim_tasks, rng),
        "metarl": lambda: _sampler_steps_per_s(sampler, dev_policy, task_list, episodes),
        "gym_sync": lambda: _sampler_steps_per_s(gym_sampler, policy, task_list, gym_episodes),
    }
    if dev.type != "cpu":
        cpu_sampler = BatchSampler(family, env_kwargs, horizon, dev, seed, backend="batch",
                                   threads=threads, inference="cpu")
        cpu_sampler.close()
        cpu_sampler._envs = sampler._envs  # the same simulations: only inference differs
        runs["cpu_inference"] = lambda: _sampler_steps_per_s(cpu_sampler, dev_policy, task_list,
                                                             episodes)
        runs["metarl"]()  # untimed: the GPU's lazy initialisation is not charged to either
    ray_sampler = None
    if backend == "ray":
        log(f"  starting {workers} Ray workers")
        ray_sampler = RaySampler(family, env_kwargs, horizon, "cpu", seed, backend="batch",
                                 threads=1, num_workers=workers)
        _sampler_steps_per_s(ray_sampler, policy, task_list, episodes)  # workers build envs
        runs["ray"] = lambda: _sampler_steps_per_s(ray_sampler, policy, task_list, episodes)
    best = dict.fromkeys(runs, 0.0)
    overhead = float("inf")
    try:
        for r in range(repeats):
            for name, run in runs.items():
                value = run()
                best[name] = max(best[name], value)
                log(f"  repeat {r + 1}/{repeats}  {name:<8} {value:>10,.0f} env-steps/s")
                if name == "ray":
                    overhead = min(overhead, ray_sampler.last_timing.overhead_s)
        extra = {}
        if "cpu_inference" in best:
            extra.update(device=str(dev), cpu_inference_steps_per_s=best["cpu_inference"],
                         cpu_inference_to_device=best["cpu_inference"] / best["metarl"])
        if ray_sampler is not None:
            timing = ray_sampler.last_timing
            extra.update(ray_workers=workers, ray_steps_per_s=best["ray"],
                         ray_to_batch=best["ray"] / best["metarl"], ray_overhead_s=overhead,
                         ray_params_bytes=timing.params_bytes, ray_batch_bytes=timing.batch_bytes)
    finally:
        sampler.close()
        gym_sampler.close()
        if ray_sampler is not None:
            ray_sampler.close()
    return SamplerBenchResult(
        raw_steps_per_s=best["raw"], metarl_steps_per_s=best["metarl"],
        gym_sync_steps_per_s=best["gym_sync"],
        ratio_to_raw=best["metarl"] / best["raw"],
        speedup_vs_gym_sync=best["metarl"] / best["gym_sync"], **extra)
