"""Policies: functional networks whose parameters can be stacked per task, and PEARL's
latent-conditioned tanh-Gaussian actor."""

from .gaussian_mlp import GaussianMLPPolicy, stack_params
from .tanh_gaussian import TanhGaussianPolicy

__all__ = ["GaussianMLPPolicy", "TanhGaussianPolicy", "stack_params"]
