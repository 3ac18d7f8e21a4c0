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


def _goals(n, rng, x_low, x_high):
    from metarl.envs.tasks import GoalTask

    return [GoalTask((float(x), float(y))) for x, y in
            zip(rng.uniform(x_low, x_high, n), rng.uniform(-0.5, 0.5, n))]


class SplitNavEnv(SuccessNavEnv):
    """Training goals with x <= 0.4, held-out goals with x > 0.4: a family with a test split."""

    def sample_tasks(self, n, rng=None):
        return _goals(n, rng if rng is not None else self.np_random, -0.5, 0.4)

    def sample_test_tasks(self, n, rng=None):
        return _goals(n, rng if rng is not None else self.np_random, 0.41, 0.5)


class SplitNavBatchEnv(SuccessNavBatchEnv):
    def sample_tasks(self, n, rng):
        return _goals(n, rng, -0.5, 0.4)

    def sample_test_tasks(self, n, rng):
        return _goals(n, rng, 0.41, 0.5)


register_task_family("SplitNav-v0", env_entry_point=SplitNavEnv,
                     batch_entry_point=SplitNavBatchEnv, max_episode_steps=100, override=True)
