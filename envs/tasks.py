"""Task dataclasses shared by the built-in families.

A task is a small frozen dataclass: hashable, printable, and safe to put in
``info["task"]``, checkpoints (as plain fields) and logs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GoalTask:
    """A goal position (2D navigation, ant goal)."""

    goal: tuple[float, ...]


@dataclass(frozen=True)
class VelocityTask:
    """A target forward velocity in m/s."""

    velocity: float


@dataclass(frozen=True)
class DirectionTask:
    """A running direction along x: +1 forward, -1 backward."""

    direction: int


@dataclass(frozen=True)
class HeadingTask:
    """A running direction in the x-y plane, in radians counter-clockwise from +x."""

    angle: float


def task_features(task: object) -> np.ndarray:
    """The task's parameters as a flat float32 vector, e.g. ``VelocityTask(1.3) -> [1.3]``.

    What an *oracle* policy sees in addition to the observation. Works for any task
    dataclass whose fields are numbers or sequences of numbers.
    """
    if not dataclasses.is_dataclass(task):
        raise TypeError(f"task features need a dataclass task, got {type(task).__name__}")
    values = []
    for f in dataclasses.fields(task):
        value = getattr(task, f.name)
        try:
            values.extend(np.asarray(value, dtype=np.float32).reshape(-1).tolist())
        except (TypeError, ValueError):
            raise TypeError(f"task field {type(task).__name__}.{f.name}={value!r} is not "
                            "numeric, so the task cannot be given to the policy") from None
    return np.asarray(values, dtype=np.float32)
