"""MAML-TRPO and plain TRPO: config (``config.py``, torch-free), learner, batched kernels,
policy gradients and the linear value baseline of the advantages."""

from typing import Any

from .config import MAMLTRPOConfig, MixtureTRPOConfig, TRPOConfig

_LEARNER = ("MAMLTRPO", "TRPO", "GradientAdaptation", "build_maml_trpo", "build_trpo")


def __getattr__(name: str) -> Any:
    if name in _LEARNER:  # imports torch: only when asked for
        from . import learner

        return getattr(learner, name)
    raise AttributeError(f"module 'metarl.algos.maml' has no attribute {name!r}")


__all__ = ["MAMLTRPOConfig", "MixtureTRPOConfig", "TRPOConfig", *_LEARNER]
