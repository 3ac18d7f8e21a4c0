"""Samplers: roll out policies for many tasks at once into an :class:`EpisodeBatch` (RL²'s
recurrent trials into a :class:`TrialBatch`)."""

from .batch_sampler import BACKENDS, BatchSampler, NonFiniteActionError, RolloutStreams, SamplerView
from .episode_batch import EpisodeBatch
from .gym_vector import GymVectorEnv
from .partition import PartitionedSampler
from .ray_sampler import RayBackendError, RaySampler  # imports Ray only when a RaySampler is made
from .recurrent import RecurrentSampler, TrialBatch

__all__ = ["BACKENDS", "BatchSampler", "EpisodeBatch", "GymVectorEnv", "NonFiniteActionError",
           "PartitionedSampler", "RayBackendError", "RaySampler", "RecurrentSampler",
           "RolloutStreams", "SamplerView", "TrialBatch"]
