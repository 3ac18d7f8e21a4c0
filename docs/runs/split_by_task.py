"""Per-task statistics of a `metarl eval` output directory, as quoted in docs/results.md.

    python docs/runs/split_by_task.py docs/runs/maml_half_cheetah_vel/eval_iter800 --cuts 0.67 1.33
    python docs/runs/split_by_task.py docs/runs/maml_half_cheetah_dir/eval_iter300
    cd docs/runs && python split_by_task.py maml_half_cheetah_vel_kl002/eval_iter300
        --cuts 0.67 1.33 --also kl001=maml_half_cheetah_vel/eval_iter300
        --also pretrained=maml_half_cheetah_vel/eval_iter800:pretrained   (one line)

It reads `task_returns.csv` (one row per method, step and held-out task) and the held-out task
values in `eval_info.yaml`. It prints, for MAML against each baseline, the paired difference per
adaptation step (mean ± standard error over tasks) and the number of tasks on which MAML is
higher. `--also` adds a method from another evaluation of the same held-out tasks (same
`metarl eval --seed`, so the same action noise). Then it groups the tasks by their value and
prints each group's means: by value where the task set is discrete (a direction), otherwise by
the `--cuts` given.
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import yaml


def mean_se(values: list[float]) -> str:
    """Format the mean and its standard error, e.g. ``+12.3 ± 4.5``."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return f"{m:+.1f}"
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return f"{m:+.1f} ± {math.sqrt(var / len(values)):.1f}"


def read_returns(eval_dir: Path) -> dict[tuple[str, int, int], float]:
    """``task_returns.csv`` as {(method, step, task): return}."""
    with open(eval_dir / "task_returns.csv", newline="") as f:
        return {(row["method"], int(row["step"]), int(row["task"])): float(row["return"])
                for row in csv.DictReader(f)}


def load(eval_dir: Path) -> tuple[dict[tuple[str, int, int], float], list[float]]:
    """Return {(method, step, task): return} and the first coordinate of each task's value."""
    returns = read_returns(eval_dir)
    info = yaml.safe_load((eval_dir / "eval_info.yaml").read_text())
    values = [v[0] if isinstance(v, list) else v for v in info["held_out"]["task_values"]]
    return returns, values


def merge(returns: dict[tuple[str, int, int], float], values: list[float], eval_dir: Path,
          spec: str) -> None:
    """Add the rows of another evaluation of the same tasks (``NAME=DIR[:METHOD]``, METHOD
    default ``maml``) to ``returns`` as method NAME; the task values must be the same."""
    name, _, where = spec.partition("=")
    path, _, method = where.partition(":")
    if not name or not path:
        raise SystemExit(f"--also: expected NAME=DIR[:METHOD], got {spec!r}")
    method = method or "maml"
    other, other_values = load(Path(path))
    if other_values != values:
        raise SystemExit(f"--also {spec}: its held-out tasks differ from {eval_dir}'s")
    rows = {(name, k, t): r for (m, k, t), r in other.items() if m == method}
    if not rows:
        raise SystemExit(f"--also {spec}: {path} has no {method!r} rows")
    returns.update(rows)


def groups(values: list[float], cuts: list[float] | None) -> list[tuple[str, list[int]]]:
    """Tasks grouped by value: each distinct value if there are at most 4, else by the cuts."""
    distinct = sorted(set(values))
    if cuts is None:
        if len(distinct) > 4:
            return []
        return [(f"value {d:g}", [t for t, v in enumerate(values) if v == d]) for d in distinct]
    edges = [-math.inf, *cuts, math.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        tasks = [t for t, v in enumerate(values) if lo <= v < hi]
        if tasks:
            out.append((f"[{lo:g}, {hi:g})", tasks))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_dir", type=Path, help="directory written by `metarl eval`")
    parser.add_argument("--cuts", type=float, nargs="+", help="task-value boundaries of the groups")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=DIR[:METHOD]",
                        help="compare with METHOD (default maml) of another evaluation of the "
                             "same tasks, e.g. another run's iterate, as method NAME")
    args = parser.parse_args()
    returns, values = load(args.eval_dir)
    for spec in args.also:
        merge(returns, values, args.eval_dir, spec)
    n = len(values)
    steps = sorted({k[1] for k in returns})
    methods = sorted({k[0] for k in returns})
    if "maml" not in methods:
        raise SystemExit(f"{args.eval_dir / 'task_returns.csv'} has no 'maml' rows; methods: {methods}")
    for other in (m for m in methods if m != "maml"):
        diffs = [f"k={k}: {mean_se([returns['maml', k, t] - returns[other, k, t] for t in range(n)])}"
                 for k in steps]
        wins = [sum(returns["maml", k, t] > returns[other, k, t] for t in range(n)) for k in steps]
        print(f"maml minus {other}, paired over {n} tasks: " + ", ".join(diffs))
        print(f"  tasks where maml is higher, per step: {wins}")
    for name, tasks in groups(values, args.cuts):
        print(f"tasks with {name} ({len(tasks)}):")
        for method in methods:
            row = ", ".join(f"k={k}: {mean_se([returns[method, k, t] for t in tasks])}" for k in steps)
            print(f"  {method}: {row}")
        for other in (m for m in methods if m != "maml"):
            row = ", ".join(f"k={k}: {mean_se([returns['maml', k, t] - returns[other, k, t] for t in tasks])}"
                            for k in steps)
            print(f"  maml minus {other}: {row}")


if __name__ == "__main__":
    main()
