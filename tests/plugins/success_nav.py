"""A navigation family that reports ``info["success"]`` (within 0.1 of the goal), for the
tests of success-rate logging: both of its envs, registered as ``SuccessNav-v0``."""

import numpy as np

from metarl.envs import register_task_family
from metarl.envs.navigation import Navigation2DBatchEnv, Navigation2DEnv

RADIUS = 0.1


class SuccessNavEnv(Navigation2DEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["success"] = info["distance"] < RADIUS
        return obs, reward, terminated, truncated, info


class SuccessNavBatchEnv(Navigation2DBatchEnv):
    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        info["success"] = np.linalg.norm(self._state - self._goals, axis=1) < RADIUS
        return obs, reward, terminated, truncated, info


register_task_family("SuccessNav-v0", env_entry_point=SuccessNavEnv,
                     batch_entry_point=SuccessNavBatchEnv, max_episode_steps=100, override=True)
