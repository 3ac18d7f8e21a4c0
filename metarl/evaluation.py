"""Meta-test evaluation: adaptation curves on held-out tasks.

Uses only the algorithm's ``adapt`` interface, so the same evaluator serves every
meta-learner. Tasks are drawn from a random stream independent of training.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import yaml

from . import __version__
from .algos import MAMLTRPO
from .checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from .config import Config, ConfigError, config_from_dict
from .experiment import (
    STREAM_EVAL_ACTIONS,
    STREAM_EVAL_LATENTS,
    STREAM_EVAL_TASKS,
    STREAM_RANDOM_INIT,
    Components,
    build,
    derive_seed,
    resolve_device,
)
from .policies import GaussianMLPPolicy

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


def plot_adaptation(path: Path, points: list[AdaptationPoint], title: str,
                    xlabel: str = "number of gradient steps") -> None:
    """Return vs. adaptation step, one line with error bars per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method in dict.fromkeys(p.method for p in points):
        series = [p for p in points if p.method == method]
        ax.errorbar([p.step for p in series], [p.mean_return for p in series],
                    yerr=[p.stderr for p in series], marker="o", capsize=3, label=method)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average return")
    ax.set_xticks(sorted({p.step for p in points}))
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


METHODS = ("pretrained", "random", "oracle")
DEFAULT_STEP_GRID = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8)
BASELINE_CONFIGS = "configs/baselines/"


@dataclass
class LoadedRun:
    path: Path
    checkpoint: Path
    state: dict[str, Any]
    cfg: Config
    parts: Components


def load_run(run_dir: Path, device: torch.device, what: str = "run") -> LoadedRun:
    """Rebuild a run's components from its newest checkpoint, or explain why it cannot."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{what} {run_dir} is not a directory")
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise CheckpointError(f"{what} {run_dir} is not a metarl run directory "
                              "(expected config.yaml and checkpoints/ written by `metarl train`)")
    ckpt_path = latest_checkpoint(run_dir / "checkpoints")
    state = load_checkpoint(ckpt_path)
    try:
        cfg = config_from_dict(state["config"], source=str(ckpt_path))
    except ConfigError as err:
        written_by = _written_by(run_dir)
        raise CheckpointError(f"{ckpt_path}: its config does not fit metarl {__version__}"
                              f"{written_by} ({err})") from None
    parts = build(cfg, device)
    if state.get("algo") != parts.algo.name:
        raise CheckpointError(f"{ckpt_path} was written by algorithm {state.get('algo')!r}, "
                              f"but its config says {parts.algo.name!r}")
    parts.algo.load_state_dict(state["algo_state"])
    return LoadedRun(run_dir, ckpt_path, state, cfg, parts)


def _written_by(run_dir: Path) -> str:
    try:
        version = json.loads((run_dir / "metadata.json").read_text()).get("metarl_version")
    except (OSError, ValueError, AttributeError):
        return ""
    return f"; the run was written by metarl {version}" if version else ""


def parse_baselines(text: str | None) -> dict[str, Path | None]:
    """``"pretrained,random,oracle=runs/x"`` -> ``{method: run directory or None}``."""
    chosen: dict[str, Path | None] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, path = item.partition("=")
        if name not in METHODS:
            raise ConfigError(f"--baselines: unknown method {name!r}; choose from "
                              f"{', '.join(METHODS)} (pretrained and oracle may be given as "
                              "NAME=RUN_DIR)")
        if name == "random" and path:
            raise ConfigError("--baselines: random takes no run directory (it is a freshly "
                              "initialised policy)")
        chosen[name] = Path(path) if path else None
    return chosen


def _is_baseline_of(cfg: Config, other: Config, method: str) -> bool:
    return (other.algo.name == "trpo" and other.env.id == cfg.env.id
            and other.env.kwargs == cfg.env.kwargs and other.env.horizon == cfg.env.horizon
            and other.env.task_in_observation == (method == "oracle"))


def find_baseline_run(method: str, run_dir: Path, cfg: Config) -> Path:
    """The newest trained ``method`` run next to ``run_dir`` for the same family and kwargs."""
    from .config import load_config

    found = []
    for candidate in sorted(Path(run_dir).resolve().parent.iterdir()):
        if candidate == Path(run_dir).resolve() or not (candidate / "config.yaml").is_file():
            continue
        try:
            other = load_config(candidate / "config.yaml")
        except ConfigError:
            continue
        ckpts = list_checkpoints(candidate / "checkpoints")
        if ckpts and _is_baseline_of(cfg, other, method):
            found.append((ckpts[-1].stat().st_mtime, candidate))
    if not found:
        kind = "with env.task_in_observation: true" if method == "oracle" else "on the task mixture"
        raise CheckpointError(
            f"--baselines {method}: no trained TRPO run {kind} for {cfg.env.id} (same env.kwargs "
            f"and horizon) next to {run_dir}; train one with a config from {BASELINE_CONFIGS} "
            f"(--set train.runs_root={Path(run_dir).parent}) or pass {method}=RUN_DIR")
    return max(found)[1]


def _curve(algo: Any, tasks: Sequence[Any], grad_steps: int, step_sizes: Sequence[float],
           episodes: int, action_seed: int) -> list[np.ndarray]:
    """Per-task mean returns after 0..``grad_steps`` steps (same action noise for every call)."""
    algo.sampler.reseed(action_seed)
    batches = algo.adapt(tasks, grad_steps, step_sizes, episodes).check().batches
    return [b.episode_returns().mean(1).cpu().numpy() for b in batches]


def _fine_tuned(method: str, algo: Any, tasks: Sequence[Any], grad_steps: int,
                step_grid: Sequence[float], episodes: int, action_seed: int,
                say: Callable[[str], None]) -> tuple[list[AdaptationPoint], float]:
    """Fine-tune with every step size of the grid; keep the one with the best mean
    return over steps 1..K (the paper reports each baseline with its best step)."""
    best: tuple[float, float, list[np.ndarray]] | None = None
    for step in step_grid:
        curve = _curve(algo, tasks, grad_steps, [step], episodes, action_seed)
        score = float(np.mean([c.mean() for c in curve[1:]] or [curve[0].mean()]))
        say(f"  {method}: step size {step:g}: mean return over steps 1..{grad_steps} {score:.2f}")
        if best is None or score > best[0]:
            best = (score, step, curve)
    assert best is not None
    return [summarize_returns(method, k, r) for k, r in enumerate(best[2])], best[1]


def evaluate_run(run_dir: Path, num_tasks: int = 40, grad_steps: int = 3, seed: int = 0,
                 out_dir: Path | None = None, device: str = "cpu",
                 baselines: dict[str, Path | None] | None = None,
                 step_grid: Sequence[float] = DEFAULT_STEP_GRID,
                 progress: Callable[[str], None] | None = None
                 ) -> tuple[Path, list[AdaptationPoint]]:
    """Adapt the run's final policy to ``num_tasks`` fresh tasks for 0..``grad_steps`` steps,
    and optionally the MAML paper's comparison methods on the same tasks and action noise.

    ``baselines`` maps ``pretrained`` / ``random`` / ``oracle`` to a trained run
    directory (``None``: the newest matching run next to ``run_dir``):

    * ``pretrained``: a TRPO policy trained on the mixture of tasks, fine-tuned with
      the best step size of ``step_grid``;
    * ``random``: a freshly initialised policy, fine-tuned the same way;
    * ``oracle``: a TRPO policy that sees the task parameters; it is not adapted, so
      its return is drawn at every step.

    Writes ``adaptation.csv``, ``adaptation.png``, ``eval_info.yaml`` and TensorBoard
    scalars ``meta_test/return/adapt_{k}`` to ``out_dir`` (default ``RUN_DIR/eval``).
    """
    if num_tasks < 2:
        raise ConfigError(f"--tasks: need at least 2 tasks for a standard error, got {num_tasks}")
    if grad_steps < 0:
        raise ConfigError(f"--grad-steps: must be >= 0, got {grad_steps}")
    if not step_grid or any(not (math.isfinite(s) and s > 0) for s in step_grid):
        raise ConfigError(f"--step-grid: need positive step sizes, got {list(step_grid)}")
    say = progress or (lambda _: None)
    torch_device = resolve_device(device)
    run = load_run(run_dir, torch_device)
    cfg = run.cfg
    if run.parts.algo.name == "pearl":
        if baselines:
            raise ConfigError("--baselines: the MAML paper's comparison methods are fine-tuned "
                              "with gradient steps; they are not defined for a PEARL run, whose "
                              "curve is over context trajectories")
        return _evaluate_pearl(run, num_tasks, grad_steps, seed, out_dir, say)
    if run.parts.algo.name != "maml_trpo":
        raise CheckpointError(f"{run_dir} is a {run.parts.algo.name!r} run; `metarl eval` "
                              "evaluates meta-learners (pass TRPO runs with --baselines)")
    episodes = cfg.sampler.eval_episodes_per_task
    action_seed = derive_seed(seed, STREAM_EVAL_ACTIONS)
    task_rng = np.random.default_rng(derive_seed(seed, STREAM_EVAL_TASKS))
    tasks = run.parts.sampler.sample_tasks(num_tasks, task_rng)
    say(f"maml: adapting {num_tasks} held-out tasks for {grad_steps} steps")
    curve = _curve(run.parts.algo, tasks, grad_steps, cfg.algo.eval_step_sizes, episodes,
                   action_seed)
    points = [summarize_returns("maml", k, r) for k, r in enumerate(curve)]
    info: dict[str, Any] = {}
    for method, path in (baselines or {}).items():
        if method == "random":
            torch.manual_seed(derive_seed(seed, STREAM_RANDOM_INIT))
            policy = GaussianMLPPolicy(run.parts.sampler.obs_dim, run.parts.sampler.act_dim,
                                       cfg.policy.hidden_sizes, cfg.policy.activation,
                                       cfg.policy.init_std, cfg.policy.min_std).to(torch_device)
            algo = MAMLTRPO(policy, run.parts.sampler, cfg.algo, episodes)
            found, source = None, "fresh initialisation"
        else:
            found = path or find_baseline_run(method, run.path, cfg)
            baseline = load_run(found, torch_device, what=f"--baselines {method}")
            if not _is_baseline_of(cfg, baseline.cfg, method):
                raise CheckpointError(
                    f"--baselines {method}={found}: not a {method} baseline of this run "
                    f"(needs algo.name trpo, env.id {cfg.env.id}, the same env.kwargs and "
                    f"horizon, env.task_in_observation {method == 'oracle'})")
            algo, source = baseline.parts.algo, str(baseline.checkpoint)
        say(f"{method}: {source}")
        if method == "oracle":
            returns = _curve(algo, tasks, 0, [1.0], episodes, action_seed)[0]
            points += [summarize_returns(method, k, returns) for k in range(grad_steps + 1)]
            info[method] = {"checkpoint": source}
        else:
            method_points, step = _fine_tuned(method, algo, tasks, grad_steps, step_grid,
                                              episodes, action_seed, say)
            points += method_points
            info[method] = {"checkpoint": source, "step_size": step}
        if found is not None:
            baseline.parts.sampler.close()

    out_dir = _write_outputs(run, out_dir, points, "maml", num_tasks, grad_steps)
    state = run.state
    (out_dir / "eval_info.yaml").write_text(yaml.safe_dump({
        "checkpoint": str(run.checkpoint), "iteration": state["iteration"],
        "env_steps": state["env_steps"], "tasks": num_tasks, "grad_steps": grad_steps,
        "seed": seed, "episodes_per_task": episodes,
        "step_sizes": cfg.algo.eval_step_sizes, "baselines": info,
        "baseline_step_grid": list(step_grid) if baselines else None}, sort_keys=False))
    run.parts.sampler.close()
    return out_dir, points


def _write_outputs(run: LoadedRun, out_dir: Path | None, points: list[AdaptationPoint],
                   method: str, num_tasks: int, last_step: int,
                   xlabel: str = "number of gradient steps") -> Path:
    """``adaptation.csv``, ``adaptation.png`` and TensorBoard scalars (x = the checkpoint's
    training env steps); ``method``'s curve is ``meta_test/return``, others are baselines."""
    out_dir = Path(out_dir) if out_dir is not None else run.path / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_adaptation_csv(out_dir / "adaptation.csv", points)
    plot_adaptation(out_dir / "adaptation.png", points,
                    f"{run.cfg.env.id}: {num_tasks} held-out tasks", xlabel)
    from torch.utils.tensorboard import SummaryWriter

    env_steps = run.state["env_steps"]
    with SummaryWriter(log_dir=str(out_dir)) as writer:
        for p in points:
            tag = ("meta_test/return" if p.method == method
                   else f"meta_test/baselines/{p.method}/return")
            writer.add_scalar(f"{tag}/adapt_{p.step}", p.mean_return, env_steps)
        writer.add_scalar("meta_test/return/gain", points[last_step].mean_return
                          - points[0].mean_return, env_steps)
    return out_dir


def _evaluate_pearl(run: LoadedRun, num_tasks: int, trajectories: int, seed: int,
                    out_dir: Path | None, say: Callable[[str], None]
                    ) -> tuple[Path, list[AdaptationPoint]]:
    """PEARL's meta-test on fresh tasks: from the prior, ``trajectories`` + 1 trajectories one
    after another, the posterior re-inferred from all earlier ones before each (step k =
    number of context trajectories), acting with the actor's mean as the reference does."""
    cfg, algo = run.cfg, run.parts.algo
    episodes = cfg.sampler.eval_episodes_per_task
    task_rng = np.random.default_rng(derive_seed(seed, STREAM_EVAL_TASKS))
    tasks = run.parts.sampler.sample_tasks(num_tasks, task_rng)
    algo.sampler.reseed(derive_seed(seed, STREAM_EVAL_ACTIONS))
    say(f"pearl: {num_tasks} held-out tasks x {episodes} simulations, {trajectories + 1} "
        "trajectories each (k = 0 from the prior)")
    adaptation = algo.adapt(tasks, trajectories + 1, episodes, deterministic=True,
                            seed=derive_seed(seed, STREAM_EVAL_LATENTS))
    points = [summarize_returns("pearl", k, r) for k, r in enumerate(adaptation.task_returns())]
    out_dir = _write_outputs(run, out_dir, points, "pearl", num_tasks, trajectories,
                             "number of context trajectories")
    state = run.state
    (out_dir / "eval_info.yaml").write_text(yaml.safe_dump({
        "checkpoint": str(run.checkpoint), "iteration": state["iteration"],
        "env_steps": state["env_steps"], "tasks": num_tasks, "context_trajectories": trajectories,
        "seed": seed, "episodes_per_task": episodes, "deterministic": True}, sort_keys=False))
    run.parts.sampler.close()
    return out_dir, points
