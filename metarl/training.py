"""The meta-training loop: iterate, log, checkpoint."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import (
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .config import Config, ConfigError
from .experiment import build, default_run_dir, prepare_run_dir, resolve_device, write_config
from .logger import RunLogger


def _rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain containers (loadable with weights_only)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {k: v.tolist() if isinstance(v, np.ndarray) else v
                            for k, v in numpy_state["state"].items()}
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {k: np.asarray(v, dtype=np.uint32) if k == "key" else v
                            for k, v in numpy_state["state"].items()}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])


def latest_valid_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``run_dir`` that loads; corrupted ones are reported and skipped."""
    found = list_checkpoints(Path(run_dir) / "checkpoints")
    if not found:
        raise CheckpointError(f"--resume: no checkpoints (iter_*.pt) in {Path(run_dir) / 'checkpoints'}")
    for path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as err:
            print(f"metarl: skipping unusable checkpoint: {err}", flush=True)
    raise CheckpointError(f"--resume: none of the {len(found)} checkpoints in "
                          f"{Path(run_dir) / 'checkpoints'} could be loaded")


def train(cfg: Config, run_dir: Path | None = None, resume: bool = False) -> Path:
    """Meta-train with ``cfg``; returns the run directory.

    With ``resume``, ``run_dir`` is an existing run: training continues from its
    newest loadable checkpoint (algorithm state and every RNG stream restored) up to
    ``cfg.train.iterations``; on CPU the result is identical to an uninterrupted run.
    """
    device = resolve_device(cfg.train.device)
    checkpoint: dict[str, Any] | None = None
    if resume:
        if run_dir is None:
            raise ConfigError("--resume needs a run directory")
        path, checkpoint = latest_valid_checkpoint(run_dir)
        if checkpoint.get("algo") != cfg.algo.name:
            raise CheckpointError(f"{path} was written by algorithm {checkpoint.get('algo')!r}, "
                                  f"the config says {cfg.algo.name!r}")
    else:
        run_dir = prepare_run_dir(run_dir or default_run_dir(cfg), cfg, device)
    parts = build(cfg, device)
    algo = parts.algo
    done, env_steps, wall_before = 0, 0, 0.0
    if checkpoint is not None:
        algo.load_state_dict(checkpoint["algo_state"])
        _set_rng_state(checkpoint["rng"])
        done, env_steps = int(checkpoint["iteration"]), int(checkpoint["env_steps"])
        wall_before = float(checkpoint.get("wall_s", 0.0))
        if done >= cfg.train.iterations:
            raise ConfigError(f"--resume: {run_dir} is already at iteration {done} of "
                              f"train.iterations={cfg.train.iterations}; raise it with "
                              "--set train.iterations=N")
        write_config(run_dir, cfg)  # the run continues under the (possibly overridden) config
    logger = RunLogger(run_dir, cfg.train.iterations, cfg.logging.tensorboard, cfg.logging.console,
                       resume_after=done if resume else None)
    if not resume:
        logger.log_hparams(cfg.to_dict())
    if cfg.logging.console:
        what = f"resuming at iteration {done + 1}" if resume else "training"
        print(f"metarl: {what} {cfg.algo.name} on {parts.family.id} for "
              f"{cfg.train.iterations} iterations on {device}; run directory {run_dir}", flush=True)
    start = time.perf_counter() - wall_before
    try:
        for iteration in range(done + 1, cfg.train.iterations + 1):
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
                    "rng": _rng_state(), "wall_s": time.perf_counter() - start})
    finally:
        logger.close()
    if cfg.logging.console:
        print(f"metarl: done in {time.perf_counter() - start:.1f}s; "
              f"evaluate with: metarl eval {run_dir}", flush=True)
    return run_dir
