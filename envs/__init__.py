"""Task families (installed as ``metarl.envs``).

Importing this package registers the built-in families below, in this one place,
so ``gymnasium.make("metarl/HalfCheetahVel-v0")`` works after ``import metarl.envs``.
Users add their own with :func:`register_mujoco_family` (MuJoCo models: gymnasium
env and batched env from one definition) or :func:`register_task_family` (any env).
"""

from .base import BatchTaskEnv, TaskEnvMixin, TaskFamilyError
from .mujoco_env import (
    ASSETS,
    MujocoBatchEnv,
    MujocoTaskEnv,
    MujocoTaskFamily,
    SimState,
    register_mujoco_family,
)
from .registry import (
    TaskFamilySpec,
    UnknownTaskFamilyError,
    get_task_family,
    list_task_families,
    register_task_family,
)
from .tasks import DirectionTask, GoalTask, VelocityTask, task_features

_LOCOMOTION = {
    "HalfCheetahVel-v0": "half-cheetah running at a target velocity v* ~ U[0, 2] (MAML)",
    "HalfCheetahDir-v0": "half-cheetah running forward or backward (MAML)",
    "AntVel-v0": "ant running at a target velocity v* ~ U[0, 3] (MAML)",
    "AntDir-v0": "ant running forward or backward (MAML)",
    "AntGoal-v0": "ant walking to a goal in a disk of radius 3 (PEARL)",
}


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
    for family_id, description in _LOCOMOTION.items():
        name = family_id.split("-")[0]
        register_task_family(
            family_id,
            env_entry_point=f"metarl.envs.locomotion:{name}Env",
            batch_entry_point=f"metarl.envs.locomotion:{name}BatchEnv",
            max_episode_steps=200,
            description=description,
            override=True,
        )


register_builtin_families()

__all__ = [
    "ASSETS",
    "BatchTaskEnv",
    "DirectionTask",
    "GoalTask",
    "MujocoBatchEnv",
    "MujocoTaskEnv",
    "MujocoTaskFamily",
    "SimState",
    "TaskEnvMixin",
    "TaskFamilyError",
    "TaskFamilySpec",
    "UnknownTaskFamilyError",
    "VelocityTask",
    "task_features",
    "get_task_family",
    "list_task_families",
    "register_builtin_families",
    "register_mujoco_family",
    "register_task_family",
]
