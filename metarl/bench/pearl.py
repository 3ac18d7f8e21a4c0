"""``metarl bench pearl``: PEARL gradient steps per second, on the asked device and on the CPU
in the same run.

A gradient step is what dominates a PEARL iteration (the reference takes 2000-4000 per
iteration): one soft actor-critic and encoder update over ``algo.meta_batch_size`` tasks of
``algo.batch_size`` transitions, with ``algo.embedding_batch_size`` context transitions per
task (reference scale, ``configs/pearl/half_cheetah_vel.yaml``: 16 tasks x 256 transitions,
3x300 networks). Replay and encoder buffers are filled with random transitions of the
family's shapes: a step's cost depends on the shapes, not the values, and collection would
only add simulation time that ``metarl bench sampler`` measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..algos.pearl.replay_buffer import Transitions
from ..config import DEFAULT_DEVICE, load_config
from ..experiment import build, resolve_device
from .flops import sync

DEFAULT_CONFIG = Path("configs/pearl/half_cheetah_vel.yaml")
FILLED = 1024  # transitions per task in each buffer: more than a step draws


@dataclass
class PearlBenchResult:
    """Gradient steps per second on ``device`` and on the CPU, and their ratio."""

    device: str
    steps_per_s: float
    cpu_steps_per_s: float
    torch_threads: int

    def to_dict(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"device": self.device, "steps_per_s": self.steps_per_s,
                                       "cpu_steps_per_s": self.cpu_steps_per_s,
                                       "cpu_torch_threads": self.torch_threads}
        out["speedup_vs_cpu"] = self.steps_per_s / self.cpu_steps_per_s
        return out


def _steps_per_s(cfg, device: torch.device, steps: int, warmup: int,
                 say: Callable[[str], None]) -> tuple[float, int]:
    parts = build(cfg, device)
    try:
        algo, a = parts.algo, cfg.algo
        rng = np.random.default_rng(0)
        obs_dim, act_dim = parts.sampler.obs_dim, parts.sampler.act_dim

        def random(*shape: int) -> torch.Tensor:
            return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

        for task in range(a.num_train_tasks):
            data = Transitions(random(FILLED, obs_dim), random(FILLED, act_dim).clamp(-1, 1),
                               random(FILLED), random(FILLED, obs_dim),
                               torch.zeros(FILLED))
            algo.replay_buffer.add(task, data)
            algo.encoder_buffer.add(task, data)
        ids = [rng.integers(0, a.num_train_tasks, a.meta_batch_size).tolist()
               for _ in range(steps + warmup)]
        for task_ids in ids[:warmup]:
            algo.gradient_step(task_ids)
        sync(device)
        start = time.perf_counter()
        for task_ids in ids[warmup:]:
            algo.gradient_step(task_ids)
        sync(device)
        rate = steps / (time.perf_counter() - start)
        say(f"{device}: {rate:,.1f} gradient steps/s ({torch.get_num_threads()} torch threads)")
        return rate, torch.get_num_threads()
    finally:
        parts.sampler.close()


def bench_pearl(config: Path | None = None, steps: int = 50, warmup: int = 5,
                overrides: Iterable[str] = (), device: str = DEFAULT_DEVICE,
                progress: Callable[[str], None] | None = None) -> PearlBenchResult:
    """Time ``steps`` gradient steps (after ``warmup``) on ``device`` and on the CPU."""
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {warmup}")
    config = config if config is not None else DEFAULT_CONFIG
    cfg = load_config(config, list(overrides))
    if cfg.algo.name != "pearl":
        raise ValueError(f"metarl bench pearl times PEARL; {config} sets algo.name "
                         f"{cfg.algo.name!r}")
    say = progress or (lambda _: None)
    target = resolve_device(device, "--device")
    say(f"PEARL gradient steps: {cfg.algo.meta_batch_size} tasks x {cfg.algo.batch_size} "
        f"transitions (+{cfg.algo.embedding_batch_size} context), networks "
        f"{cfg.algo.hidden_sizes}, encoder {cfg.algo.encoder_hidden_sizes}")
    rate, threads = _steps_per_s(cfg, target, steps, warmup, say)
    cpu_rate, cpu_threads = (rate, threads) if target.type == "cpu" else _steps_per_s(
        cfg, torch.device("cpu"), steps, warmup, say)
    return PearlBenchResult(str(target), rate, cpu_rate, cpu_threads)
