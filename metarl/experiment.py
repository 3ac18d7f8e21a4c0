"""Build an experiment's parts from a :class:`Config` and prepare its run directory."""

from __future__ import annotations

import json
import platform
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from . import __version__
from .algos import BuildContext, MetaLearner
from .config import Config, ConfigError
from .envs import TaskFamilyError, TaskFamilySpec, UnknownTaskFamilyError, get_task_family
from .runtime import apply_threads, usable_cpus
from .samplers import BatchSampler

# Independent random streams derived from one seed (numpy SeedSequence spawn keys).
STREAM_TASKS, STREAM_ACTIONS, STREAM_EVAL_TASKS, STREAM_EVAL_ACTIONS = 1, 2, 3, 4
STREAM_RANDOM_INIT = 5  # the randomly initialised policy of `metarl eval --baselines random`
STREAM_EVAL_LATENTS = 6  # PEARL's z draws in `metarl eval`


def derive_seed(seed: int, stream: int, *substream: int) -> int:
    """A 63-bit seed for ``stream`` (and ``substream``, a child of it) that does not collide
    with other streams of ``seed``: the ``SeedSequence`` child ``(stream, *substream)``."""
    key = (stream, *substream)
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


def resolve_device(name: str, source: str = "train.device") -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error naming
    ``source``, the key or flag the name came from."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{source}: 'cuda' requested but torch sees no CUDA device "
                          "(use 'auto' or 'cpu')")
    return torch.device(name)


@dataclass
class Components:
    family: TaskFamilySpec
    sampler: BatchSampler
    algo: MetaLearner


def make_sampler(cfg: Config, family: TaskFamilySpec, device: torch.device,
                 seed: int) -> BatchSampler:
    """The sampler ``cfg.sampler`` asks for (``ray`` workers use the family's batched env
    when it has one, else its gymnasium env)."""
    backend = cfg.sampler.backend
    local = "batch" if family.has_batch_env else "gym"
    if backend == "batch" and not family.has_batch_env:
        raise ConfigError(f"sampler.backend: family '{family.id}' has no batched env; "
                          "use 'gym' (or 'auto')")
    common = dict(env_kwargs=cfg.env.kwargs, horizon=cfg.env.horizon, device=device, seed=seed,
                  threads=cfg.sampler.threads, task_in_obs=cfg.env.task_in_observation)
    try:
        # Before any env is built (ray: in the workers), and names that clash with the
        # sampler's own keywords (horizon, threads) fail here rather than as a TypeError.
        family.check_kwargs(cfg.env.kwargs, batch=(backend if backend in ("batch", "gym")
                                                   else local) == "batch")
        if backend != "ray":
            # MuJoCo's own default (0) is every core of the host, not this process's share
            common["threads"] = cfg.sampler.threads or usable_cpus()
            return BatchSampler(family, backend=local if backend == "auto" else backend,
                                inference=cfg.sampler.inference, **common)
        from .samplers.ray_sampler import RayBackendError, RaySampler

        try:
            return RaySampler(family, backend=local, num_workers=cfg.sampler.num_workers,
                              address=cfg.sampler.ray_address,
                              worker_cpus=cfg.sampler.worker_cpus, **common)
        except RayBackendError as err:
            raise ConfigError(str(err)) from None
    except TaskFamilyError as err:  # unknown or out-of-range kwargs, broken model file
        key = getattr(err, "kwarg", None)  # set when one kwarg is unknown or mistyped
        path = "" if key is None else f".{key}" if str(key).isidentifier() else f".{key!r}"
        raise ConfigError(f"env.kwargs{path}: {err}") from None


def family_of(cfg: Config) -> TaskFamilySpec:
    """The task family ``env.id`` names, or a :class:`ConfigError` saying why not."""
    try:
        return get_task_family(cfg.env.id)
    except (UnknownTaskFamilyError, TaskFamilyError) as err:
        raise ConfigError(f"env.id: {err}") from None


def build_learner(cfg: Config, sampler: BatchSampler, device: torch.device,
                  training: bool = True) -> MetaLearner:
    """The algorithm ``algo.name`` names, built by its registered builder. Draws its
    initialisation from the global RNGs as they are (:func:`build` seeds them)."""
    ctx = BuildContext(cfg, sampler, device, derive_seed(cfg.train.seed, STREAM_TASKS), training)
    learner = cfg.algorithm.builder()(ctx)
    if not isinstance(learner, MetaLearner):
        raise TypeError(f"algorithm {cfg.algo.name!r}: its builder returned "
                        f"{type(learner).__name__}, not a metarl.algos.MetaLearner")
    return learner


def build(cfg: Config, device: torch.device, training: bool = True,
          sampler_seed: int | None = None) -> Components:
    """Set the torch threads (``train.threads``), seed the global RNGs and construct
    family, sampler and algorithm. ``training=False`` builds what evaluation needs, with
    a sampler seeded by ``sampler_seed``."""
    apply_threads(cfg.train.threads, cfg.algorithm.torch_threads)
    seed = cfg.train.seed
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    family = family_of(cfg)
    if sampler_seed is None:
        sampler_seed = derive_seed(seed, STREAM_ACTIONS)
    sampler = make_sampler(cfg, family, device, sampler_seed)
    try:
        return Components(family, sampler, build_learner(cfg, sampler, device, training))
    except BaseException:
        sampler.close()
        raise


def default_run_dir(cfg: Config) -> Path:
    """``{runs_root}/{family}__{algo}__{seed}__{timestamp}`` (suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    family = cfg.env.id.rpartition(":")[2].removeprefix("metarl/")  # no module prefix in paths
    base = Path(cfg.train.runs_root) / f"{family}__{cfg.algorithm.name}__{cfg.train.seed}__{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def metadata(device: torch.device) -> dict[str, Any]:
    """Versions, host and device of this run."""
    import gymnasium

    return {
        "metarl_version": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_config(run_dir: Path, cfg: Config) -> None:
    """Write the resolved config to ``run_dir/config.yaml`` (atomically: temp file + rename)."""
    path = Path(run_dir) / "config.yaml"
    tmp = path.with_name(".config.yaml.tmp")
    tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    tmp.replace(path)


MIN_FREE_BYTES = 64 * 2**20  # room for checkpoints, TensorBoard events and progress.csv


def check_free_space(run_dir: Path, needed: int = MIN_FREE_BYTES) -> None:
    """Fail before training if the run directory's file system is (nearly) full."""
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise ConfigError(f"run directory {run_dir}: only {free / 2**20:.1f} MiB free on its file "
                          f"system; a run needs at least {needed / 2**20:.0f} MiB for checkpoints "
                          "and logs")


def check_writable(run_dir: Path) -> None:
    """Fail before training if checkpoints cannot be written under ``run_dir``."""
    probe = Path(run_dir) / "checkpoints" / ".write_probe"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"metarl")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"run directory {run_dir} is not writable: {err.strerror}") from None
    check_free_space(run_dir)


def prepare_run_dir(run_dir: Path, cfg: Config, device: torch.device) -> Path:
    """Create the run directory and write ``config.yaml`` and ``metadata.json``.

    Fails before any training if the directory cannot be created or written, or its
    file system is nearly full.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir: {run_dir} exists and is not a directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"--run-dir: {run_dir} already exists and is not empty")
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        check_writable(run_dir)
        write_config(run_dir, cfg)
        (run_dir / "metadata.json").write_text(json.dumps(metadata(device), indent=2) + "\n")
    except OSError as err:
        raise ConfigError(f"run directory {run_dir} is not writable: {err.strerror}") from None
    return run_dir
