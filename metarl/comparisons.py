"""The MAML paper's comparison methods (Finn et al. 2017, sec. 5.3): ``metarl eval
--baselines pretrained,random,oracle``.

* ``pretrained``: a TRPO policy trained on the mixture of tasks (``algo.name: trpo``),
  fine-tuned with the step size of ``--step-grid`` that is best on a separate draw of
  tuning tasks (:func:`tuning_seed`), then measured on the reported tasks;
* ``random``: a freshly initialised policy of the run's own algorithm, fine-tuned the same
  way;
* ``oracle``: a TRPO policy that observes the task (``env.task_in_observation``); it is
  not adapted, so its return is drawn at every step.

Fine-tuning goes through ``MetaLearner.adapt(..., step_sizes=...)``, so it is defined for
learners that adapt by gradient steps (``fine_tunable``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .checkpoint import CheckpointError, list_checkpoints
from .config import Config, ConfigError, load_saved_config
from .evaluation import (
    AdaptationPoint,
    Progress,
    adaptation_curve,
    adaptation_points,
    task_values,
)
from .experiment import (
    STREAM_EVAL_ACTIONS,
    STREAM_EVAL_TASKS,
    STREAM_RANDOM_INIT,
    build_learner,
    derive_seed,
)
from .runs import LoadedRun, load_run

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
    return (not other.algorithm.meta_learner and other.env.id == cfg.env.id
            and other.env.kwargs == cfg.env.kwargs and other.env.horizon == cfg.env.horizon
            and other.env.task_in_observation == (method == "oracle"))


def find_baseline_run(method: str, run_dir: Path, cfg: Config) -> Path:
    """The newest trained ``method`` run next to ``run_dir`` for the same family and kwargs."""

    found = []
    for candidate in sorted(Path(run_dir).resolve().parent.iterdir()):
        if candidate == Path(run_dir).resolve() or not (candidate / "config.yaml").is_file():
            continue
        try:
            other = load_saved_config(candidate / "config.yaml")
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


def tuning_seed(seed: int, stream: int) -> int:
    """Seed of the baselines' step-size tuning draw for ``stream`` (``STREAM_EVAL_TASKS``
    or ``STREAM_EVAL_ACTIONS``): child ``(stream, 1)`` of ``--seed``'s ``SeedSequence``.

    The reported draw uses ``(stream,)``, training ``(1,)``/``(2,)``: different spawn
    keys give independent streams, so the tuning tasks and their action noise and
    initial states are a fresh draw, disjoint from the reported ones.
    """
    return derive_seed(seed, stream, 1)


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
            "task_values": [task_values(t) for t in self.tasks]}
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
    # from the reported tasks' distribution (the family's test split where it has one)
    tuning = sampler.sample_test_tasks(num_tuning, np.random.default_rng(task_seed))
    reported = {tuple(task_values(t)) for t in tasks}
    equal = sum(tuple(task_values(t)) in reported for t in tuning)
    return TuningDraw(tuning, task_seed, tuning_seed(seed, STREAM_EVAL_ACTIONS), equal)


def _fine_tuned(method: str, learner: Any, sampler: Any, tasks: Sequence[Any],
                tuning: TuningDraw, steps: int, step_grid: Sequence[float], episodes: int,
                action_seed: int, progress: Progress
                ) -> tuple[list[AdaptationPoint], float, float]:
    """Fine-tune with every step size of the grid on the tuning tasks; keep the one with
    the best mean return over steps 1..K (the paper reports each baseline with its best
    step), then measure it on the reported tasks with the reported action noise.

    Returns the reported curve, the step size and its tuning score. Tuning on the
    reported tasks would pick the step that fits their noise best and flatter the baseline.
    """
    say = progress.say
    best: tuple[float, float] | None = None
    for step in step_grid:
        curve = adaptation_curve(learner, tuning.tasks, steps, episodes, sampler,
                                 tuning.action_seed, None, progress,
                                 f"{method} (tuning, step size {step:g})", step_sizes=[step])
        score = float(np.mean([c.mean() for c in curve[1:]] or [curve[0].mean()]))
        say(f"  {method}: step size {step:g}: mean return over steps 1..{steps} on "
            f"the {len(tuning.tasks)} tuning tasks {score:.2f}")
        if best is None or score > best[0]:
            best = (score, step)
    assert best is not None
    say(f"  {method}: step size {best[1]:g} chosen; measuring it on the reported tasks")
    points = adaptation_points(method, learner, tasks, steps, episodes, sampler, action_seed,
                               None, progress, f"{method} (step size {best[1]:g})",
                               step_sizes=[best[1]])
    return points, best[1], best[0]


def evaluate_baselines(run: LoadedRun, tasks: Sequence[Any], steps: int, seed: int,
                       baselines: dict[str, Path | None], step_grid: Sequence[float],
                       num_tuning: int, action_seed: int, progress: Progress
                       ) -> tuple[list[AdaptationPoint], dict[str, Any], dict[str, Any] | None]:
    """The curves of the comparison methods in ``baselines`` (``{method: run directory or
    None}``; None = the newest matching run next to ``run``) on the reported ``tasks`` with
    the reported action noise. Returns their points, the ``baselines`` entry of
    ``eval_info.yaml`` and its ``baseline_tuning`` entry (None without a fine-tuned one)."""
    cfg, say = run.cfg, progress.say
    sampler = run.parts.sampler
    device = sampler.device
    episodes = cfg.sampler.eval_episodes_per_task
    points: list[AdaptationPoint] = []
    info: dict[str, Any] = {}
    tuning = None
    if {"pretrained", "random"} & set(baselines):
        tuning = draw_tuning_tasks(sampler, tasks, num_tuning, seed)
        say(f"baselines: step sizes tuned on {num_tuning} separate tuning tasks (seed "
            f"{tuning.task_seed}), an independent draw with its own action noise, not the "
            f"{len(tasks)} reported tasks")
        if tuning.equal_in_value:
            say(f"  {tuning.equal_in_value} of the {num_tuning} tuning tasks equal a reported "
                f"task in value ({cfg.env.id} has a discrete task set); the draw and the "
                "action noise are independent")
    for method, path in baselines.items():
        baseline = None
        if method == "random":
            torch.manual_seed(derive_seed(seed, STREAM_RANDOM_INIT))
            learner = build_learner(cfg, sampler, device, training=False)
            source = "fresh initialisation"
        else:
            found = path or find_baseline_run(method, run.path, cfg)
            baseline = load_run(found, device, what=f"--baselines {method}",
                                report=progress.say)
            if not _is_baseline_of(cfg, baseline.cfg, method):
                baseline.parts.sampler.close()
                raise CheckpointError(
                    f"--baselines {method}={found}: not a {method} baseline of this run "
                    f"(needs algo.name trpo, env.id {cfg.env.id}, the same env.kwargs and "
                    f"horizon, env.task_in_observation {method == 'oracle'})")
            learner, source = baseline.parts.algo, str(baseline.checkpoint)
        say(f"{method}: {source}")
        own_sampler = baseline.parts.sampler if baseline is not None else sampler
        try:
            if method == "oracle":
                unadapted = adaptation_points(method, learner, tasks, 0, episodes, own_sampler,
                                              action_seed, None, progress,
                                              "oracle (not adapted)")[0]
                points += [dataclasses.replace(unadapted, step=k) for k in range(steps + 1)]
                info[method] = {"checkpoint": source}
            else:
                assert tuning is not None
                more, step, score = _fine_tuned(method, learner, own_sampler, tasks, tuning,
                                                steps, step_grid, episodes, action_seed,
                                                progress)
                points += more
                info[method] = {"checkpoint": source, "step_size": step, "tuning_score": score}
        finally:
            learner.close()
            if baseline is not None:
                baseline.parts.sampler.close()
    return points, info, tuning.info(cfg.env.id) if tuning is not None else None
