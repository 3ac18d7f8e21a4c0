"""Samplers: roll out policies for many tasks at once into an :class:`EpisodeBatch`."""

from .batch_sampler import BACKENDS, BatchSampler, NonFiniteActionError, RolloutStreams, SamplerView
from .episode_batch import EpisodeBatch
from .gym_vector import GymVectorEnv
from .partition import PartitionedSampler
from .ray_sampler import RayBackendError, RaySampler  # imports Ray only when a RaySampler is made

__all__ = ["BACKENDS", "BatchSampler", "EpisodeBatch", "GymVectorEnv", "NonFiniteActionError",
           "PartitionedSampler", "RayBackendError", "RaySampler", "RolloutStreams",
           "SamplerView"]
