"""Samplers: roll out policies for many tasks at once into an :class:`EpisodeBatch`."""

from .batch_sampler import BatchSampler, NonFiniteSimulationError
from .episode_batch import EpisodeBatch

__all__ = ["BatchSampler", "EpisodeBatch", "NonFiniteSimulationError"]
