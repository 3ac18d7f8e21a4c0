"""Run directories read back: which checkpointed iterate to use, and the run rebuilt from it.

``metarl eval --checkpoint latest|best|ITER`` and the baselines' lookup go through
:func:`load_run`; unloadable checkpoints are reported and passed over exactly as
``metarl train --resume`` does (:func:`metarl.checkpoint.first_loadable`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import __version__
from .checkpoint import (
    CheckpointError,
    checkpoint_iteration,
    first_loadable,
    latest_loadable,
    list_checkpoints,
    load_checkpoint,
)
from .algos import AlgorithmSpec
from .config import Config, ConfigError, config_from_dict, load_saved_config, migrate_saved_config
from .experiment import Components, build


@dataclass(frozen=True)
class CheckpointChoice:
    """Which iterate of a run is evaluated, and why that one."""

    chosen_by: str  # "latest", "best" or "explicit"
    iteration: int
    path: Path
    skipped: tuple[Path, ...] = ()  # tried first, but unloadable (corrupted, truncated, ...)
    train_return: float | None = None  # for "best": the return it was chosen by
    train_return_column: str | None = None

    def describe(self) -> str:
        """One console line, e.g. ``checkpoint: iteration 3 (latest that loads) ...``."""
        how = {"latest": "latest that loads", "explicit": "as asked"}.get(self.chosen_by)
        if self.chosen_by == "best":
            how = (f"best: highest {self.train_return_column} in progress.csv, "
                   f"{self.train_return:.4g}")
        return f"checkpoint: iteration {self.iteration} ({how}) {self.path}"

    def to_info(self) -> dict[str, Any]:
        """The ``iterate`` entry of ``eval_info.yaml``."""
        info: dict[str, Any] = {"iteration": self.iteration, "checkpoint": str(self.path),
                                "chosen_by": self.chosen_by,
                                "skipped_checkpoints": [str(p) for p in self.skipped]}
        if self.chosen_by == "best":
            info["train_return"] = self.train_return
            info["train_return_column"] = self.train_return_column
        return info


@dataclass
class LoadedRun:
    path: Path
    checkpoint: Path
    state: dict[str, Any]
    cfg: Config
    parts: Components
    choice: CheckpointChoice | None = field(default=None)


def parse_checkpoint(text: str | int) -> str | int:
    """``--checkpoint``: ``latest``, ``best`` or an iteration number (returned as ``int``)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value: str | int = text
    else:
        value = str(text).strip()
        if value in ("latest", "best"):
            return value
        if not value.isdigit():
            raise ConfigError(f"--checkpoint: expected latest, best or an iteration number, "
                              f"got {text!r}")
        value = int(value)
    if value < 1:
        raise ConfigError(f"--checkpoint: iterations are numbered from 1, got {value}")
    return value


def _iterations_text(iterations: Sequence[int]) -> str:
    """``1, 2, 3`` (long lists shortened: a run may keep hundreds of checkpoints)."""
    if not iterations:
        return "none"
    if len(iterations) <= 12:
        return ", ".join(map(str, iterations))
    return (", ".join(map(str, iterations[:6])) + ", ..., "
            + ", ".join(map(str, iterations[-5:])) + f" ({len(iterations)} in all)")


def training_returns(run_dir: Path, spec: AlgorithmSpec) -> tuple[str, dict[int, float]]:
    """The post-adaptation training return of each iteration in ``progress.csv``: the
    column the algorithm names (``best_by``; MAML's ``meta_train/return/adapt_{K}`` with K
    the largest logged, PEARL's ``meta_train/return/posterior``). Returns the column and
    ``{iteration: return}`` (empty and non-finite entries left out)."""
    path = Path(run_dir) / "progress.csv"
    if spec.best_by is None:
        raise CheckpointError(f"--checkpoint best: {run_dir} is a {spec.name!r} run; it logs "
                              "no post-adaptation return to rank iterations by (use latest or "
                              "an iteration number)")
    if not path.is_file():
        raise CheckpointError(f"--checkpoint best: {path} not found; best is chosen by the "
                              "training return logged there (use latest or an iteration number)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    column = spec.best_by
    if "{K}" in column:
        head, _, tail = column.partition("{K}")
        pattern = re.compile(f"^{re.escape(head)}(\\d+){re.escape(tail)}$")
        numbers = [int(m.group(1)) for c in columns if (m := pattern.match(c))]
        column = column.replace("{K}", str(max(numbers)) if numbers else "K")
    if column not in columns:
        hint = f" ({spec.best_by_hint})" if spec.best_by_hint else ""
        raise CheckpointError(f"--checkpoint best: {path} has no column {column}, the "
                              f"{spec.name} training return{hint}; use latest or an iteration "
                              "number")
    returns: dict[int, float] = {}
    for row in rows:
        try:
            iteration, value = int(row["iteration"]), float(row[column])
        except (KeyError, TypeError, ValueError):
            continue  # a row without this value (e.g. written before the column existed)
        if math.isfinite(value):
            returns[iteration] = value
    return column, returns


def _algorithm(run_dir: Path) -> AlgorithmSpec:
    """The run's algorithm, from its ``config.yaml`` (``best`` needs it before any load)."""
    return load_saved_config(Path(run_dir) / "config.yaml").algorithm


def choose_checkpoint(run_dir: Path, which: str | int = "latest", what: str | None = None,
                      report: Callable[[str], None] | None = None
                      ) -> tuple[CheckpointChoice, dict[str, Any]]:
    """The checkpoint of ``run_dir`` to evaluate, and its loaded state.

    * ``latest``: the newest that loads; unloadable ones are reported and skipped.
    * ``best``: of the checkpointed iterations, the one with the highest post-adaptation
      training return (:func:`training_returns`; ties: the earliest), passing over
      unloadable ones the same way.
    * an iteration number: exactly that checkpoint; never another one in its place.
    """
    checkpoint_dir = Path(run_dir) / "checkpoints"
    which = parse_checkpoint(which)
    what = what or f"--checkpoint {which}"
    say = report or (lambda m: print(m, flush=True))
    if which == "latest":
        path, state, skipped = latest_loadable(checkpoint_dir, what, say)
        return CheckpointChoice("latest", checkpoint_iteration(path), path, tuple(skipped)), state
    by_iteration = {checkpoint_iteration(p): p for p in list_checkpoints(checkpoint_dir)}
    available = _iterations_text(sorted(by_iteration))
    if isinstance(which, int):
        if which not in by_iteration:
            raise CheckpointError(f"{what}: no checkpoint of iteration {which} in "
                                  f"{checkpoint_dir}; available iterations: {available}")
        try:
            state = load_checkpoint(by_iteration[which])
        except CheckpointError as err:
            raise CheckpointError(f"{what}: {err}; not evaluating another iterate instead "
                                  f"(available iterations: {available})") from None
        return CheckpointChoice("explicit", which, by_iteration[which]), state
    if not by_iteration:
        raise CheckpointError(f"{what}: no checkpoints (iter_*.pt) in {checkpoint_dir}")
    column, returns = training_returns(run_dir, _algorithm(run_dir))
    ranked = sorted((it for it in by_iteration if it in returns), key=lambda it: (-returns[it], it))
    if not ranked:
        raise CheckpointError(f"{what}: none of the checkpointed iterations ({available}) has "
                              f"a value of {column} in {Path(run_dir) / 'progress.csv'}")
    path, state, skipped = first_loadable([by_iteration[it] for it in ranked], what, say)
    iteration = checkpoint_iteration(path)
    return CheckpointChoice("best", iteration, path, tuple(skipped), returns[iteration],
                            column), state


def load_run(run_dir: Path, device: torch.device, what: str = "run",
             checkpoint: str | int = "latest",
             report: Callable[[str], None] | None = None, training: bool = False
             ) -> LoadedRun:
    """Rebuild a run's components from the checkpoint ``checkpoint`` selects
    (:func:`choose_checkpoint`; default the newest that loads), or explain why it cannot.

    By default only what adaptation needs is built (``training=False``: e.g. no replay
    buffers) with a sampler of its own, whose streams the caller replaces per rollout.
    A config saved by an earlier metarl is migrated (:func:`migrate_saved_config`) and
    ``report`` is told what changed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{what} {run_dir} is not a directory")
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise CheckpointError(f"{what} {run_dir} is not a metarl run directory "
                              "(expected config.yaml and checkpoints/ written by `metarl train`)")
    choice, state = choose_checkpoint(run_dir, checkpoint,
                                      None if what == "run" else what, report)
    ckpt_path = choice.path
    saved, notes = migrate_saved_config(state["config"])
    if notes and report is not None:
        report(f"metarl: {ckpt_path} was written by an earlier metarl; {'; '.join(notes)}")
    try:
        cfg = config_from_dict(saved, source=str(ckpt_path))
    except ConfigError as err:
        written_by = _written_by(run_dir)
        raise CheckpointError(f"{ckpt_path}: its config does not fit metarl {__version__}"
                              f"{written_by} ({err})") from None
    if state.get("algo") != cfg.algorithm.name:
        raise CheckpointError(f"{ckpt_path} was written by algorithm {state.get('algo')!r}, "
                              f"but its config says {cfg.algorithm.name!r}")
    parts = build(cfg, device, training=training, sampler_seed=0)
    try:
        parts.algo.load_state_dict(state["algo_state"])
    except (KeyError, RuntimeError, ValueError) as err:  # a state of another shape
        parts.sampler.close()
        raise CheckpointError(f"{ckpt_path}: its {cfg.algorithm.name} state does not load into "
                              f"metarl {__version__}{_written_by(run_dir)} ({err})") from None
    return LoadedRun(run_dir, ckpt_path, state, cfg, parts, choice)


def _written_by(run_dir: Path) -> str:
    try:
        version = json.loads((run_dir / "metadata.json").read_text()).get("metarl_version")
    except (OSError, ValueError, AttributeError):
        return ""
    return f"; the run was written by metarl {version}" if version else ""
