"""RL² (Duan et al. 2016; Wang et al. 2016): config (``config.py``, torch-free) and learner
(a GRU policy trained across trials with PPO or TRPO, on the recurrent sampler)."""

from typing import Any

from .config import RL2Config

_LEARNER = ("RL2", "build_rl2", "ppo_loss", "trial_advantages")


def __getattr__(name: str) -> Any:
    if name in _LEARNER:  # imports torch: only when asked for
        from . import learner

        return getattr(learner, name)
    raise AttributeError(f"module 'metarl.algos.rl2' has no attribute {name!r}")


__all__ = ["RL2Config", *_LEARNER]
