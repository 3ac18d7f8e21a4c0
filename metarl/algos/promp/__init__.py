"""ProMP (Rothfuss et al. 2019): config (``config.py``, torch-free) and learner, on MAML's
batched sampler, advantages and inner step."""

from typing import Any

from .config import ProMPConfig

_LEARNER = ("ProMP", "build_promp", "lvc_inner_loss", "clipped_surrogate")


def __getattr__(name: str) -> Any:
    if name in _LEARNER:  # imports torch: only when asked for
        from . import learner

        return getattr(learner, name)
    raise AttributeError(f"module 'metarl.algos.promp' has no attribute {name!r}")


__all__ = ["ProMPConfig", *_LEARNER]
