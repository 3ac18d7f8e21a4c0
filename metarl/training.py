"""The meta-training loop: iterate, log, checkpoint."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import checkpoint_path, save_checkpoint
from .config import Config
from .experiment import build, default_run_dir, prepare_run_dir, resolve_device
from .logger import RunLogger


def _rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain containers (loadable with weights_only)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {k: v.tolist() if isinstance(v, np.ndarray) else v
                            for k, v in numpy_state["state"].items()}
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def train(cfg: Config, run_dir: Path | None = None) -> Path:
    """Meta-train with ``cfg``; returns the run directory."""
    device = resolve_device(cfg.train.device)
    run_dir = prepare_run_dir(run_dir or default_run_dir(cfg), cfg, device)
    parts = build(cfg, device)
    algo = parts.algo
    logger = RunLogger(run_dir, cfg.train.iterations, cfg.logging.tensorboard, cfg.logging.console)
    logger.log_hparams(cfg.to_dict())
    if cfg.logging.console:
        print(f"metarl: training {cfg.algo.name} on {parts.family.id} for "
              f"{cfg.train.iterations} iterations on {device}; run directory {run_dir}", flush=True)
    env_steps = 0
    start = time.perf_counter()
    try:
        for iteration in range(1, cfg.train.iterations + 1):
            t0 = time.perf_counter()
            stats = algo.train_iteration()
            iteration_s = time.perf_counter() - t0
            steps = int(stats.pop("env_steps"))
            env_steps += steps
            stats["time/sps"] = steps / iteration_s
            logger.log_iteration(iteration, env_steps, time.perf_counter() - start, iteration_s,
                                 stats)
            if iteration % cfg.train.checkpoint_every == 0 or iteration == cfg.train.iterations:
                save_checkpoint(checkpoint_path(run_dir / "checkpoints", iteration), {
                    "algo": algo.name, "iteration": iteration, "env_steps": env_steps,
                    "config": cfg.to_dict(), "algo_state": algo.state_dict(),
                    "rng": _rng_state()})
    finally:
        logger.close()
    if cfg.logging.console:
        print(f"metarl: done in {time.perf_counter() - start:.1f}s; "
              f"evaluate with: metarl eval {run_dir}", flush=True)
    return run_dir
