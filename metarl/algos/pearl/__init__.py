"""PEARL: config (``config.py``, torch-free), learner, data collection, rollback of
non-finite state, losses, networks and the per-task replay buffers."""

from typing import Any

from .config import PEARLConfig

_LEARNER = ("PEARL", "CollectionError", "NonFiniteStateError", "MAX_ROUNDS_WITHOUT_STEPS",
            "build_pearl")


def __getattr__(name: str) -> Any:
    if name in _LEARNER:  # imports torch: only when asked for
        from . import learner

        return getattr(learner, name)
    raise AttributeError(f"module 'metarl.algos.pearl' has no attribute {name!r}")


__all__ = ["PEARLConfig", *_LEARNER]
