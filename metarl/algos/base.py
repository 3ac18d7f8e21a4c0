"""The meta-learner contract every algorithm implements, and what it passes around.

The command line, the training loop, evaluation and the logger talk to an algorithm only
through :class:`MetaLearner`; an algorithm is one module (or package) plus one
:func:`~metarl.algos.register_algorithm` call.

*Adaptation* has one meaning for every algorithm: step ``k`` of a curve is the return
after ``k`` units of adaptation on a task, where the unit is the algorithm's own
(``adaptation_units``): a gradient step (MAML), a context trajectory (PEARL), an episode of
a trial (RL²).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from ..errors import NumericalError

if TYPE_CHECKING:
    import torch

    from ..config import Config
    from ..samplers import BatchSampler, EpisodeBatch


@dataclass
class IterationStats:
    """What one training iteration reports.

    Attributes:
        env_steps: environment steps this iteration simulated.
        scalars: statistics keyed by TensorBoard tag (``meta_train/return/adapt_0``, ...);
            the same keys every iteration (``progress.csv``'s columns).
        skip_reason: why this iteration's update was skipped or rolled back (non-finite
            values), or None when it was applied.
    """

    env_steps: int
    scalars: dict[str, float]
    skip_reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None


class AdaptationError(NumericalError, FloatingPointError):
    """Adaptation produced NaN or Inf (the parameters or step sizes are unusable)."""


@dataclass
class Adaptation:
    """What :meth:`MetaLearner.adapt` returns.

    Attributes:
        batches: ``k_max + 1`` batches; batch ``k`` was rolled out after ``k`` units of
            adaptation (fewer when ``failure`` is set).
        sample_s: seconds spent rolling out.
        failure: why adaptation stopped early (NaN/Inf), or None.
    """

    batches: list["EpisodeBatch"]
    sample_s: float = 0.0
    failure: str | None = None

    def check(self) -> "Adaptation":
        """``self``, or :class:`AdaptationError` if adaptation stopped early."""
        if self.failure is not None:
            raise AdaptationError(f"adaptation failed after {len(self.batches) - 1} step(s): "
                                  f"{self.failure}")
        return self

    def task_returns(self) -> np.ndarray:
        """``[k_max + 1, tasks]``: each task's mean episode return after k units."""
        return np.stack([b.episode_returns().mean(1).cpu().numpy() for b in self.batches])

    def task_success(self) -> np.ndarray | None:
        """``[k_max + 1, tasks]``: each task's share of successful episodes after k units,
        or None when the family reports no success."""
        if any(b.success is None for b in self.batches):
            return None
        return np.stack([b.success.float().mean(1).cpu().numpy() for b in self.batches])


# Called after each unit's rollouts: (k, batch of step k).
StepCallback = Callable[[int, "EpisodeBatch"], None]


@dataclass
class BuildContext:
    """What an algorithm's builder receives.

    Attributes:
        cfg: the whole validated config (``cfg.algo`` is the algorithm's own dataclass).
        sampler: the sampler of training rollouts; for an evaluation build, the
            evaluation's sampler (use it for spaces and task draws only).
        device: where the learner's tensors live.
        seed: the learner's own random streams (task draws, latents); derived from
            ``train.seed``, independent of the sampler's.
        training: False when evaluation builds the learner only to adapt: build just what
            :meth:`MetaLearner.adapt` needs (no replay buffers, no optimiser state).
    """

    cfg: "Config"
    sampler: "BatchSampler"
    device: "torch.device"
    seed: int
    training: bool = True


class MetaLearner(abc.ABC):
    """A meta-RL algorithm as the rest of metarl sees it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("label") and "name" in cls.__dict__:
            cls.label = cls.name

    name: ClassVar[str]
    # the method's name in evaluation's outputs (adaptation.csv, the plot's legend)
    label: ClassVar[str] = ""
    adaptation_units: ClassVar[str] = "gradient steps"
    # what adapt()'s `episodes` counts per task (evaluation's header names it)
    rollouts_per_task: ClassVar[str] = "episodes"
    # the keys to lower when updates keep turning non-finite (named in the stop message)
    step_size_keys: ClassVar[str] = "the algorithm's step sizes"
    # whether adapt() accepts step_sizes= (gradient-based fine-tuning): `metarl eval
    # --baselines` fine-tunes the MAML paper's comparison methods through it
    fine_tunable: ClassVar[bool] = False

    @abc.abstractmethod
    def train_iteration(self) -> IterationStats:
        """Run one training iteration."""

    @abc.abstractmethod
    def adapt(self, tasks: Sequence[Any], k_max: int, episodes: int, sampler: "BatchSampler",
              *, seed: int | None = None, on_step: StepCallback | None = None) -> Adaptation:
        """Adapt to every task in ``tasks`` for ``k_max`` units, rolling out ``episodes``
        episodes (or simulations) per task after each of 0..``k_max`` units.

        Rollouts go through ``sampler`` (whose random streams the caller owns); ``seed``
        fixes the learner's own draws during adaptation (e.g. PEARL's latents).
        The learner's parameters are left as they were.
        """

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training exactly (parameters, optimisers, streams)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; an evaluation build restores what adapting needs."""

    def eval_settings(self) -> dict[str, Any]:
        """Settings of :meth:`adapt` that ``metarl eval`` records in ``eval_info.yaml``."""
        return {}

    def held_out_tasks(self) -> tuple[list[Any], str] | None:
        """The run's own fixed held-out tasks and where they come from (e.g. a paper's
        reference test set), which ``metarl eval`` then evaluates on; ``None`` (default):
        evaluation draws fresh tasks from the family."""
        return None

    def evaluate_during_training(self, iteration: int) -> dict[str, float]:
        """Scalars of a meta-test the algorithm runs itself after ``iteration`` (e.g. on a
        fixed held-out task set); none by default. The first iteration's keys fix
        ``progress.csv``'s columns, so a meta-test that runs at all runs after iteration 1."""
        return {}

    def progress_line(self, iteration: int, total: int, env_steps: int, iteration_s: float,
                      stats: IterationStats) -> str:
        """The console line of one iteration (override to show the algorithm's quantities)."""
        width = len(str(total))
        prefix = "meta_train/return/adapt_"
        keys = sorted((k for k in stats.scalars if k.startswith(prefix)),
                      key=lambda k: int(k[len(prefix):]))
        returns = " ".join(f"{stats.scalars[k]:.2f}" for k in keys)
        return (f"iter {iteration:>{width}}/{total} | env steps {env_steps:>11,} | return "
                f"k=0.. {returns or math.nan} | {iteration_s:5.1f}s")

    def close(self) -> None:
        """Release what the learner holds besides its sampler (which the caller closes)."""

