"""Meta-learning algorithms (and the plain-TRPO baseline)."""

from .maml_trpo import MAMLTRPO, TRPO
from .pearl import PEARL, PEARLConfig

ALGORITHMS = {cls.name: cls for cls in (MAMLTRPO, TRPO, PEARL)}

__all__ = ["ALGORITHMS", "MAMLTRPO", "PEARL", "PEARLConfig", "TRPO"]
