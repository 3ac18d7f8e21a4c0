"""Meta-learning algorithms."""

from .maml_trpo import MAMLTRPO

__all__ = ["MAMLTRPO"]
