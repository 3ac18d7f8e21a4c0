"""Command line: ``metarl train | eval | envs | algos | config-reference | bench``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from . import __version__


def _parser() -> argparse.ArgumentParser:
    from .config import DEFAULT_DEVICE, DEFAULT_STEP_GRID, DEVICES

    parser = argparse.ArgumentParser(prog="metarl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"metarl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="meta-train from a YAML config")
    train.add_argument("config", type=Path, nargs="?",
                       help="experiment YAML, e.g. configs/maml_trpo/navigation_2d.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    train.add_argument("--seed", type=int, help="overrides train.seed")
    train.add_argument("--device", choices=DEVICES, help="overrides train.device")
    train.add_argument("--run-dir", type=Path, help="run directory (default: under train.runs_root)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue RUN_DIR from its newest valid checkpoint (with its "
                            "config.yaml; --set train.iterations=N to train longer)")

    ev = sub.add_parser("eval", help="adaptation curve of a trained run on held-out tasks")
    ev.add_argument("run_dir", type=Path, help="directory written by `metarl train`")
    ev.add_argument("--checkpoint", default="latest", metavar="latest|best|ITER",
                    help="iterate to evaluate: latest = newest checkpoint that loads "
                         "(unloadable ones are reported and skipped); best = the checkpointed "
                         "iteration with the highest post-adaptation training return in "
                         "progress.csv (MAML meta_train/return/adapt_K, PEARL "
                         "meta_train/return/posterior; ties: the earliest); ITER = exactly "
                         "that iteration's checkpoint (default latest)")
    ev.add_argument("--tasks", type=int, default=None,
                    help="held-out tasks (default 40 fresh ones; a run with a fixed "
                         "held-out set, e.g. PEARL's algo.task_set: reference, uses that set)")
    ev.add_argument("--steps", "--grad-steps", dest="steps", type=int, default=3, metavar="K",
                    help="evaluate after 0..K units of the algorithm's adaptation: gradient "
                         "steps (MAML), context trajectories (PEARL) (default 3)")
    ev.add_argument("--seed", type=int, default=0,
                    help="seed of the held-out tasks and action noise; the baselines' tuning "
                         "draw is derived from it (default 0)")
    ev.add_argument("--out", type=Path, help="output directory (default RUN_DIR/eval)")
    ev.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE)
    ev.add_argument("--baselines", metavar="METHODS",
                    help="comma-separated comparison methods of the MAML paper: pretrained, "
                         "random, oracle; pretrained/oracle use the newest matching TRPO run "
                         "next to RUN_DIR (trained from configs/baselines/) or NAME=RUN_DIR")
    ev.add_argument("--step-grid", metavar="STEPS",
                    default=",".join(map(str, DEFAULT_STEP_GRID)),
                    help="step sizes tried when fine-tuning pretrained/random; the best on "
                         "the tuning tasks is kept (default %(default)s)")
    ev.add_argument("--step-sizes", metavar="STEPS",
                    help="step sizes of a gradient-based meta-learner's own adaptation (MAML, "
                         "ProMP): step k uses entry min(k, len-1); default the run's "
                         "algo.eval_step_sizes. For measuring how adaptation depends on them")
    ev.add_argument("--tuning-tasks", type=int, metavar="N",
                    help="tasks of the separate draw (own action noise, seed derived from "
                         "--seed) that pretrained/random step sizes are tuned on, never the "
                         "reported tasks (default: as many as --tasks)")

    sub.add_parser("envs", help="list registered task families")
    sub.add_parser("algos", help="list registered algorithms (the values of algo.name)")
    ref = sub.add_parser("config-reference",
                         help="print every config key with its type, default, range and doc "
                              "(markdown; docs/config-reference.md is its output)")
    ref.add_argument("--out", type=Path, help="write it to this file instead of printing it")
    ref.add_argument("--check", type=Path, metavar="FILE",
                     help="exit with status 2 if FILE differs from what would be written")

    bench = sub.add_parser("bench", help="benchmarks (each measures the alternative in the same run)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bs = bench_sub.add_parser("sampler", help="env-steps/s: physics limit vs metarl's sampler "
                                              "vs gymnasium SyncVectorEnv")
    bs.add_argument("--family", dest="families", action="append", metavar="FAMILY",
                    help="MuJoCo task family id (default HalfCheetahVel-v0); repeat it to "
                         "compare variants, e.g. --family HalfCheetahVel-v0 "
                         "--family MAMLHalfCheetahVel-v0")
    bs.add_argument("--tasks", type=int, default=40, help="tasks (default 40)")
    bs.add_argument("--episodes", type=int, default=20, help="episodes per task (default 20)")
    bs.add_argument("--horizon", type=int, default=200, help="steps per episode (default 200)")
    bs.add_argument("--threads", type=int, default=0,
                    help="MuJoCo stepping threads, 0 = all cores (default 0)")
    bs.add_argument("--gym-episodes", type=int, default=1,
                    help="episodes per task in the slow SyncVectorEnv measurement (default 1)")
    bs.add_argument("--repeats", type=int, default=2, help="interleaved repeats, best kept (default 2)")
    bs.add_argument("--backend", choices=("batch", "ray"), default="batch",
                    help="ray: also measure the Ray backend against the local batch sampler")
    bs.add_argument("--workers", type=int, default=2, help="Ray workers with --backend ray "
                                                           "(default 2)")
    bs.add_argument("--seed", type=int, default=0)
    bs.add_argument("--device", choices=DEVICES, default="cpu",
                    help="where the policy lives (default cpu); on a GPU also times rollout "
                         "inference on a CPU copy of its parameters (sampler.inference: cpu)")
    bs.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    bm = bench_sub.add_parser("maml", help="seconds per MAML-TRPO or ProMP meta-iteration: "
                                           "sample_s, adapt_s, update_s, total_s")
    bm.add_argument("--config", type=Path, required=True,
                    help="experiment YAML, e.g. configs/maml_trpo/half_cheetah_vel.yaml")
    bm.add_argument("--iterations", type=int, default=3, help="timed meta-iterations (default 3)")
    bm.add_argument("--warmup", type=int, default=1,
                    help="untimed meta-iterations first (env compilation, caches; default 1)")
    bm.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    bm.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE)
    bm.add_argument("--compare", action="store_true",
                    help="also time one meta-step the reference way (exact double backprop "
                         "on every episode) on the same samples")
    bm.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    bf = bench_sub.add_parser("fisher", help="MAML-TRPO: cosine of the subsampled-Fisher CG "
                                             "direction to the full one, and their seconds")
    bf.add_argument("--config", type=Path, required=True,
                    help="experiment YAML, e.g. configs/maml_trpo/half_cheetah_vel.yaml")
    bf.add_argument("--fraction", type=float, default=0.2,
                    help="share of the episodes the approximations use (default 0.2)")
    bf.add_argument("--checkpoint", dest="checkpoints", action="append", default=[], type=Path,
                    metavar="PT", help="also compare at this checkpoint of a run of the "
                                       "config (repeatable)")
    bf.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    bf.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE)
    bf.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    bp = bench_sub.add_parser("pearl", help="PEARL gradient steps/s on --device and on the CPU "
                                            "in the same run")
    bp.add_argument("--config", type=Path,
                    help="PEARL experiment YAML (default configs/pearl/half_cheetah_vel.yaml: "
                         "the reference scale)")
    bp.add_argument("--steps", type=int, default=50, help="timed gradient steps (default 50)")
    bp.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    bp.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    bp.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE)
    bp.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def _train(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config, load_saved_config

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.device is not None:
        overrides.append(f"train.device={args.device}")
    if args.resume is not None:
        if args.config is not None or args.run_dir is not None:
            raise ConfigError("--resume RUN_DIR takes neither CONFIG nor --run-dir: the run's own "
                              "config.yaml is used (change keys with --set)")
        config_path = args.resume / "config.yaml"
        if not config_path.is_file():
            raise ConfigError(f"--resume: {args.resume} is not a run directory "
                              "(no config.yaml)")
        cfg = load_saved_config(config_path, overrides, report=lambda m: print(m, flush=True))
        from .training import train  # torch: only once the config is known to be good

        train(cfg, args.resume, resume=True)
        return 0
    if args.config is None:
        raise ConfigError("train needs CONFIG.yaml (or --resume RUN_DIR)")
    cfg = load_config(args.config, overrides)
    from .training import train  # torch: only once the config is known to be good

    train(cfg, args.run_dir)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .comparisons import parse_baselines
    from .evaluation import eval_summary, evaluate_run

    def numbers(text: str, flag: str) -> list[float]:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"{flag}: expected comma-separated numbers, got {text!r}") from None

    grid = numbers(args.step_grid, "--step-grid")
    step_sizes = None if args.step_sizes is None else numbers(args.step_sizes, "--step-sizes")
    out_dir, points = evaluate_run(args.run_dir, args.tasks, args.steps, args.seed,
                                   args.out, args.device, parse_baselines(args.baselines), grid,
                                   progress=lambda m: print(m, flush=True),
                                   checkpoint=args.checkpoint, tuning_tasks=args.tuning_tasks,
                                   step_sizes=step_sizes)
    print(f"{'method':<10} {'step':>4} {'mean_return':>12} {'stderr':>8} {'n_tasks':>7}")
    for p in points:
        print(f"{p.method:<10} {p.step:>4} {p.mean_return:>12.2f} {p.stderr:>8.2f} {p.n_tasks:>7}")
    print(eval_summary(out_dir / "eval_info.yaml"))
    print(f"wrote {out_dir / 'adaptation.csv'}, {out_dir / 'task_returns.csv'} and "
          f"{out_dir / 'adaptation.png'}")
    return 0


def _envs(args: argparse.Namespace) -> int:
    from .envs import list_task_families

    for spec in list_task_families():
        batched = "batch+gym" if spec.has_batch_env else "gym"
        print(f"{spec.id:<22} horizon {spec.max_episode_steps:<4} {batched:<9} {spec.description}")
    return 0


def _algos(args: argparse.Namespace) -> int:
    from .algos import list_algorithms

    for spec in list_algorithms():
        print(f"{spec.name:<12} {spec.description}")
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    from .config import ConfigError, config_reference

    text = config_reference()
    if args.check is not None:
        try:
            current = args.check.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"--check: cannot read {args.check}: {err.strerror}") from None
        if current != text:
            raise ConfigError(f"{args.check} is out of date; regenerate it with: metarl "
                              f"config-reference --out {args.check}")
        print(f"{args.check} is current")
    elif args.out is not None:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .config import ConfigError

    if args.bench == "maml":
        figures = _bench_maml(args)
    elif args.bench == "pearl":
        figures = _bench_pearl(args)
    elif args.bench == "fisher":
        figures = _bench_fisher(args)
    else:
        figures = _bench_sampler(args)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        except OSError as err:
            raise ConfigError(f"--json: cannot write {args.json}: {err.strerror}") from None
        print(f"wrote {args.json}")
    return 0


def _bench_sampler(args: argparse.Namespace) -> dict[str, Any]:
    """One family's figures, or ``{family: figures}`` when ``--family`` is repeated."""
    from .config import ConfigError

    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {args.threads}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    families = args.families or ["HalfCheetahVel-v0"]
    runs = {}
    for family in families:
        if len(families) > 1:
            print(f"{family}:")
        runs[family] = _bench_one_family(args, family)
    if len(families) == 1:
        return runs[families[0]]
    print(f"{'family':<28} {'physics only':>14} {'metarl':>12} {'ratio':>7}  (env-steps/s)")
    for family, figures in runs.items():
        print(f"{family:<28} {figures['raw_steps_per_s']:>14,.0f} "
              f"{figures['metarl_steps_per_s']:>12,.0f} {figures['ratio_to_raw']:>7.3f}")
    return runs


def _bench_one_family(args: argparse.Namespace, family: str) -> dict[str, float]:
    from .bench import bench_sampler
    from .config import ConfigError
    from .envs import TaskFamilyError, UnknownTaskFamilyError
    from .experiment import resolve_device
    from .samplers.ray_sampler import RayBackendError

    try:
        result = bench_sampler(family, args.tasks, args.episodes, args.horizon, args.threads,
                               args.gym_episodes, args.repeats, args.seed, backend=args.backend,
                               workers=args.workers,
                               device=str(resolve_device(args.device, "--device")))
    except (TaskFamilyError, UnknownTaskFamilyError) as err:
        raise ConfigError(f"--family: {err}") from None
    except (ValueError, RayBackendError) as err:
        raise ConfigError(str(err)) from None
    figures = result.to_dict()
    print(f"{'raw mujoco.batch (physics only)':<34} {figures['raw_steps_per_s']:>10,.0f} env-steps/s")
    print(f"{'metarl batch sampler':<34} {figures['metarl_steps_per_s']:>10,.0f} env-steps/s")
    print(f"{'gymnasium SyncVectorEnv':<34} {figures['gym_sync_steps_per_s']:>10,.0f} env-steps/s")
    print(f"{'ratio_to_raw':<34} {figures['ratio_to_raw']:>10.3f}")
    print(f"{'speedup_vs_gym_sync':<34} {figures['speedup_vs_gym_sync']:>10.2f}x")
    if "cpu_inference_steps_per_s" in figures:
        print(f"{'metarl, inference on a CPU copy':<34} "
              f"{figures['cpu_inference_steps_per_s']:>10,.0f} env-steps/s")
        print(f"{'cpu_inference_to_device':<34} {figures['cpu_inference_to_device']:>10.3f}")
    if "ray_steps_per_s" in figures:
        print(f"{'Ray, ' + str(figures['ray_workers']) + ' workers':<34} "
              f"{figures['ray_steps_per_s']:>10,.0f} env-steps/s")
        print(f"{'ray_to_batch':<34} {figures['ray_to_batch']:>10.3f}")
        print(f"{'Ray overhead per sampling call':<34} {figures['ray_overhead_s']:>10.3f} s")
        print(f"{'data per call (params / batches)':<34} "
              f"{figures['ray_params_bytes'] / 2**20:>6.2f} / "
              f"{figures['ray_batch_bytes'] / 2**20:.1f} MiB")
    return figures


@contextlib.contextmanager
def _bad_input() -> Iterator[None]:
    """A benchmark's ValueError (bad --steps, a config of another algorithm) is bad input."""
    from .config import ConfigError

    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _bench_pearl(args: argparse.Namespace) -> dict[str, float | str]:
    from .bench import bench_pearl

    with _bad_input():
        result = bench_pearl(args.config, args.steps, args.warmup, args.overrides, args.device,
                             progress=lambda m: print(m, flush=True))
    figures = result.to_dict()
    print(f"  {'steps_per_s':<16} {figures['steps_per_s']:>10,.1f}  ({figures['device']})")
    print(f"  {'cpu_steps_per_s':<16} {figures['cpu_steps_per_s']:>10,.1f}  "
          f"({figures['cpu_torch_threads']} torch threads)")
    print(f"  {'speedup_vs_cpu':<16} {figures['speedup_vs_cpu']:>10.2f}x")
    return figures


def _bench_fisher(args: argparse.Namespace) -> dict[str, Any]:
    from .bench import bench_fisher

    with _bad_input():
        points = bench_fisher(args.config, args.fraction, args.checkpoints, args.overrides,
                              args.device, progress=lambda m: print(m, flush=True))
    for variant in ("kl_states", "episodes"):
        cosines = [p.cosine[variant] for p in points]
        print(f"  {variant:<10} cosine to full: min {min(cosines):.4f} "
              f"mean {sum(cosines) / len(cosines):.4f}")
    return {"fraction": args.fraction,
            "points": [{"at": p.label, "cosine": p.cosine, "seconds": p.seconds}
                       for p in points]}


def _bench_maml(args: argparse.Namespace) -> dict[str, float]:
    from .bench import bench_maml

    with _bad_input():
        result = bench_maml(args.config, args.iterations, args.warmup, args.overrides,
                            args.device, args.compare, progress=lambda m: print(m, flush=True))
    figures = result.to_dict()
    print(f"mean of {args.iterations} meta-iterations, "
          f"{result.env_steps_per_iteration:,.0f} env steps each:")
    for key in ("sample_s", "adapt_s", "update_s", "total_s"):
        print(f"  {key:<16} {figures[key]:>10.2f}")
    print(f"  {'env_steps_per_s':<16} {figures['env_steps_per_s']:>10,.0f}")
    if "update_gflops" in figures:
        print(f"  meta-step matrix products: {figures['update_gflop']:.1f} GFLOP at "
              f"{figures['update_gflops']:.1f} GFLOP/s; matmul ceiling on its shapes "
              f"{figures['matmul_ceiling_gflops']:.1f} GFLOP/s "
              f"({figures['update_fraction_of_ceiling']:.0%} of it)")
    if "update_speedup" in figures:
        print(f"  same meta-step, reference way (exact, every episode): "
              f"{figures['reference_update_s']:.2f}s -> update_speedup "
              f"{figures['update_speedup']:.2f}x")
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run one ``metarl`` command; returns its exit status (:mod:`metarl.errors`)."""
    args = _parser().parse_args(argv)
    from .errors import EXIT_INTERRUPTED, MetarlError
    from .interrupts import REQUESTS
    from .runtime import keep_freed_memory_in_heap

    keep_freed_memory_in_heap()
    handlers = {"train": _train, "eval": _eval, "envs": _envs, "algos": _algos,
                "config-reference": _config_reference, "bench": _bench}
    try:
        code = handlers[args.command](args)
    except MetarlError as err:
        print(f"metarl {args.command}: {_error_prefix(err)}{err}", file=sys.stderr)
        code = err.exit_status
    except KeyboardInterrupt as err:  # metarl.interrupts.Interrupted, or Python's own
        print(f"metarl {args.command}: interrupted ({err or 'SIGINT'}); work in progress "
              "was not saved, existing checkpoints are intact", file=sys.stderr, flush=True)
        code = EXIT_INTERRUPTED
    return REQUESTS.exit_status(code)


def _error_prefix(err: Exception) -> str:
    from .errors import TrainingStopped

    return "" if isinstance(err, TrainingStopped) else "error: "


def run() -> None:
    """Entry point of the ``metarl`` console script and ``python -m metarl``.

    The signal handler is installed before anything else and stays installed until
    the process exits, so a signal at any moment gives a documented exit status.
    """
    from .errors import EXIT_INTERRUPTED
    from .interrupts import REQUESTS
    from .runtime import prefer_sleeping_openmp_threads

    REQUESTS.install()
    prefer_sleeping_openmp_threads()  # before anything imports torch
    try:
        code = main()
        REQUESTS.finish()
    except KeyboardInterrupt:  # a signal between the command's end and finish()
        code = EXIT_INTERRUPTED
        REQUESTS.finish()
    sys.exit(REQUESTS.exit_status(code))


if __name__ == "__main__":
    run()
