"""Meta-learning algorithms: one contract (:class:`MetaLearner`), one registry, one room each.

``maml/`` holds MAML-TRPO and plain TRPO (the MAML paper's baselines), ``pearl/`` holds
PEARL, ``promp/`` ProMP (on MAML's sampler and inner step), ``rl2/`` RL² (a recurrent
policy on the recurrent sampler). Importing this package imports no torch; the learners
load when first used.
"""

from typing import Any

from .base import Adaptation, AdaptationError, BuildContext, IterationStats, MetaLearner
from .registry import AlgorithmSpec, get_algorithm, list_algorithms, register_algorithm

_LAZY = {"MAMLTRPO": "metarl.algos.maml.learner", "TRPO": "metarl.algos.maml.learner",
         "PEARL": "metarl.algos.pearl.learner", "ProMP": "metarl.algos.promp.learner",
         "RL2": "metarl.algos.rl2.learner"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metarl.algos' has no attribute {name!r}")


__all__ = ["Adaptation", "AdaptationError", "AlgorithmSpec", "BuildContext", "IterationStats",
           "MAMLTRPO", "MetaLearner", "PEARL", "ProMP", "RL2", "TRPO", "get_algorithm",
           "list_algorithms", "register_algorithm"]
