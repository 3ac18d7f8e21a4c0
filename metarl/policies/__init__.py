"""Policies: functional networks whose parameters can be stacked per task."""

from .gaussian_mlp import GaussianMLPPolicy, stack_params

__all__ = ["GaussianMLPPolicy", "stack_params"]
