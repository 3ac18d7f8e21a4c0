"""``metarl bench fisher``: how far a subsampled Fisher moves MAML's TRPO direction.

At each point (the config's initial policy, or the checkpoints of a run), one fresh
meta-batch is sampled and the conjugate-gradient direction of the meta-step is solved
three ways on the same samples:

* ``full``: every episode (``fisher_subsample: 1``, the reference code's setting);
* ``kl_states``: the KL on a share ``f`` of each task's post-adaptation episodes, the
  inner steps on all of them (what ``algo.fisher_subsample: f`` does);
* ``episodes``: the inner steps inside the products subsampled as well (what
  ``fisher_subsample`` did before: the curvature of a different adaptation map).

It reports each approximation's cosine to ``full`` and the seconds of each solve, so the
approximation's error and its saving come from the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..algos import MAMLTRPO
from ..algos.maml.kernels import _kept_episodes, fisher_vector_product, subsample
from ..algos.maml.policy_gradient import surrogate_loss
from ..checkpoint import checkpoint_iteration, load_checkpoint
from ..config import DEFAULT_DEVICE, load_config
from ..experiment import build, resolve_device
from ..optim import conjugate_gradient, flat
from .flops import sync
from .maml import _fresh_meta_batch

VARIANTS = ("full", "kl_states", "episodes")


@dataclass
class FisherPoint:
    """One point of the comparison: the policy it was taken at and, per variant, the
    cosine of its CG direction to the full one and the seconds of its solve."""

    label: str
    cosine: dict[str, float]
    seconds: dict[str, float]


def bench_fisher(config: Path, fraction: float = 0.2, checkpoints: Iterable[Path] = (),
                 overrides: Iterable[str] = (), device: str = DEFAULT_DEVICE,
                 progress: Callable[[str], None] | None = None) -> list[FisherPoint]:
    """Compare the CG directions at the initial policy, then at each checkpoint."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--fraction must be in (0, 1), got {fraction}")
    cfg = load_config(config, list(overrides))
    if cfg.algo.name != "maml_trpo":
        raise ValueError(f"metarl bench fisher compares MAML-TRPO's meta-step; {config} sets "
                         f"algo.name {cfg.algo.name!r}")
    parts = build(cfg, resolve_device(device, "--device"))
    algo = parts.algo
    say = progress or (lambda _: None)
    points = [("initial policy", None), *((f"iteration {checkpoint_iteration(Path(c))}", Path(c))
                                          for c in checkpoints)]
    results = []
    try:
        for label, path in points:
            if path is not None:
                algo.policy.load_state_dict(load_checkpoint(path)["algo_state"]["policy"])
            point = _compare(algo, fraction, label)
            say(f"{label}: " + "  ".join(
                f"{v} cos {point.cosine[v]:.4f} ({point.seconds[v]:.2f}s)" for v in VARIANTS))
            results.append(point)
    finally:
        parts.sampler.close()
    return results


def _compare(algo: MAMLTRPO, fraction: float, label: str) -> FisherPoint:
    cfg = algo.cfg
    train, valid, old_params = _fresh_meta_batch(algo)
    policy = algo.policy
    with torch.no_grad():
        old_dist = policy(valid.observations, old_params)
    adapted = algo._adapted_from_meta(train, valid.num_tasks, create_graph=True)
    loss, _ = surrogate_loss(policy, adapted, valid, algo.advantages(valid), old_dist)
    gradient = flat(torch.autograd.grad(loss.mean(), list(policy.parameters()))).detach()
    detached = {k: v.detach() for k, v in old_params.items()}
    method = algo._fisher_method()
    inner = {"full": train, "kl_states": train,
             "episodes": [(subsample(b, fraction),
                           a[:, :_kept_episodes(b.episodes_per_task, fraction)])
                          for b, a in train]}
    directions, seconds = {}, {}
    for variant in VARIANTS:
        share = 1.0 if variant == "full" else fraction
        sync(valid.rewards.device)
        start = time.perf_counter()
        fvp = fisher_vector_product(method, policy, inner[variant], valid,
                                    algo.inner_step_size, detached, cfg.cg_damping, share)
        directions[variant], _ = conjugate_gradient(fvp, gradient, cfg.cg_iters)
        sync(valid.rewards.device)
        seconds[variant] = time.perf_counter() - start
        del fvp
    full = directions["full"].double()
    cosine = {v: torch.nn.functional.cosine_similarity(d.double(), full, dim=0).item()
              for v, d in directions.items()}
    return FisherPoint(label, cosine, seconds)


__all__ = ["FisherPoint", "VARIANTS", "bench_fisher"]
