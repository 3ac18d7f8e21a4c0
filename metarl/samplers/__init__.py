"""Samplers: roll out policies for many tasks at once into an :class:`EpisodeBatch`."""

from .batch_sampler import BACKENDS, BatchSampler, NonFiniteActionError
from .episode_batch import EpisodeBatch
from .gym_vector import GymVectorEnv

__all__ = ["BACKENDS", "BatchSampler", "EpisodeBatch", "GymVectorEnv", "NonFiniteActionError"]
