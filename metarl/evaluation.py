"""Meta-test evaluation: adaptation curves on held-out tasks.

Uses only the algorithm's ``adapt`` interface, so the same evaluator serves every
meta-learner. Tasks are drawn from a random stream independent of training.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from .config import ConfigError, config_from_dict
from .experiment import STREAM_EVAL_ACTIONS, STREAM_EVAL_TASKS, build, derive_seed, resolve_device

CSV_COLUMNS = ("method", "step", "mean_return", "stderr", "n_tasks")


@dataclass(frozen=True)
class AdaptationPoint:
    method: str
    step: int
    mean_return: float
    stderr: float
    n_tasks: int


def summarize_returns(method: str, step: int, task_returns: np.ndarray) -> AdaptationPoint:
    """Mean over tasks of per-task mean return, with the standard error across tasks."""
    n = len(task_returns)
    stderr = float(task_returns.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return AdaptationPoint(method, step, float(task_returns.mean()), stderr, n)


def write_adaptation_csv(path: Path, points: list[AdaptationPoint]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for p in points:
            writer.writerow([p.method, p.step, f"{p.mean_return:.6f}", f"{p.stderr:.6f}", p.n_tasks])


def plot_adaptation(path: Path, points: list[AdaptationPoint], title: str) -> None:
    """Return vs. number of gradient steps, one line with error bars per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method in dict.fromkeys(p.method for p in points):
        series = [p for p in points if p.method == method]
        ax.errorbar([p.step for p in series], [p.mean_return for p in series],
                    yerr=[p.stderr for p in series], marker="o", capsize=3, label=method)
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(sorted({p.step for p in points}))
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_run(run_dir: Path, num_tasks: int = 40, grad_steps: int = 3, seed: int = 0,
                 out_dir: Path | None = None, device: str = "cpu") -> tuple[Path, list[AdaptationPoint]]:
    """Adapt the run's final policy to ``num_tasks`` fresh tasks for 0..``grad_steps`` steps.

    Writes ``adaptation.csv``, ``adaptation.png`` and TensorBoard scalars
    ``meta_test/return/adapt_{k}`` to ``out_dir`` (default ``RUN_DIR/eval``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory")
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise CheckpointError(f"{run_dir} is not a metarl run directory "
                              "(expected config.yaml and checkpoints/ written by `metarl train`)")
    if num_tasks < 2:
        raise ConfigError(f"--tasks: need at least 2 tasks for a standard error, got {num_tasks}")
    if grad_steps < 0:
        raise ConfigError(f"--grad-steps: must be >= 0, got {grad_steps}")
    ckpt_path = latest_checkpoint(run_dir / "checkpoints")
    state = load_checkpoint(ckpt_path)
    cfg = config_from_dict(state["config"], source=str(ckpt_path))
    torch_device = resolve_device(device)
    parts = build(cfg, torch_device)
    if state.get("algo") != parts.algo.name:
        raise CheckpointError(f"{ckpt_path} was written by algorithm {state.get('algo')!r}, "
                              f"expected {parts.algo.name!r}")
    parts.algo.load_state_dict(state["algo_state"])
    parts.sampler.reseed(derive_seed(seed, STREAM_EVAL_ACTIONS))
    task_rng = np.random.default_rng(derive_seed(seed, STREAM_EVAL_TASKS))
    tasks = parts.sampler.sample_tasks(num_tasks, task_rng)
    batches = parts.algo.adapt(tasks, grad_steps, cfg.algo.eval_step_sizes,
                               cfg.sampler.eval_episodes_per_task).batches
    points = [summarize_returns("maml", k, b.episode_returns().mean(1).cpu().numpy())
              for k, b in enumerate(batches)]

    out_dir = Path(out_dir) if out_dir is not None else run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_adaptation_csv(out_dir / "adaptation.csv", points)
    plot_adaptation(out_dir / "adaptation.png", points,
                    f"{cfg.env.id}: {num_tasks} held-out tasks")
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(out_dir)) as writer:
        for p in points:
            writer.add_scalar(f"meta_test/return/adapt_{p.step}", p.mean_return, state["env_steps"])
        writer.add_scalar("meta_test/return/gain", points[-1].mean_return - points[0].mean_return,
                          state["env_steps"])
    (out_dir / "eval_info.yaml").write_text(yaml.safe_dump({
        "checkpoint": str(ckpt_path), "iteration": state["iteration"],
        "env_steps": state["env_steps"], "tasks": num_tasks, "grad_steps": grad_steps,
        "seed": seed, "episodes_per_task": cfg.sampler.eval_episodes_per_task,
        "step_sizes": cfg.algo.eval_step_sizes}, sort_keys=False))
    return out_dir, points
