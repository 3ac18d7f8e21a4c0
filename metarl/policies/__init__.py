"""Policies: functional networks whose parameters can be stacked per task, PEARL's
latent-conditioned tanh-Gaussian actor, and RL²'s recurrent Gaussian GRU."""

from .gaussian_gru import GaussianGRUPolicy, rl2_inputs
from .gaussian_mlp import GaussianMLPPolicy, stack_params
from .tanh_gaussian import TanhGaussianPolicy

__all__ = ["GaussianGRUPolicy", "GaussianMLPPolicy", "TanhGaussianPolicy", "rl2_inputs",
           "stack_params"]
