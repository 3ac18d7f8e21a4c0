"""Meta-test evaluation: adaptation curves on held-out tasks.

Uses only the algorithm's ``adapt`` interface, so the same evaluator serves every
meta-learner. Tasks are drawn from a random stream independent of training. Any
checkpointed iterate can be evaluated (``latest``, ``best`` by training return, or an
iteration number); the baselines' step sizes are tuned on a separate task draw.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import yaml

from .algos import MAMLTRPO
from .checkpoint import (
    CheckpointError,
    list_checkpoints,
)
from .config import DEFAULT_STEP_GRID, Config, ConfigError, load_config
from .experiment import (
    STREAM_EVAL_ACTIONS,
    STREAM_EVAL_LATENTS,
    STREAM_EVAL_TASKS,
    STREAM_RANDOM_INIT,
    derive_seed,
    resolve_device,
)
from .envs import task_features
from .policies import GaussianMLPPolicy
from .runs import LoadedRun, load_run, parse_checkpoint

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
BASELINE_CONFIGS = "configs/baselines/"


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


class _Progress:
    """Progress lines ``eval METHOD step k/K: n/n tasks, 12.3s elapsed`` (elapsed since the
    evaluation started).

    Every adaptation step samples all tasks in one batched sampler call, so a line per
    (method, step) is as fine-grained as progress gets: it is printed when that call returns.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def steps(self, algo: Any, label: str, last_step: int) -> Iterator[None]:
        """Report each sampling call ``algo.adapt`` makes while the block runs."""
        sampler = algo.sampler
        algo.sampler = _ReportingSampler(sampler, self, label, last_step)
        try:
            yield
        finally:
            algo.sampler = sampler


class _ReportingSampler:
    """Delegates to a sampler; after each ``sample`` call (one adaptation step for every
    task) prints a progress line. The algorithms' ``adapt`` has no per-step hook, and the
    sampler is the one thing every step goes through."""

    def __init__(self, sampler: Any, progress: _Progress, label: str, last_step: int) -> None:
        self._sampler, self._progress = sampler, progress
        self._label, self._last_step, self._step = label, last_step, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sampler, name)

    def sample(self, *args: Any, **kwargs: Any) -> Any:
        batch = self._sampler.sample(*args, **kwargs)
        elapsed = time.perf_counter() - self._progress.start
        n = batch.num_tasks
        self._progress.say(f"eval {self._label} step {self._step}/{self._last_step}: "
                           f"{n}/{n} tasks, {elapsed:.1f}s elapsed")
        self._step += 1
        return batch


def _curve(algo: Any, tasks: Sequence[Any], grad_steps: int, step_sizes: Sequence[float],
           episodes: int, action_seed: int, progress: _Progress, label: str
           ) -> list[np.ndarray]:
    """Per-task mean returns after 0..``grad_steps`` steps (same action noise for every call)."""
    algo.sampler.reseed(action_seed)
    with progress.steps(algo, label, grad_steps):
        batches = algo.adapt(tasks, grad_steps, step_sizes, episodes).check().batches
    return [b.episode_returns().mean(1).cpu().numpy() for b in batches]


def tuning_seed(seed: int, stream: int) -> int:
    """Seed of the baselines' step-size tuning draw for ``stream`` (``STREAM_EVAL_TASKS``
    or ``STREAM_EVAL_ACTIONS``): child ``(stream, 1)`` of ``--seed``'s ``SeedSequence``.

    The reported draw uses ``(stream,)``, training ``(1,)``/``(2,)``: different spawn
    keys give independent streams, so the tuning tasks and their action noise and
    initial states are a fresh draw, disjoint from the reported ones.
    """
    return derive_seed(seed, stream, 1)


def _task_values(task: Any) -> list[float]:
    """A task's parameters as plain floats (for ``eval_info.yaml`` and comparisons)."""
    try:
        return [float(v) for v in task_features(task)]
    except TypeError:  # not a dataclass of numbers: fall back to its text for comparison
        return [repr(task)]  # type: ignore[list-item]


@dataclass
class TuningDraw:
    """The separate draw the baselines' step sizes are tuned on."""

    tasks: list[Any]
    task_seed: int
    action_seed: int
    equal_in_value: int  # tuning tasks equal in value to a reported task (discrete task sets)

    def info(self, family: str) -> dict[str, Any]:
        """The ``baseline_tuning`` entry of ``eval_info.yaml``."""
        info: dict[str, Any] = {
            "tasks": len(self.tasks), "task_seed": self.task_seed,
            "action_seed": self.action_seed,
            "tasks_equal_in_value_to_reported": self.equal_in_value,
            "task_values": [_task_values(t) for t in self.tasks]}
        if self.equal_in_value:
            info["note"] = (f"{family} has a discrete task set: tuning tasks coincide in value "
                            "with reported ones, but the draw and the action noise are "
                            "independent")
        return info


def draw_tuning_tasks(sampler: Any, tasks: Sequence[Any], num_tuning: int, seed: int
                      ) -> TuningDraw:
    """``num_tuning`` tasks for the baselines' step-size tuning, drawn with
    :func:`tuning_seed` (independent of the reported ``tasks``), and how many of them equal
    a reported task in value (only possible for a discrete task set, e.g. direction +-1)."""
    task_seed = tuning_seed(seed, STREAM_EVAL_TASKS)
    tuning = sampler.sample_tasks(num_tuning, np.random.default_rng(task_seed))
    reported = {tuple(_task_values(t)) for t in tasks}
    equal = sum(tuple(_task_values(t)) in reported for t in tuning)
    return TuningDraw(tuning, task_seed, tuning_seed(seed, STREAM_EVAL_ACTIONS), equal)


def _fine_tuned(method: str, algo: Any, tasks: Sequence[Any], tuning: TuningDraw,
                grad_steps: int,
                step_grid: Sequence[float], episodes: int, action_seed: int,
                progress: _Progress) -> tuple[list[AdaptationPoint], float, float]:
    """Fine-tune with every step size of the grid on the tuning tasks; keep the one with
    the best mean return over steps 1..K (the paper reports each baseline with its best
    step), then measure it on the reported tasks with the reported action noise.

    Returns the reported curve, the step size and its tuning score. Tuning on the
    reported tasks would pick the step that fits their noise best and flatter the baseline.
    """
    say = progress.say
    best: tuple[float, float] | None = None
    for step in step_grid:
        curve = _curve(algo, tuning.tasks, grad_steps, [step], episodes, tuning.action_seed,
                       progress, f"{method} (tuning, step size {step:g})")
        score = float(np.mean([c.mean() for c in curve[1:]] or [curve[0].mean()]))
        say(f"  {method}: step size {step:g}: mean return over steps 1..{grad_steps} on "
            f"the {len(tuning.tasks)} tuning tasks {score:.2f}")
        if best is None or score > best[0]:
            best = (score, step)
    assert best is not None
    say(f"  {method}: step size {best[1]:g} chosen; measuring it on the reported tasks")
    curve = _curve(algo, tasks, grad_steps, [best[1]], episodes, action_seed, progress,
                   f"{method} (step size {best[1]:g})")
    return [summarize_returns(method, k, r) for k, r in enumerate(curve)], best[1], best[0]


def evaluate_run(run_dir: Path, num_tasks: int = 40, grad_steps: int = 3, seed: int = 0,
                 out_dir: Path | None = None, device: str = "cpu",
                 baselines: dict[str, Path | None] | None = None,
                 step_grid: Sequence[float] = DEFAULT_STEP_GRID,
                 progress: Callable[[str], None] | None = None,
                 checkpoint: str | int = "latest", tuning_tasks: int | None = None
                 ) -> tuple[Path, list[AdaptationPoint]]:
    """Adapt one iterate of the run to ``num_tasks`` fresh tasks for 0..``grad_steps``
    steps, and optionally the MAML paper's comparison methods on the same tasks and
    action noise.

    ``checkpoint`` picks the iterate: ``latest`` (newest that loads), ``best`` (highest
    post-adaptation training return in ``progress.csv``) or an iteration number; see
    :func:`choose_checkpoint`. Baseline runs are always loaded at their latest.

    ``baselines`` maps ``pretrained`` / ``random`` / ``oracle`` to a trained run
    directory (``None``: the newest matching run next to ``run_dir``):

    * ``pretrained``: a TRPO policy trained on the mixture of tasks, fine-tuned with
      the step size of ``step_grid`` that is best on ``tuning_tasks`` (default
      ``num_tasks``) separate tasks drawn with :func:`tuning_seed`;
    * ``random``: a freshly initialised policy, fine-tuned the same way;
    * ``oracle``: a TRPO policy that sees the task parameters; it is not adapted, so
      its return is drawn at every step.

    Writes ``adaptation.csv``, ``adaptation.png``, ``eval_info.yaml`` and TensorBoard
    scalars ``meta_test/return/adapt_{k}`` to ``out_dir`` (default ``RUN_DIR/eval``).
    ``progress`` receives console lines, among them one per (method, step).
    """
    if num_tasks < 2:
        raise ConfigError(f"--tasks: need at least 2 tasks for a standard error, got {num_tasks}")
    if grad_steps < 0:
        raise ConfigError(f"--grad-steps: must be >= 0, got {grad_steps}")
    if not step_grid or any(not (math.isfinite(s) and s > 0) for s in step_grid):
        raise ConfigError(f"--step-grid: need positive step sizes, got {list(step_grid)}")
    num_tuning = num_tasks if tuning_tasks is None else tuning_tasks
    if num_tuning < 1:
        raise ConfigError(f"--tuning-tasks: need at least 1 task, got {num_tuning}")
    checkpoint = parse_checkpoint(checkpoint)
    say = progress or (lambda _: None)
    prog = _Progress(say)
    torch_device = resolve_device(device)
    # skipped checkpoints are reported even without a progress callback: they are warnings
    run = load_run(run_dir, torch_device, checkpoint=checkpoint, report=progress)
    assert run.choice is not None
    say(run.choice.describe())
    cfg = run.cfg
    if run.parts.algo.name == "pearl":
        if baselines:
            raise ConfigError("--baselines: the MAML paper's comparison methods are fine-tuned "
                              "with gradient steps; they are not defined for a PEARL run, whose "
                              "curve is over context trajectories")
        return _evaluate_pearl(run, num_tasks, grad_steps, seed, out_dir, prog)
    if run.parts.algo.name != "maml_trpo":
        raise CheckpointError(f"{run_dir} is a {run.parts.algo.name!r} run; `metarl eval` "
                              "evaluates meta-learners (pass TRPO runs with --baselines)")
    episodes = cfg.sampler.eval_episodes_per_task
    action_seed = derive_seed(seed, STREAM_EVAL_ACTIONS)
    task_seed = derive_seed(seed, STREAM_EVAL_TASKS)
    tasks = run.parts.sampler.sample_tasks(num_tasks, np.random.default_rng(task_seed))
    say(f"maml: adapting {num_tasks} held-out tasks for {grad_steps} steps")
    curve = _curve(run.parts.algo, tasks, grad_steps, cfg.algo.eval_step_sizes, episodes,
                   action_seed, prog, "maml")
    points = [summarize_returns("maml", k, r) for k, r in enumerate(curve)]
    info: dict[str, Any] = {}
    tuning = None
    if {"pretrained", "random"} & set(baselines or {}):
        tuning = draw_tuning_tasks(run.parts.sampler, tasks, num_tuning, seed)
        say(f"baselines: step sizes tuned on {num_tuning} separate tuning tasks (seed "
            f"{tuning.task_seed}), an independent draw with its own action noise, not the "
            f"{num_tasks} reported tasks")
        if tuning.equal_in_value:
            say(f"  {tuning.equal_in_value} of the {num_tuning} tuning tasks equal a reported "
                f"task in value ({cfg.env.id} has a discrete task set); the draw and the "
                "action noise are independent")
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
            baseline = load_run(found, torch_device, what=f"--baselines {method}",
                                report=progress)
            if not _is_baseline_of(cfg, baseline.cfg, method):
                raise CheckpointError(
                    f"--baselines {method}={found}: not a {method} baseline of this run "
                    f"(needs algo.name trpo, env.id {cfg.env.id}, the same env.kwargs and "
                    f"horizon, env.task_in_observation {method == 'oracle'})")
            algo, source = baseline.parts.algo, str(baseline.checkpoint)
        say(f"{method}: {source}")
        if method == "oracle":
            returns = _curve(algo, tasks, 0, [1.0], episodes, action_seed, prog,
                             "oracle (not adapted)")[0]
            points += [summarize_returns(method, k, returns) for k in range(grad_steps + 1)]
            info[method] = {"checkpoint": source}
        else:
            assert tuning is not None
            method_points, step, score = _fine_tuned(method, algo, tasks, tuning, grad_steps,
                                                     step_grid, episodes, action_seed, prog)
            points += method_points
            info[method] = {"checkpoint": source, "step_size": step, "tuning_score": score}
        if found is not None:
            baseline.parts.sampler.close()

    out_dir = _write_outputs(run, out_dir, points, "maml", num_tasks, grad_steps)
    state = run.state
    (out_dir / "eval_info.yaml").write_text(yaml.safe_dump({
        "checkpoint": str(run.checkpoint), "iteration": state["iteration"],
        "env_steps": state["env_steps"], "tasks": num_tasks, "grad_steps": grad_steps,
        "seed": seed, "episodes_per_task": episodes,
        "step_sizes": cfg.algo.eval_step_sizes, "baselines": info,
        "baseline_step_grid": list(step_grid) if baselines else None,
        "iterate": run.choice.to_info(),
        "held_out": {"task_seed": task_seed, "action_seed": action_seed,
                     "task_values": [_task_values(t) for t in tasks]},
        "baseline_tuning": tuning.info(cfg.env.id) if tuning is not None else None,
    }, sort_keys=False))
    run.parts.sampler.close()
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
        writer.add_scalar("meta_test/return/gain", points[last_step].mean_return
                          - points[0].mean_return, env_steps)
    return out_dir


def _evaluate_pearl(run: LoadedRun, num_tasks: int, trajectories: int, seed: int,
                    out_dir: Path | None, progress: _Progress
                    ) -> tuple[Path, list[AdaptationPoint]]:
    """PEARL's meta-test on fresh tasks: from the prior, ``trajectories`` + 1 trajectories one
    after another, the posterior re-inferred from all earlier ones before each (step k =
    number of context trajectories), acting with the actor's mean as the reference does."""
    cfg, algo, say = run.cfg, run.parts.algo, progress.say
    episodes = cfg.sampler.eval_episodes_per_task
    task_rng = np.random.default_rng(derive_seed(seed, STREAM_EVAL_TASKS))
    tasks = run.parts.sampler.sample_tasks(num_tasks, task_rng)
    algo.sampler.reseed(derive_seed(seed, STREAM_EVAL_ACTIONS))
    say(f"pearl: {num_tasks} held-out tasks x {episodes} simulations, {trajectories + 1} "
        "trajectories each (k = 0 from the prior)")
    with progress.steps(algo, "pearl", trajectories):  # step k: k context trajectories
        adaptation = algo.adapt(tasks, trajectories + 1, episodes, deterministic=True,
                                seed=derive_seed(seed, STREAM_EVAL_LATENTS))
    points = [summarize_returns("pearl", k, r) for k, r in enumerate(adaptation.task_returns())]
    out_dir = _write_outputs(run, out_dir, points, "pearl", num_tasks, trajectories,
                             "number of context trajectories")
    state = run.state
    (out_dir / "eval_info.yaml").write_text(yaml.safe_dump({
        "checkpoint": str(run.checkpoint), "iteration": state["iteration"],
        "env_steps": state["env_steps"], "tasks": num_tasks, "context_trajectories": trajectories,
        "seed": seed, "episodes_per_task": episodes, "deterministic": True,
        "iterate": run.choice.to_info() if run.choice is not None else None}, sort_keys=False))
    run.parts.sampler.close()
    return out_dir, points
