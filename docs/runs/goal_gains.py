"""Pool the long PEARL ant-goal run's evaluations over seeds and relate each held-out goal's gain
to its distance from the nearest training goal (docs/results.md, "Ant goal, the long run").

    python docs/runs/goal_gains.py docs/runs/pearl_ant_goal_cpu_long/eval_iter1000_seed?

Every directory must be a `metarl eval` of the same run on the same fixed held-out goals (only
`--seed`, the action and latent noise, differs). Per goal the return at each k is averaged over
the seeds; differences to k = 0 are then paired over the goals. Reads the evaluations with
split_by_task.py's reader, so run it from anywhere as a script (its folder is on the path).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from metarl.envs.pearl_ant import PEARLAntGoal
from split_by_task import mean_se, read_returns


def spearman(x: np.ndarray, y: np.ndarray, draws: int = 100_000) -> tuple[float, float]:
    """Rank correlation and its two-sided permutation p-value (seeded, so it reprints)."""
    def z(r: np.ndarray) -> np.ndarray:  # ranks 0..n-1 standardised; ties are not expected
        return (r - r.mean(axis=-1, keepdims=True)) / r.std(axis=-1, keepdims=True)

    zx, zy = z(np.argsort(np.argsort(x)).astype(float)), z(np.argsort(np.argsort(y)).astype(float))
    rho = float(zx @ zy / len(x))
    null = z(np.random.default_rng(0).permuted(np.tile(zy, (draws, 1)), axis=1)) @ zx / len(x)
    return rho, float((np.abs(null) >= abs(rho) - 1e-12).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dirs", nargs="+", type=Path)
    parser.add_argument("--train-goals", type=int, default=20,
                        help="training goals of the run: the first N of the reference set")
    parser.add_argument("--near", type=float, default=0.6,
                        help="distance below which a held-out goal counts as near a training goal")
    args = parser.parse_args()

    returns: dict[tuple[int, int], list[float]] = {}
    goals = None
    for d in args.eval_dirs:
        if not (d / "eval_info.yaml").is_file() or not (d / "task_returns.csv").is_file():
            raise SystemExit(f"{d}: not a `metarl eval` output directory "
                             "(needs eval_info.yaml and task_returns.csv)")
        info = yaml.safe_load((d / "eval_info.yaml").read_text())
        these = np.asarray(info["held_out"]["task_values"], dtype=float)
        if goals is not None and not np.array_equal(goals, these):
            raise SystemExit(f"{d}: held-out goals differ from {args.eval_dirs[0]}'s")
        goals = these
        for (_, k, t), r in read_returns(d).items():
            returns.setdefault((k, t), []).append(r)
    steps = sorted({k for k, _ in returns})
    tasks = sorted({t for _, t in returns})
    mean = {k: np.array([np.mean(returns[(k, t)]) for t in tasks]) for k in steps}
    n = len(tasks)

    print(f"{len(args.eval_dirs)} evaluations, {n} held-out goals")
    for k in steps:
        diff = mean[k] - mean[0]
        print(f"k={k}: {mean[k].mean():.1f} ± {mean[k].std(ddof=1) / np.sqrt(n):.1f}"
              + (f"; minus k=0 {mean_se(list(diff))}, higher on {(diff > 0).sum()}/{n}" if k else ""))

    train = np.array([t.goal for t in PEARLAntGoal(goal_radius=3.0).reference_task_set()
                      .train[:args.train_goals]])
    nearest = np.array([np.linalg.norm(train - g, axis=1).min() for g in goals])
    gain = np.mean([mean[k] for k in steps if k], axis=0) - mean[0]
    print("goal | nearest training goal | gain (mean over k>=1 minus k=0)")
    for g, d, v in zip(goals, nearest, gain):
        print(f"({g[0]:+.2f}, {g[1]:+.2f}) | {d:.2f} | {v:+.1f}")
    near = nearest < args.near
    rho, p = spearman(nearest, gain)
    print(f"near (< {args.near}): {near.sum()} goals, gain {gain[near].mean():+.1f}; "
          f"others: {(~near).sum()}, gain {gain[~near].mean():+.1f}; "
          f"Spearman {rho:.2f} (permutation p = {p:.2f})")


if __name__ == "__main__":
    main()
