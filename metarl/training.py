"""The meta-training loop: iterate, log, checkpoint."""

from __future__ import annotations

import math
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
from .samplers.ray_sampler import RaySampler


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


def _meta_test_due(cfg: Config, iteration: int) -> bool:
    """PEARL meta-tests its held-out tasks after the first iteration and every
    ``algo.eval_every`` iterations (MAML is evaluated by ``metarl eval`` only).

    The first iteration's row fixes ``progress.csv``'s columns, so it must hold the
    meta-test's; later rows leave them empty when no meta-test ran.
    """
    every = cfg.algo.eval_every
    return cfg.algo.name == "pearl" and every > 0 and (iteration % every == 0 or iteration == 1)


def _step_size_keys(cfg: Config) -> str:
    return ("algo.lr or algo.reward_scale" if cfg.algo.name == "pearl"
            else "algo.max_kl or algo.inner_step_size")


def pearl_progress_line(iteration: int, total: int, env_steps: int, iteration_s: float,
                        stats: dict[str, float]) -> str:
    """One console line for a PEARL iteration: training returns with prior and posterior z,
    critic loss, KL of the posterior and, when it ran, the meta-test curve."""
    width = len(str(total))
    line = (f"iter {iteration:>{width}}/{total} | env steps {env_steps:>11,} | return prior "
            f"{stats['meta_train/return/adapt_0']:8.2f} posterior "
            f"{stats.get('meta_train/return/posterior', math.nan):8.2f} | qf "
            f"{stats['losses/qf']:9.3g} kl_z {stats['losses/kl_z']:7.3f}")
    prefix = "meta_test/return/adapt_"
    test = sorted((k for k in stats if k.startswith(prefix)), key=lambda k: int(k[len(prefix):]))
    if test:
        line += " | test k=0.. " + " ".join(f"{stats[k]:.2f}" for k in test)
    return f"{line} | {iteration_s:5.1f}s"


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
    # the logger's console line shows MAML's quantities; PEARL's is printed here instead
    logger = RunLogger(run_dir, cfg.train.iterations, cfg.logging.tensorboard,
                       cfg.logging.console and cfg.algo.name != "pearl",
                       resume_after=done if resume else None, resume_env_steps=env_steps)
    if not resume:
        logger.log_hparams(cfg.to_dict())
    if cfg.logging.console:
        what = f"resuming at iteration {done + 1}" if resume else "training"
        print(f"metarl: {what} {cfg.algo.name} on {parts.family.id} for "
              f"{cfg.train.iterations} iterations on {device} ({torch.get_num_threads()} torch "
              f"threads); run directory {run_dir}", flush=True)
    start = time.perf_counter() - wall_before

    def checkpoint(iteration: int) -> Path:
        return save_checkpoint(checkpoint_path(run_dir / "checkpoints", iteration), {
            "algo": algo.name, "iteration": iteration, "env_steps": env_steps,
            "config": cfg.to_dict(), "algo_state": algo.state_dict(),
            "rng": _rng_state(), "wall_s": time.perf_counter() - start})

    skipped_in_a_row = 0
    try:
        with REQUESTS.deferred() as stop:
            for iteration in range(done + 1, cfg.train.iterations + 1):
                t0 = time.perf_counter()
                restarts_before = getattr(parts.sampler, "worker_restarts", 0)
                stats = algo.train_iteration()
                iteration_s = time.perf_counter() - t0
                if isinstance(parts.sampler, RaySampler):
                    stats["diagnostics/worker_restarts"] = (parts.sampler.worker_restarts
                                                            - restarts_before)
                steps = int(stats.pop("env_steps"))
                env_steps += steps
                stats["time/sps"] = steps / iteration_s
                if _meta_test_due(cfg, iteration):
                    t_test = time.perf_counter()
                    stats.update(algo.meta_test(
                        episodes_per_task=cfg.sampler.eval_episodes_per_task))
                    stats["time/meta_test_s"] = time.perf_counter() - t_test
                logger.log_iteration(iteration, env_steps, time.perf_counter() - start,
                                     iteration_s, stats)
                if cfg.logging.console and cfg.algo.name == "pearl":
                    print(pearl_progress_line(iteration, cfg.train.iterations, env_steps,
                                              iteration_s, stats), flush=True)
                skipped_in_a_row = skipped_in_a_row + 1 if algo.skip_reason else 0
                if algo.skip_reason:
                    print(f"metarl: iteration {iteration}: meta-update skipped ({algo.skip_reason}); "
                          f"{skipped_in_a_row} in a row, the run stops at "
                          f"train.max_skipped_updates={cfg.train.max_skipped_updates}", flush=True)
                last = iteration == cfg.train.iterations
                if iteration % cfg.train.checkpoint_every == 0 or last or stop.signum is not None \
                        or skipped_in_a_row >= cfg.train.max_skipped_updates:
                    path = checkpoint(iteration)
                if skipped_in_a_row >= cfg.train.max_skipped_updates:
                    raise TrainingStopped(
                        f"{skipped_in_a_row} meta-updates in a row were skipped (last: "
                        f"{algo.skip_reason}); the parameters never took a non-finite step, and "
                        f"{path} holds them. Lower {_step_size_keys(cfg)}, check the "
                        f"task family's rewards, then continue with: metarl train --resume "
                        f"{run_dir}", exit_status=EXIT_NONFINITE_UPDATES)
                if stop.signum is not None and not last:
                    raise TrainingStopped(
                        f"stopped by {stop.name} after iteration {iteration} of "
                        f"{cfg.train.iterations}; checkpoint {path}; continue with: "
                        f"metarl train --resume {run_dir}", exit_status=exit_after_signal(stop.signum))
    finally:
        logger.close()
        parts.sampler.close()  # stops Ray workers (and a Ray this run started)
    if cfg.logging.console:
        print(f"metarl: done in {time.perf_counter() - start:.1f}s; "
              f"evaluate with: metarl eval {run_dir}", flush=True)
    return run_dir
