"""Meta-learning algorithms (and the plain-TRPO baseline)."""

from .maml_trpo import MAMLTRPO, TRPO

ALGORITHMS = {cls.name: cls for cls in (MAMLTRPO, TRPO)}

__all__ = ["ALGORITHMS", "MAMLTRPO", "TRPO"]
