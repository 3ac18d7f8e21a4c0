"""How large a MAML run's test-time inner step is, checkpoint by checkpoint, as quoted in
docs/results.md.

    python docs/runs/inner_step_size.py /tmp/maml_half_cheetah_dir --checkpoints 100 300 800

For each checkpoint it adapts the run's policy with one step of ``algo.eval_step_sizes[0]`` on
the 40 held-out tasks `metarl eval` uses (same task draw and action noise as `metarl eval
--seed 0`) and prints, over tasks (mean, and the largest), the size of that step in
distribution space: the KL divergence KL(pi_0 || pi_1) between the pre- and post-step policies,
averaged over the states of the pre-step rollouts, and the mean absolute change of the action
mean; the norm of the parameter change; and the mean return before and after the step with
its standard error across tasks. A MAML run whose inner step grows over meta-training makes a
noisier one-step adaptation (the step is a fixed multiple of a sampled gradient).
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.distributions import kl_divergence

from metarl.evaluation import DEFAULT_EVAL_TASKS, held_out_tasks
from metarl.experiment import STREAM_EVAL_ACTIONS, STREAM_EVAL_TASKS, derive_seed
from metarl.policies.gaussian_mlp import stack_params
from metarl.runs import load_run
from metarl.samplers import RolloutStreams


def mean_se(values: torch.Tensor) -> str:
    """Mean ± standard error over tasks."""
    return f"{values.mean().item():7.1f} ± {values.std().item() / math.sqrt(len(values)):4.1f}"


@dataclass
class InnerStep:
    """Per-task measurements of one test-time inner step (tensors of shape ``[tasks]``)."""

    iteration: int
    step_size: float
    kl: torch.Tensor           # KL(pi_0 || pi_1), mean over the pre-step rollouts' states
    mean_change: torch.Tensor  # mean |mu_1 - mu_0| over action dimensions and those states
    param_change: torch.Tensor  # ||theta_1 - theta_0||
    returns: list[torch.Tensor]  # mean episode return before and after the step

    def row(self) -> str:
        """One line of the printed table."""
        return (f"{self.iteration:9d} | {self.step_size:4g} | "
                f"{self.kl.mean():7.3f} {self.kl.max():7.3f} | "
                f"{self.mean_change.mean():6.3f} {self.mean_change.max():6.3f} | "
                f"{self.param_change.mean():6.2f} | "
                f"{mean_se(self.returns[0])} | {mean_se(self.returns[1])}")


def measure(run_dir: Path, checkpoint: int | str, seed: int = 0,
            num_tasks: int = DEFAULT_EVAL_TASKS) -> InnerStep:
    """Adapt ``checkpoint`` of the run in ``run_dir`` by one step on `metarl eval`'s held-out
    tasks and action noise for ``--seed seed`` and measure the step."""
    run = load_run(run_dir, torch.device("cpu"), checkpoint=checkpoint)
    try:
        learner, sampler = run.parts.algo, run.parts.sampler
        step = learner.eval_settings()["step_sizes"][0]
        tasks = held_out_tasks(learner, sampler, num_tasks,
                               derive_seed(seed, STREAM_EVAL_TASKS), lambda _: None)
        streams = sampler.using(RolloutStreams(derive_seed(seed, STREAM_EVAL_ACTIONS)))
        episodes = run.cfg.sampler.eval_episodes_per_task
        adaptation = learner.adapt(tasks, 1, episodes, streams, step_sizes=[step]).check()
        before = adaptation.batches[0]
        policy = learner.policy
        with torch.no_grad():
            pre = stack_params({k: v.detach() for k, v in policy.params().items()}, len(tasks))
            post = adaptation.params
            pi0, pi1 = policy(before.observations, pre), policy(before.observations, post)
            mask = before.mask
            steps = mask.sum((1, 2))
            return InnerStep(
                iteration=run.state["iteration"], step_size=step,
                kl=(kl_divergence(pi0, pi1) * mask).sum((1, 2)) / steps,
                mean_change=((pi1.mean - pi0.mean).abs().mean(-1) * mask).sum((1, 2)) / steps,
                param_change=torch.sqrt(sum(((post[k] - pre[k]) ** 2).flatten(1).sum(1)
                                            for k in pre)),
                returns=[b.episode_returns().mean(-1) for b in adaptation.batches])
    finally:
        run.parts.algo.close()
        run.parts.sampler.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoints", type=int, nargs="+", required=True)
    parser.add_argument("--seed", type=int, default=0, help="metarl eval's --seed")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print("iteration | step | KL mean     max | |dmu| mean max | |dθ| | return k=0     | k=1")
    for n in args.checkpoints:
        print(measure(args.run_dir, n, args.seed).row(), flush=True)


if __name__ == "__main__":
    main()
