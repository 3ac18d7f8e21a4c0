"""Task families (installed as ``metarl.envs``).

Importing this package registers the built-in families below, in this one place,
so ``gymnasium.make("metarl/HalfCheetahVel-v0")`` works after ``import metarl.envs``.
Users add their own with :func:`register_mujoco_family` (MuJoCo models: gymnasium
env and batched env from one definition) or :func:`register_task_family` (any env).
"""

from .base import BatchTaskEnv, ReferenceTaskSet, TaskEnvMixin, TaskFamilyError
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
from .tasks import DirectionTask, GoalTask, HeadingTask, VelocityTask, task_features

# Gymnasium-style MDPs (HalfCheetah-v5 / Ant-v5 models, frame skip 5) with the papers' tasks;
# neither paper ran these MDPs (see metarl.envs.locomotion)
_LOCOMOTION = {
    "HalfCheetahVel-v0": "half-cheetah at a target velocity v* ~ U[0, 2] (MAML's task, "
                         "Gymnasium-style MDP)",
    "HalfCheetahDir-v0": "half-cheetah forward or backward (MAML's task, Gymnasium-style MDP)",
    "AntVel-v0": "ant at a target velocity v* ~ U[0, 3] (MAML's task, Gymnasium-style MDP)",
    "AntDir-v0": "ant forward or backward (MAML's task, Gymnasium-style MDP)",
    "AntGoal-v0": "ant walking to a goal in a disk of radius 3 (PEARL's task, Gymnasium-style "
                  "MDP)",
}

# The MAML reference code's own MDPs (cbfinn/maml_rl: rllab model, 1 physics step of 0.01 s,
# 20-dim observation, torso COM velocity); see metarl.envs.maml_locomotion.
_MAML_LOCOMOTION = {
    "MAMLHalfCheetahVel-v0": "half-cheetah at a target velocity v* ~ U[0, 2], as the MAML "
                             "reference code (cbfinn/maml_rl HalfCheetahEnvRand)",
    "MAMLHalfCheetahDir-v0": "half-cheetah forward or backward, as the MAML reference code "
                             "(cbfinn/maml_rl HalfCheetahEnvRandDirec)",
}

# The MAML reference code's own ant MDPs (rllab ant model, 1 RK4 physics step of 0.02 s,
# 125-dim observation with contact forces, torso COM velocity); see metarl.envs.maml_ant.
_MAML_ANT = {
    "MAMLAntVel-v0": "ant at a target velocity v* ~ U[0, 3], as the MAML reference code "
                     "(cbfinn/maml_rl AntEnvRand)",
    "MAMLAntDir-v0": "ant forward or backward, as the MAML reference code "
                     "(cbfinn/maml_rl AntEnvRandDirec)",
    "MAMLAntGoal-v0": "ant walking to a goal in [-3, 3]^2, as the MAML reference code "
                      "(cbfinn/maml_rl AntEnvRandGoal)",
}

# The PEARL reference code's own MDPs (katerakelly/oyster on gym 0.12.1: gym's models, frame
# skip 5, oyster's observations and rewards, fixed reference task sets); see
# metarl.envs.pearl_locomotion and metarl.envs.pearl_ant.
_PEARL_LOCOMOTION = {
    "PEARLHalfCheetahVel-v0": "half-cheetah at a target velocity v* ~ U[0, 3], as the PEARL "
                              "reference code (katerakelly/oyster cheetah-vel)",
    "PEARLHalfCheetahDir-v0": "half-cheetah forward or backward, as the PEARL reference code "
                              "(katerakelly/oyster cheetah-dir)",
}
_PEARL_ANT = {
    "PEARLAntGoal-v0": "ant walking to a goal in the disk of radius 3, as the PEARL reference "
                       "code (katerakelly/oyster ant-goal)",
    "PEARLAntDir-v0": "ant running in a heading in the plane, as the PEARL reference code "
                      "(katerakelly/oyster ant-dir)",
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
    for module, families in (("locomotion", _LOCOMOTION),
                             ("maml_locomotion", _MAML_LOCOMOTION), ("maml_ant", _MAML_ANT),
                             ("pearl_locomotion", _PEARL_LOCOMOTION), ("pearl_ant", _PEARL_ANT)):
        for family_id, description in families.items():
            name = family_id.split("-")[0]
            register_task_family(
                family_id,
                env_entry_point=f"metarl.envs.{module}:{name}Env",
                batch_entry_point=f"metarl.envs.{module}:{name}BatchEnv",
                max_episode_steps=200,
                description=description,
                override=True,
            )
    # Meta-World (optional, Meta-World's own MuJoCo pin): registered only when installed,
    # found without importing it (that takes ~1 s); the module imports it at make time.
    from .metaworld import register_metaworld_families

    register_metaworld_families()


register_builtin_families()

__all__ = [
    "ASSETS",
    "BatchTaskEnv",
    "DirectionTask",
    "GoalTask",
    "HeadingTask",
    "MujocoBatchEnv",
    "MujocoTaskEnv",
    "MujocoTaskFamily",
    "ReferenceTaskSet",
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
