"""``metarl bench maml``: seconds per meta-iteration of the MAML family (MAML-TRPO, ProMP),
split by phase.

Runs whole meta-iterations of a config (sampling, adaptation, TRPO meta-step) with
logging and checkpoints off, and reports the mean over the timed iterations of

* ``sample_s``: rollouts before and after adaptation;
* ``adapt_s``: baseline fits and inner policy-gradient steps between them;
* ``update_s``: the meta-step (MAML-TRPO: second-order meta-gradient, conjugate
  gradient on Fisher-vector products, line search; ProMP: its Adam steps);
* ``total_s``: wall time of the iteration; ``env_steps_per_s`` = env steps / ``total_s``.

After the timed iterations, one more meta-batch is sampled and its meta-step is run twice
on copies of the policy: timed, and with its matrix-product FLOPs counted
(:mod:`.flops`); ``update_gflops`` is their ratio and ``matmul_ceiling_gflops`` the
throughput of the same products timed alone on the update's shapes, measured in the same
run (``update_fraction_of_ceiling`` = their ratio).

With ``compare``, one more meta-batch is sampled and its meta-step is timed twice on
copies of the policy: as configured, and the way the reference code computes it
(double backprop of the KL through the inner step on every episode: ``fisher: exact``,
``fisher_subsample: 1``); ``update_speedup`` is their ratio.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable


from ..algos import MAMLTRPO
from ..config import DEFAULT_DEVICE, load_config
from ..experiment import build, resolve_device
from .flops import MatmulFlops, matmul_ceiling, sync

PHASES = ("sample_s", "adapt_s", "update_s")


@dataclass
class MamlBenchResult:
    """Mean seconds per meta-iteration by phase, env steps per second and, when
    compared, the same meta-step timed as configured and the reference way."""

    sample_s: float
    adapt_s: float
    update_s: float
    total_s: float
    env_steps_per_s: float
    env_steps_per_iteration: float
    compared_update_s: float | None = None
    reference_update_s: float | None = None
    update_gflop: float | None = None  # matrix-product GFLOP of one meta-step
    update_gflops: float | None = None  # achieved GFLOP/s of that meta-step
    matmul_ceiling_gflops: float | None = None

    def to_dict(self) -> dict[str, float]:
        """The JSON figures: exactly ``sample_s, adapt_s, update_s, total_s,
        env_steps_per_s``, plus ``reference_update_s`` and ``update_speedup`` when compared."""
        out = {k: getattr(self, k) for k in (*PHASES, "total_s", "env_steps_per_s")}
        if self.update_gflops is not None and self.matmul_ceiling_gflops is not None:
            out["update_gflop"] = self.update_gflop
            out["update_gflops"] = self.update_gflops
            out["matmul_ceiling_gflops"] = self.matmul_ceiling_gflops
            out["update_fraction_of_ceiling"] = self.update_gflops / self.matmul_ceiling_gflops
        if self.reference_update_s is not None and self.compared_update_s is not None:
            out["reference_update_s"] = self.reference_update_s
            out["update_speedup"] = self.reference_update_s / self.compared_update_s
        return out


def bench_maml(config: Path, iterations: int = 3, warmup: int = 1, overrides: Iterable[str] = (),
               device: str = DEFAULT_DEVICE, compare: bool = False,
               progress: Callable[[str], None] | None = None) -> MamlBenchResult:
    """Time ``iterations`` meta-iterations of ``config`` after ``warmup`` untimed ones."""
    if iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {iterations}")
    if warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {warmup}")
    cfg = load_config(config, list(overrides))
    if compare and cfg.algo.name != "maml_trpo":
        raise ValueError(f"--compare times MAML-TRPO's meta-step the reference way; {config} "
                         f"sets algo.name {cfg.algo.name!r}")
    parts = build(cfg, resolve_device(device, "--device"))
    algo = parts.algo
    if not (isinstance(algo, MAMLTRPO) and algo.adapts_in_training):
        parts.sampler.close()
        raise ValueError(f"metarl bench maml times the MAML family's meta-iterations "
                         f"(maml_trpo, promp); {config} sets algo.name {cfg.algo.name!r}")
    say = progress or (lambda _: None)
    sums = dict.fromkeys((*PHASES, "total_s", "env_steps"), 0.0)
    compared = reference = None
    try:
        for i in range(warmup + iterations):
            t0 = time.perf_counter()
            result = algo.train_iteration()
            stats = result.scalars
            total = time.perf_counter() - t0
            timed = i >= warmup
            label = f"iteration {i + 1 - warmup}" if timed else f"warm-up {i + 1}"
            say(f"{label}: " + "  ".join(f"{k} {stats['time/' + k]:.2f}" for k in PHASES)
                + f"  total_s {total:.2f}  return {stats['meta_train/return/adapt_0']:.1f}")
            if timed:
                for k in PHASES:
                    sums[k] += stats[f"time/{k}"]
                sums["total_s"] += total
                sums["env_steps"] += result.env_steps
        gflop, gflops, ceiling = _update_throughput(algo, cfg)
        say(f"meta-step: {gflop:.1f} GFLOP of matrix products at {gflops:.1f} GFLOP/s; "
            f"the same products alone on its shapes: {ceiling:.1f} GFLOP/s")
        if compare:
            compared, reference = _compare_meta_steps(algo)
            say(f"same meta-step: configured {compared:.2f}s, reference {reference:.2f}s")
    finally:
        parts.sampler.close()
    mean = {k: v / iterations for k, v in sums.items()}
    return MamlBenchResult(mean["sample_s"], mean["adapt_s"], mean["update_s"], mean["total_s"],
                           mean["env_steps"] / mean["total_s"], mean["env_steps"],
                           compared, reference, gflop, gflops, ceiling)


def _fresh_meta_batch(algo: MAMLTRPO) -> tuple[list, Any, dict]:
    cfg = algo.cfg
    tasks = algo.sampler.sample_tasks(cfg.meta_batch_size, algo.task_rng)
    adaptation = algo.adapt(tasks, cfg.inner_steps, algo.episodes_per_task, algo.sampler,
                            step_sizes=[cfg.inner_step_size]).check()
    return (list(zip(adaptation.batches[:-1], adaptation.advantages)), adaptation.batches[-1],
            adaptation.params)


def _update_throughput(algo: MAMLTRPO, cfg: Any) -> tuple[float, float, float]:
    """GFLOP of one meta-step, its achieved GFLOP/s and the matmul ceiling on its shapes."""
    train, valid, params = _fresh_meta_batch(algo)
    copies = [type(algo)(copy.deepcopy(algo.policy), algo.sampler, algo.cfg,
                         algo.episodes_per_task) for _ in range(2)]
    device = valid.rewards.device
    sync(device)
    start = time.perf_counter()
    copies[0].meta_update(train, valid, params)
    sync(device)
    seconds = time.perf_counter() - start
    with MatmulFlops() as counter:  # the same work again (same inputs, same line search)
        copies[1].meta_update(train, valid, params)
    sizes = [valid.observations.shape[-1], *cfg.policy.hidden_sizes, valid.actions.shape[-1]]
    rows = valid.episodes_per_task * valid.observations.shape[2]
    ceiling = matmul_ceiling(list(zip(sizes[:-1], sizes[1:])), valid.num_tasks, rows, device,
                             valid.observations.dtype)
    return counter.flops / 1e9, counter.flops / 1e9 / seconds, ceiling



def _compare_meta_steps(algo: MAMLTRPO) -> tuple[float, float]:
    """Seconds of one meta-step on fresh samples: as configured, and the reference way."""
    cfg = algo.cfg
    train, valid, params = _fresh_meta_batch(algo)
    seconds = []
    for variant in (cfg, replace(cfg, fisher="exact", fisher_subsample=1.0)):
        copy_ = MAMLTRPO(copy.deepcopy(algo.policy), algo.sampler, variant,
                         algo.episodes_per_task)
        t0 = time.perf_counter()
        copy_.meta_update(train, valid, params)
        sync(valid.rewards.device)
        seconds.append(time.perf_counter() - t0)
    return seconds[0], seconds[1]
