"""Task dataclasses shared by the built-in families.

A task is a small frozen dataclass: hashable, printable, and safe to put in
``info["task"]``, checkpoints (as plain fields) and logs.
"""

from __future__ import annotations

from dataclasses import dataclass


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
