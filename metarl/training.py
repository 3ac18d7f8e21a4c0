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
    latest_loadable,
    prune_checkpoints,
    save_checkpoint,
)
from .config import Config, ConfigError
from .experiment import (
    build,
    check_writable,
    default_run_dir,
    prepare_run_dir,
    resolve_device,
    write_config,
)
from .errors import EXIT_NONFINITE_UPDATES, TrainingStopped, exit_after_signal
from .interrupts import REQUESTS
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
    path, state, _ = latest_loadable(Path(run_dir) / "checkpoints", "--resume")
    return path, state


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
        check_writable(run_dir)
        path, checkpoint = latest_valid_checkpoint(run_dir)
        if checkpoint.get("algo") != cfg.algorithm.name:
            raise CheckpointError(f"{path} was written by algorithm {checkpoint.get('algo')!r}, "
                                  f"the config says {cfg.algorithm.name!r}")
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
    logger = RunLogger(run_dir, cfg.logging.tensorboard,
                       resume_after=done if resume else None, resume_env_steps=env_steps)
    if not resume:
        logger.log_hparams(cfg.to_dict())
    if cfg.logging.console:
        what = f"resuming at iteration {done + 1}" if resume else "training"
        print(f"metarl: {what} {cfg.algorithm.name} on {parts.family.id} for "
              f"{cfg.train.iterations} iterations on {device} ({torch.get_num_threads()} torch "
              f"threads); run directory {run_dir}", flush=True)
    start = time.perf_counter() - wall_before

    def checkpoint(iteration: int) -> Path:
        return save_checkpoint(checkpoint_path(run_dir / "checkpoints", iteration), {
            "algo": cfg.algorithm.name, "iteration": iteration, "env_steps": env_steps,
            "config": cfg.to_dict(), "algo_state": algo.state_dict(),
            "rng": _rng_state(), "wall_s": time.perf_counter() - start})

    skipped_in_a_row = 0
    try:
        with REQUESTS.deferred() as stop:
            for iteration in range(done + 1, cfg.train.iterations + 1):
                t0 = time.perf_counter()
                result = algo.train_iteration()
                iteration_s = time.perf_counter() - t0
                stats = dict(result.scalars)
                env_steps += result.env_steps
                stats["time/sps"] = result.env_steps / iteration_s
                t_test = time.perf_counter()
                meta_test = algo.evaluate_during_training(iteration)
                if meta_test:
                    stats.update(meta_test)
                    stats["time/meta_test_s"] = time.perf_counter() - t_test
                stats.update(parts.sampler.diagnostics())  # e.g. Ray restarts, meta-test's too
                result.scalars = stats
                logger.log_iteration(iteration, env_steps, time.perf_counter() - start,
                                     iteration_s, stats)
                if cfg.logging.console:
                    print(algo.progress_line(iteration, cfg.train.iterations, env_steps,
                                             iteration_s, result), flush=True)
                skipped_in_a_row = skipped_in_a_row + 1 if result.skipped else 0
                if result.skipped:
                    print(f"metarl: iteration {iteration}: meta-update skipped "
                          f"({result.skip_reason}); "
                          f"{skipped_in_a_row} in a row, the run stops at "
                          f"train.max_skipped_updates={cfg.train.max_skipped_updates}", flush=True)
                last = iteration == cfg.train.iterations
                if iteration % cfg.train.checkpoint_every == 0 or last or stop.signum is not None \
                        or skipped_in_a_row >= cfg.train.max_skipped_updates:
                    path = checkpoint(iteration)
                    prune_checkpoints(run_dir / "checkpoints", path, cfg.train.keep_checkpoints)
                if skipped_in_a_row >= cfg.train.max_skipped_updates:
                    raise TrainingStopped(
                        f"{skipped_in_a_row} meta-updates in a row were skipped (last: "
                        f"{result.skip_reason}); the parameters never took a non-finite step, "
                        f"and {path} holds them. Lower {algo.step_size_keys}, check the "
                        f"task family's rewards, then continue with: metarl train --resume "
                        f"{run_dir}", exit_status=EXIT_NONFINITE_UPDATES)
                if stop.signum is not None and not last:
                    raise TrainingStopped(
                        f"stopped by {stop.name} after iteration {iteration} of "
                        f"{cfg.train.iterations}; checkpoint {path}; continue with: "
                        f"metarl train --resume {run_dir}", exit_status=exit_after_signal(stop.signum))
    finally:
        logger.close()
        algo.close()
        parts.sampler.close()  # stops Ray workers (and a Ray this run started)
    if cfg.logging.console:
        print(f"metarl: done in {time.perf_counter() - start:.1f}s; "
              f"evaluate with: metarl eval {run_dir}", flush=True)
    return run_dir
