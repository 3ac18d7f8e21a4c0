"""Task families (installed as ``metarl.envs``).

Importing this package registers the built-in families below, in this one place,
so ``gymnasium.make("metarl/Navigation2D-v0")`` works after ``import metarl.envs``.
Users add their own with :func:`register_task_family`.
"""

from .base import BatchTaskEnv, TaskEnvMixin
from .registry import (
    TaskFamilySpec,
    UnknownTaskFamilyError,
    get_task_family,
    list_task_families,
    register_task_family,
)


def register_builtin_families() -> None:
    """Register the task families that ship with metarl (idempotent)."""
    register_task_family(
        "Navigation2D-v0",
        env_entry_point="metarl.envs.navigation:Navigation2DEnv",
        batch_entry_point="metarl.envs.navigation:Navigation2DBatchEnv",
        max_episode_steps=100,
        description="point robot reaching a hidden goal in [-0.5, 0.5]^2 (Finn et al. 2017)",
        override=True,
    )


register_builtin_families()

__all__ = [
    "BatchTaskEnv",
    "TaskEnvMixin",
    "TaskFamilySpec",
    "UnknownTaskFamilyError",
    "get_task_family",
    "list_task_families",
    "register_builtin_families",
    "register_task_family",
]
