"""Run a grid of metarl experiments (configs x overrides x seeds) as Ray tasks.

    python launch/sweep.py configs/maml_trpo/half_cheetah_vel.yaml configs/maml_trpo/half_cheetah_dir.yaml \
        --seeds 1 2 3 --grid algo.inner_step_size=0.05,0.1 --cpus-per-run 2 --out runs/sweep

Each run is one `metarl train` process, started by a Ray task that reserves
``--cpus-per-run`` CPUs, with its console output in ``OUT/logs/``. Without
``--address`` a local Ray (loopback, this machine's CPUs) runs the grid; with
``--address auto`` or ``host:port`` the runs spread over a cluster (see
``launch/ray_cluster.yaml``); configs and ``--out`` must then be on a file system
every node sees at the same path. A run whose node dies is retried on another node,
resuming from its newest checkpoint (starting the sweep again resumes every
unfinished run and skips the finished ones); a run that fails is reported and the
others go on. The summary table gives each
run's status and last meta-train returns; the exit status is 1 if any
run failed.

Runs inside a sweep should sample with the local backends (the default); give
each run several CPUs with ``--cpus-per-run`` rather than nesting Ray samplers.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from metarl.checkpoint import list_checkpoints
from metarl.config import ConfigError, load_config
from metarl.samplers.ray_sampler import RayBackendError, connect, import_ray


@dataclass(frozen=True)
class Run:
    """One point of the grid."""

    config: Path
    seed: int
    overrides: tuple[str, ...]  # --set ones, then this point's grid values
    point: tuple[str, ...]  # the grid values alone, which name the run

    @property
    def name(self) -> str:
        parts = [f"{self.config.parent.name}-{self.config.stem}", f"seed{self.seed}"]
        parts += [re.sub(r"[^A-Za-z0-9_.=-]", "_", o) for o in self.point]
        return "__".join(parts)


def parse_grid(items: list[str]) -> list[tuple[str, ...]]:
    """``["a.b=1,2", "c.d=x"]`` -> every combination as override tuples."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise SystemExit(f"sweep: --grid {item!r} is not KEY=V1,V2,...")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return list(itertools.product(*axes)) if axes else [()]


def expand(configs: list[Path], seeds: list[int], grid: list[tuple[str, ...]],
           fixed: list[str]) -> list[Run]:
    """The runs of the sweep; every config and override is checked before anything starts."""
    runs = []
    for config, point, seed in itertools.product(configs, grid, seeds):
        overrides = tuple(fixed) + point
        try:
            load_config(config, list(overrides))
        except ConfigError as err:
            raise SystemExit(f"sweep: {config} with {' '.join(overrides) or 'no overrides'}: "
                             f"{err}") from None
        runs.append(Run(config.resolve(), seed, overrides, point))  # workers may run elsewhere
    return runs


def train_command(run: Run, run_dir: Path) -> list[str]:
    """The `metarl train` command line of ``run``, started afresh."""
    cmd = [sys.executable, "-m", "metarl", "train", str(run.config), "--seed", str(run.seed),
           "--run-dir", str(run_dir)]
    for override in run.overrides:
        cmd += ["--set", override]
    return cmd


def attempt_command(run: Run, run_dir: Path) -> list[str] | None:
    """The command that brings ``run_dir`` to completion, None when it is complete.

    A retry (the node died, or the sweep was started again) resumes the run from
    its newest checkpoint; a directory left without any checkpoint is set aside as
    ``NAME.incomplete-K`` and the run starts afresh.
    """
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if checkpoints and (run_dir / "config.yaml").is_file():
        done = int(checkpoints[-1].stem.removeprefix("iter_"))
        if done >= load_config(run_dir / "config.yaml").train.iterations:
            return None
        return [sys.executable, "-m", "metarl", "train", "--resume", str(run_dir)]
    if run_dir.exists() and any(run_dir.iterdir()):
        k = 1
        while run_dir.with_name(f"{run_dir.name}.incomplete-{k}").exists():
            k += 1
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.incomplete-{k}"))
    return train_command(run, run_dir)


def execute(run: Run, run_dir: Path, log_path: Path) -> tuple[int, str]:
    """Run ``run`` to completion (on whichever node Ray chose); returns (exit status, host).

    Ray calls it again when the node died; the log keeps every attempt's output.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = attempt_command(run, run_dir)
    with open(log_path, "a") as log:
        if cmd is None:
            print(f"sweep: {run_dir} is already complete", file=log, flush=True)
            return 0, socket.gethostname()
        print(f"sweep: {' '.join(cmd)}", file=log, flush=True)
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    return proc.returncode, socket.gethostname()


def last_returns(run_dir: Path) -> str:
    """``pre -> post`` meta-train returns of the last logged iteration, or ``-``."""
    try:
        with open(run_dir / "progress.csv") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return "-"
    if not rows:
        return "-"
    last = rows[-1]
    cols = sorted(k for k in last if k.startswith("meta_train/return/adapt_"))
    return f"iter {last['iteration']}: " + " -> ".join(f"{float(last[c]):.2f}" for c in cols)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", type=Path, help="experiment YAML files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1], help="seeds (default 1)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a swept config key (repeatable; the grid is their product)")
    parser.add_argument("--set", dest="fixed", action="append", default=[],
                        metavar="KEY=VALUE", help="an override for every run (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"),
                        help="run directories and logs go here (default runs/sweep)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0,
                        help="CPUs Ray reserves for each run (default 1)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (auto, host:port); default: a local Ray")
    parser.add_argument("--retries", type=int, default=1,
                        help="retries of a run whose node or worker process died (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    args = parser.parse_args(argv)

    runs = expand(args.configs, args.seeds, parse_grid(args.grid), args.fixed)
    out = args.out.resolve()
    if args.dry_run:
        for run in runs:
            print(" ".join(train_command(run, out / run.name)))
        return 0
    try:
        ray = import_ray()
        connect(args.address, num_cpus=os.cpu_count() or 1)
    except RayBackendError as err:
        print(f"sweep: {err}", file=sys.stderr)
        return 2
    task = ray.remote(num_cpus=args.cpus_per_run, max_retries=args.retries)(execute)
    print(f"sweep: {len(runs)} runs on {ray.cluster_resources().get('CPU', 0):g} CPUs, "
          f"{args.cpus_per_run:g} per run; logs in {out / 'logs'}", flush=True)
    pending = {task.remote(run, out / run.name, out / "logs" / f"{run.name}.log"): run
               for run in runs}
    results = {}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        run = pending.pop(ref)
        try:
            status, host = ray.get(ref)
        except ray.exceptions.RayError as err:  # retries exhausted: the node kept dying
            status, host = -1, f"lost ({type(err).__name__})"
        results[run] = (status, host)
        print(f"sweep: [{len(results)}/{len(runs)}] {run.name}: "
              f"{'ok' if status == 0 else f'failed (exit {status})'} on {host}", flush=True)
    print(f"\n{'run':<60} {'status':>7}  last meta-train returns (pre -> post)")
    for run in runs:
        status, _ = results[run]
        print(f"{run.name:<60} {status:>7}  {last_returns(out / run.name)}")
    failed = [run.name for run in runs if results[run][0] != 0]
    if failed:
        print(f"sweep: {len(failed)} of {len(runs)} runs failed; see {out / 'logs'}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
