"""The ``algo`` keys of ProMP (``algo.name: promp``; Rothfuss et al. 2019).

Defaults are the reference code's (github.com/jonasrothfuss/ProMP
``run_scripts/pro-mp_run_mujoco.py`` and ``meta_policy_search/meta_algos/pro_mp.py``).
The inner loop and the advantages are MAML's keys. Torch-free: configs are checked
before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...schema import setting
from ..maml.config import InnerLoopConfig


@dataclass
class ProMPConfig(InnerLoopConfig):
    """ProMP: MAML whose inner step uses the low-variance curvature (LVC) objective and
    whose outer step is a clipped, KL-penalised surrogate optimised with Adam."""

    name: str = setting("promp", "Algorithm (see `metarl algos`).")
    meta_batch_size: int = setting(40, "Tasks sampled per iteration.", ge=1, le=10**6)
    learning_rate: float = setting(1e-3, "Adam learning rate of the meta-update.", gt=0,
                                   le=10)
    promp_steps: int = setting(5, "Adam steps on each meta-batch (without re-sampling).",
                               ge=1, le=10**4)
    clip_eps: float = setting(0.3, "Clip range of the outer likelihood ratio: [1 - eps, "
                              "1 + eps].", gt=0, lt=1)
    inner_kl_penalty: float = setting(5e-4, "Initial weight of the KL between the policy "
                                      "that sampled each inner batch and the current one.",
                                      ge=0, le=1e6)
    adaptive_inner_kl_penalty: bool = setting(False, "Halve / double the inner KL weight "
                                              "after each meta-update when the inner KL is "
                                              "below / above target_inner_kl (by 1.5x).")
    target_inner_kl: float = setting(0.01, "Target inner KL of adaptive_inner_kl_penalty.",
                                     gt=0, le=10)
    eval_step_sizes: list[float] = setting(
        [0.1], "Step sizes of `metarl eval`'s adaptation: step k uses entry min(k, len-1) "
        "(the reference adapts with its inner step size).", gt=0, le=1e3)
