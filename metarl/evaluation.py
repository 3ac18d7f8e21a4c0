"""Meta-test evaluation: adaptation curves on held-out tasks, for any meta-learner.

Uses only the :class:`~metarl.algos.MetaLearner` contract: the run's learner is rebuilt
for adaptation only, with a sampler of its own, and step ``k`` of the curve is the return
after ``k`` units of the algorithm's adaptation (gradient steps, context trajectories).
Held-out tasks and rollouts draw from streams derived from ``--seed``, independent of
training's. Any checkpointed iterate can be evaluated (``latest``, ``best`` by training
return, or an iteration number). The MAML paper's comparison methods (``--baselines``)
are in :mod:`metarl.comparisons`.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from .algos import MetaLearner
from .checkpoint import CheckpointError
from .config import DEFAULT_DEVICE, DEFAULT_STEP_GRID, ConfigError
from .envs import task_features
from .experiment import (
    STREAM_EVAL_ACTIONS,
    STREAM_EVAL_LATENTS,
    STREAM_EVAL_TASKS,
    derive_seed,
    resolve_device,
)
from .runs import LoadedRun, load_run, parse_checkpoint
from .samplers import BatchSampler, EpisodeBatch, RolloutStreams

CSV_COLUMNS = ("method", "step", "mean_return", "stderr", "n_tasks")
TASK_CSV_COLUMNS = ("method", "step", "task", "return")


@dataclass(frozen=True)
class AdaptationPoint:
    method: str
    step: int
    mean_return: float
    stderr: float
    n_tasks: int
    success: float | None = None  # mean over tasks of the share of successful episodes
    # per held-out task, in the order of eval_info.yaml's held_out.task_values
    task_returns: tuple[float, ...] = field(default=(), compare=False, repr=False)


def _stderr(values: np.ndarray) -> float:
    """Standard error of the mean across tasks (NaN for a single task)."""
    n = len(values)
    return float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


def summarize_returns(method: str, step: int, task_returns: np.ndarray,
                      task_success: np.ndarray | None = None) -> AdaptationPoint:
    """Mean over tasks of per-task mean return, with the standard error across tasks (and
    the mean per-task success rate, for families that report success)."""
    success = None if task_success is None else float(task_success.mean())
    return AdaptationPoint(method, step, float(task_returns.mean()), _stderr(task_returns),
                           len(task_returns), success,
                           tuple(float(r) for r in task_returns))


def write_adaptation_csv(path: Path, points: list[AdaptationPoint]) -> None:
    """``CSV_COLUMNS``, and a ``success`` column when any point has a success rate."""
    with_success = any(p.success is not None for p in points)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS + (("success",) if with_success else ()))
        for p in points:
            row = [p.method, p.step, f"{p.mean_return:.6f}", f"{p.stderr:.6f}", p.n_tasks]
            if with_success:
                row.append("" if p.success is None else f"{p.success:.6f}")
            writer.writerow(row)


def write_task_returns_csv(path: Path, points: list[AdaptationPoint]) -> None:
    """``TASK_CSV_COLUMNS``: every method's mean return on each held-out task at each step."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TASK_CSV_COLUMNS)
        for p in points:
            for task, value in enumerate(p.task_returns):
                writer.writerow([p.method, p.step, task, f"{value:.6f}"])


def paired_differences(points: list[AdaptationPoint], method: str) -> dict[str, list[dict]]:
    """``method``'s return minus each other method's, per step, paired over the held-out
    tasks: ``{other: [{step, mean, stderr}, ...]}``.

    Every method runs on the same tasks with the same action noise, so the spread of task
    difficulty cancels in the difference; its standard error is the one to judge an
    ordering by (combining the per-method standard errors of ``adaptation.csv`` overstates
    it whenever the methods find the same tasks hard)."""
    ours = {p.step: np.asarray(p.task_returns) for p in points if p.method == method}
    out: dict[str, list[dict]] = {}
    for p in points:
        if p.method == method or p.step not in ours or not p.task_returns:
            continue
        d = ours[p.step] - np.asarray(p.task_returns)
        out.setdefault(p.method, []).append(
            {"step": p.step, "mean": float(d.mean()), "stderr": _stderr(d)})
    return out


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
    xs = sorted({p.step for p in points})
    if len(xs) <= 12:  # a tick per step; a long axis (e.g. iterations) keeps matplotlib's
        ax.set_xticks(xs)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class Progress:
    """Progress lines ``eval METHOD step k/K: n/n tasks, 12.3s elapsed`` (elapsed since the
    evaluation started).

    Every adaptation step samples all tasks in one batched sampler call, so a line per
    (method, step) is as fine-grained as progress gets: :meth:`steps` gives the callback
    that ``MetaLearner.adapt`` calls when each step's rollouts return.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.start = time.perf_counter()

    def steps(self, label: str, last_step: int) -> Callable[[int, EpisodeBatch], None]:
        def on_step(k: int, batch: EpisodeBatch) -> None:
            n = batch.num_tasks
            self.say(f"eval {label} step {k}/{last_step}: {n}/{n} tasks, "
                     f"{time.perf_counter() - self.start:.1f}s elapsed")
        return on_step


def adaptation_curve(learner: MetaLearner, tasks: Sequence[Any], k_max: int, episodes: int,
                     sampler: BatchSampler, action_seed: int, latent_seed: int | None,
                     progress: Progress, label: str, **options: Any) -> list[np.ndarray]:
    """Per-task mean returns after 0..``k_max`` units, rolled out with fresh streams from
    ``action_seed`` (the same noise for every call with that seed); ``options`` go to
    ``adapt`` (e.g. MAML's ``step_sizes``)."""
    return list(_adapted(learner, tasks, k_max, episodes, sampler, action_seed, latent_seed,
                         progress, label, **options).task_returns())


def adaptation_points(method: str, learner: MetaLearner, tasks: Sequence[Any], k_max: int,
                      episodes: int, sampler: BatchSampler, action_seed: int,
                      latent_seed: int | None, progress: Progress, label: str,
                      **options: Any) -> list[AdaptationPoint]:
    """:func:`adaptation_curve` summarised per step: mean return, standard error and, for
    families that report success, the success rate."""
    adaptation = _adapted(learner, tasks, k_max, episodes, sampler, action_seed, latent_seed,
                          progress, label, **options)
    success = adaptation.task_success()
    return [summarize_returns(method, k, r, None if success is None else success[k])
            for k, r in enumerate(adaptation.task_returns())]


def _adapted(learner: MetaLearner, tasks: Sequence[Any], k_max: int, episodes: int,
             sampler: BatchSampler, action_seed: int, latent_seed: int | None,
             progress: Progress, label: str, **options: Any) -> Any:
    return learner.adapt(tasks, k_max, episodes, sampler.using(RolloutStreams(action_seed)),
                         seed=latent_seed, on_step=progress.steps(label, k_max),
                         **options).check()


def task_values(task: Any) -> list[float]:
    """A task's parameters as plain floats (for ``eval_info.yaml`` and comparisons)."""
    try:
        return [float(v) for v in task_features(task)]
    except TypeError:  # not a dataclass of numbers: fall back to its text for comparison
        return [repr(task)]  # type: ignore[list-item]


DEFAULT_EVAL_TASKS = 40


def evaluate_run(run_dir: Path, num_tasks: int | None = None, steps: int = 3, seed: int = 0,
                 out_dir: Path | None = None, device: str = DEFAULT_DEVICE,
                 baselines: dict[str, Path | None] | None = None,
                 step_grid: Sequence[float] = DEFAULT_STEP_GRID,
                 progress: Callable[[str], None] | None = None,
                 checkpoint: str | int = "latest", tuning_tasks: int | None = None,
                 step_sizes: Sequence[float] | None = None
                 ) -> tuple[Path, list[AdaptationPoint]]:
    """Adapt one iterate of the run to ``num_tasks`` held-out tasks for 0..``steps`` units
    of its algorithm's adaptation, and optionally the MAML paper's comparison methods on
    the same tasks and action noise (:func:`metarl.comparisons.evaluate_baselines`).

    The tasks are the learner's own fixed held-out set when it has one
    (:meth:`~metarl.algos.MetaLearner.held_out_tasks`: its first ``num_tasks``, default
    all), else ``num_tasks`` (default 40) fresh draws from the family's held-out tasks
    (its test split where it has one: Meta-World's held-out classes).

    ``checkpoint`` picks the iterate: ``latest`` (newest that loads), ``best`` (highest
    post-adaptation training return in ``progress.csv``) or an iteration number; see
    :func:`~metarl.runs.choose_checkpoint`. Baseline runs are always loaded at their latest.

    ``step_sizes`` replaces a gradient-based learner's ``algo.eval_step_sizes`` for its own
    adaptation (step k uses entry min(k, len-1)); the baselines keep their tuned steps.

    Writes ``adaptation.csv``, ``adaptation.png``, ``eval_info.yaml`` and TensorBoard
    scalars ``meta_test/return/adapt_{k}`` to ``out_dir`` (default ``RUN_DIR/eval``).
    ``progress`` receives console lines, among them one per (method, step).
    """
    if num_tasks is not None and num_tasks < 2:
        raise ConfigError(f"--tasks: need at least 2 tasks for a standard error, got {num_tasks}")
    if steps < 0:
        raise ConfigError(f"--steps: must be >= 0, got {steps}")
    if not step_grid or any(not (math.isfinite(s) and s > 0) for s in step_grid):
        raise ConfigError(f"--step-grid: need positive step sizes, got {list(step_grid)}")
    if step_sizes is not None and (
            not step_sizes or any(not (math.isfinite(s) and s > 0) for s in step_sizes)):
        raise ConfigError(f"--step-sizes: need positive step sizes, got {list(step_sizes)}")
    num_tuning = (num_tasks or DEFAULT_EVAL_TASKS) if tuning_tasks is None else tuning_tasks
    if num_tuning < 1:
        raise ConfigError(f"--tuning-tasks: need at least 1 task, got {num_tuning}")
    checkpoint = parse_checkpoint(checkpoint)
    say = progress or (lambda _: None)
    prog = Progress(say)
    torch_device = resolve_device(device, "--device")
    # skipped checkpoints are reported even without a progress callback: they are warnings
    run = load_run(run_dir, torch_device, checkpoint=checkpoint, report=progress)
    try:
        return _evaluate(run, num_tasks, steps, seed, out_dir, baselines, step_grid, num_tuning,
                         prog, step_sizes)
    finally:
        run.parts.algo.close()
        run.parts.sampler.close()


def held_out_tasks(learner: Any, sampler: Any, num_tasks: int | None, task_seed: int,
                   say: Callable[[str], None]) -> list[Any]:
    """The held-out tasks `metarl eval` adapts to: the learner's fixed held-out set (its first
    ``num_tasks``), else ``num_tasks`` (default 40) draws from ``task_seed``."""
    fixed = learner.held_out_tasks()
    if fixed is None:  # the family's test split where it has one (Meta-World's classes)
        return sampler.sample_test_tasks(num_tasks or DEFAULT_EVAL_TASKS,
                                         np.random.default_rng(task_seed))
    tasks, source = fixed
    if num_tasks is not None and num_tasks > len(tasks):
        raise ConfigError(f"--tasks: {num_tasks} is more than the {len(tasks)} tasks of "
                          f"{source}; pass --tasks {len(tasks)} or fewer")
    say(f"held-out tasks: {source}")
    return tasks[:num_tasks] if num_tasks is not None else tasks


def _evaluate(run: LoadedRun, num_tasks: int | None, steps: int, seed: int, out_dir: Path | None,
              baselines: dict[str, Path | None] | None, step_grid: Sequence[float],
              num_tuning: int, progress: Progress, step_sizes: Sequence[float] | None = None
              ) -> tuple[Path, list[AdaptationPoint]]:
    assert run.choice is not None
    cfg, learner, say = run.cfg, run.parts.algo, progress.say
    say(run.choice.describe())
    if not cfg.algorithm.meta_learner:
        raise CheckpointError(f"{run.path} is a {cfg.algo.name!r} run; `metarl eval` "
                              "evaluates meta-learners (pass TRPO runs with --baselines)")
    if baselines and not learner.fine_tunable:
        raise ConfigError(f"--baselines: the MAML paper's comparison methods are fine-tuned "
                          f"with gradient steps; they are not defined for a {cfg.algo.name} "
                          f"run, whose curve is over {learner.adaptation_units}")
    settings = learner.eval_settings()
    options: dict[str, Any] = {}
    if step_sizes is not None:
        if "step_sizes" not in settings:
            raise ConfigError(f"--step-sizes: a {cfg.algo.name} run adapts over "
                              f"{learner.adaptation_units}, not with gradient steps; the "
                              "option applies to MAML and ProMP runs")
        options["step_sizes"] = list(step_sizes)
        settings = {**settings, "step_sizes": list(step_sizes),
                    "step_sizes_from": "--step-sizes"}
        say(f"{learner.label}: step sizes {list(step_sizes)} (--step-sizes; the run's "
            f"algo.eval_step_sizes: {learner.eval_settings()['step_sizes']})")
    episodes = cfg.sampler.eval_episodes_per_task
    action_seed = derive_seed(seed, STREAM_EVAL_ACTIONS)
    task_seed = derive_seed(seed, STREAM_EVAL_TASKS)
    latent_seed = derive_seed(seed, STREAM_EVAL_LATENTS)
    tasks = held_out_tasks(learner, run.parts.sampler, num_tasks, task_seed, say)
    num_tasks = len(tasks)
    label, units = learner.label, learner.adaptation_units
    say(f"{label}: {num_tasks} held-out tasks x {episodes} {learner.rollouts_per_task}, "
        f"0..{steps} {units}")
    points = adaptation_points(label, learner, tasks, steps, episodes, run.parts.sampler,
                               action_seed, latent_seed, progress, label, **options)
    info: dict[str, Any] = {}
    tuning_info = None
    if baselines:
        from .comparisons import evaluate_baselines

        more, info, tuning_info = evaluate_baselines(
            run, tasks, steps, seed, baselines, step_grid, num_tuning, action_seed, progress)
        points += more
    out_dir = _write_outputs(run, out_dir, points, label, num_tasks, steps, f"number of {units}")
    write_task_returns_csv(out_dir / "task_returns.csv", points)
    state = run.state
    (out_dir / "eval_info.yaml").write_text(yaml.safe_dump({
        "checkpoint": str(run.checkpoint), "iteration": state["iteration"],
        "env_steps": state["env_steps"], "algorithm": cfg.algorithm.name, "tasks": num_tasks,
        "steps": steps, "adaptation_units": units, "seed": seed, "episodes_per_task": episodes,
        **settings, "baselines": info,
        "baseline_step_grid": list(step_grid) if baselines else None,
        "iterate": run.choice.to_info(),
        "held_out": {"task_seed": task_seed, "action_seed": action_seed,
                     "latent_seed": latent_seed,
                     "task_values": [task_values(t) for t in tasks]},
        "baseline_tuning": tuning_info,
        "paired_differences": {"method": label, "minus": paired_differences(points, label)}
        if baselines else None,
    }, sort_keys=False))
    return out_dir, points


def eval_summary(info_path: Path) -> str:
    """The lines under ``metarl eval``'s table, from the ``eval_info.yaml`` just written:
    which iterate was evaluated and, with baselines, what their step sizes were tuned on."""
    info = yaml.safe_load(Path(info_path).read_text())
    iterate = info.get("iterate") or {}
    line = f"evaluated iteration {info['iteration']} ({iterate.get('chosen_by', 'latest')}"
    if iterate.get("chosen_by") == "best":
        line += f", training {iterate['train_return_column']} {iterate['train_return']:.4g}"
    if iterate.get("skipped_checkpoints"):
        line += f"; skipped unloadable {', '.join(iterate['skipped_checkpoints'])}"
    lines = [line + ")"]
    tuning = info.get("baseline_tuning")
    if tuning:
        steps = ", ".join(f"{m} {b['step_size']:g}" for m, b in info["baselines"].items()
                          if "step_size" in b)
        lines.append(f"baseline step sizes ({steps}) were tuned on {tuning['tasks']} separate "
                     f"tuning tasks, not on the {info['tasks']} reported ones")
        if tuning.get("note"):
            lines.append(f"note: {tuning['note']}")
    paired = info.get("paired_differences")
    for other, rows in ((paired or {}).get("minus") or {}).items():
        steps = ", ".join(f"{r['step']}: {r['mean']:+.2f} ± {r['stderr']:.2f}" for r in rows)
        lines.append(f"{paired['method']} minus {other}, paired over the {info['tasks']} "
                     f"tasks (step: mean ± s.e.): {steps}")
    return "\n".join(lines)


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
            if p.success is not None:
                writer.add_scalar(f"{tag.replace('/return', '/success')}/adapt_{p.step}",
                                  p.success, env_steps)
        writer.add_scalar("meta_test/return/gain", points[last_step].mean_return
                          - points[0].mean_return, env_steps)
    return out_dir
