"""The ``ray`` sampler backend: slices of the meta-batch rolled out by Ray actors.

Each actor owns a batched env (the family's ``mujoco.batch`` env, or a gymnasium
``SyncVectorEnv``) and rolls out one slice of every ``sample`` call. The policy and
its parameters go to the object store once per call and every actor reads the
same object; the slices' batches come back and are merged into one
:class:`~metarl.samplers.EpisodeBatch`. Slices carry their own seeds
(:class:`~metarl.samplers.partition.PartitionedSampler`), so the samples equal an
in-process run with the same partition, and a slice whose actor died is redone
exactly on a fresh actor.

Ray is an optional dependency (``pip install -e ".[ray]"``); it is imported when a
:class:`RaySampler` is created.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from ..envs import TaskFamilySpec
from ..interrupts import keep_handler
from .batch_sampler import BatchSampler
from .episode_batch import EpisodeBatch
from .partition import PartitionedSampler, SliceJob, slice_params

RAY_EXTRA = 'pip install -e ".[ray]"  (or: pip install "metarl[ray]")'
ACTOR_START_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 10.0


class RayBackendError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or workers keep failing."""


def import_ray() -> Any:
    """The ``ray`` module, or an error that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayBackendError(f"sampler.backend 'ray' needs Ray, an optional extra of metarl: "
                              f"{RAY_EXTRA}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds when ``host:port`` refuses connections; ``ray.init`` retries for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayBackendError(f"sampler.ray_address: {address!r} is not 'host:port', "
                              "'ray://host:port' or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise RayBackendError(f"cannot reach the Ray cluster at {address}: {err}. Is it running "
                              "(`ray start --head` on the head node) and is the address in "
                              "sampler.ray_address right?") from None


def connect(address: str | None, num_cpus: int) -> bool:
    """Connect to the cluster at ``address``, or start a local Ray bound to loopback.

    Returns True when this call initialised Ray (the caller shuts it down), False
    when the process was already connected.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        if address != "auto":
            _check_reachable(address)
        try:
            with keep_handler():
                ray.init(address=address, configure_logging=False)
        except (ConnectionError, RuntimeError) as err:
            raise RayBackendError(f"cannot connect to the Ray cluster at {address}: {err}") from None
        return True
    # Ray runs workers at niceness 15 by default, to favour the driver; here the driver
    # waits on the workers, and niced workers starve behind any other busy process.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Loopback only: a sampler started by metarl is not a cluster others may join. On Linux
    # Ray listens on every interface unless it believes clusters are disabled (as on macOS);
    # the variable reaches the Ray processes, the constant this already-imported module.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    # address="local": a new Ray even when `ray start` left one running on this machine.
    with keep_handler():  # ray.init replaces the SIGTERM handler with sys.exit
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 configure_logging=False)
    return True


class _SamplerWorker:
    """Ray actor body: a CPU :class:`BatchSampler` that rolls out slices."""

    def __init__(self, family: TaskFamilySpec, env_kwargs: dict[str, Any], horizon: int,
                 backend: str, threads: int, task_in_obs: bool) -> None:
        self.sampler = BatchSampler(family, env_kwargs, horizon, "cpu", 0, backend, threads,
                                    task_in_obs)

    def pid(self) -> int:
        return os.getpid()

    def sample(self, payload: tuple[torch.nn.Module, dict[str, torch.Tensor]], tasks: list[Any],
               part: slice, num_tasks: int, episodes_per_task: int, seed: int,
               deterministic: bool) -> tuple[EpisodeBatch, float]:
        """The slice's batch, and the seconds spent rolling it out."""
        start = time.perf_counter()
        policy, params = payload
        self.sampler.reseed(seed)
        batch = self.sampler.sample(policy, slice_params(policy, params, num_tasks, part), tasks,
                                    episodes_per_task, deterministic)
        return batch, time.perf_counter() - start


@dataclass
class RayTiming:
    """Where the last ``sample`` call's time went.

    ``overhead_s`` is the wall time not covered by the slowest actor's own rollout:
    putting the parameters, scheduling, returning and merging the batches.
    """

    wall_s: float = 0.0
    slowest_worker_s: float = 0.0
    overhead_s: float = 0.0
    params_bytes: int = 0
    batch_bytes: int = 0


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, EpisodeBatch):
        return sum(_nbytes(v) for v in vars(obj).values())
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    return 0


class RaySampler(PartitionedSampler):
    """A :class:`PartitionedSampler` whose slices run on ``num_workers`` Ray actors.

    ``address`` names an existing cluster (``host:port``, ``ray://host:port`` or
    ``auto``); None starts a local Ray on loopback with enough CPUs for the
    workers. Each actor reserves ``worker_cpus`` CPUs and steps MuJoCo with
    ``threads`` threads (0 = ``worker_cpus``). A slice whose actor dies is redone on
    a new actor up to ``max_retries`` times; ``worker_restarts`` counts restarts.
    """

    def __init__(self, family: TaskFamilySpec, env_kwargs: dict[str, Any] | None = None,
                 horizon: int | None = None, device: torch.device | str = "cpu",
                 seed: int = 0, backend: str = "batch", threads: int = 0,
                 task_in_obs: bool = False, num_workers: int = 2, address: str | None = None,
                 worker_cpus: int = 1, max_retries: int = 3) -> None:
        ray = import_ray()
        super().__init__(family, env_kwargs, horizon, device, seed, backend, threads, task_in_obs,
                         num_partitions=num_workers)
        self._ray = ray
        self.num_workers, self.address, self.max_retries = num_workers, address, max_retries
        self.worker_cpus = worker_cpus
        self.worker_restarts = 0
        self.last_timing = RayTiming()
        self._owns_ray = connect(address, num_cpus=max(os.cpu_count() or 1,
                                                       num_workers * worker_cpus))
        self._actor_cls = ray.remote(num_cpus=worker_cpus, max_restarts=0)(_SamplerWorker)
        self.workers = [self._start_worker() for _ in range(num_workers)]
        self._wait_ready(self.workers)

    def _start_worker(self) -> Any:
        return self._actor_cls.remote(self.family, self.env_kwargs, self.horizon, self.backend,
                                      self.threads or self.worker_cpus, self.task_in_obs)

    def _wait_ready(self, workers: list[Any]) -> None:
        ray = self._ray
        try:
            ray.get([w.pid.remote() for w in workers], timeout=ACTOR_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RayBackendError(
                f"{len(workers)} Ray sampler workers asking for {self.worker_cpus} CPU each did "
                f"not start within {ACTOR_START_TIMEOUT_S:.0f}s; the cluster offers "
                f"{ray.cluster_resources().get('CPU', 0):g} CPUs in all (lower "
                "sampler.num_workers or add nodes)") from None

    def run_jobs(self, policy: torch.nn.Module, params: dict[str, torch.Tensor],
                 jobs: list[SliceJob], episodes_per_task: int, deterministic: bool = False
                 ) -> list[EpisodeBatch]:
        """Run the slices on the actors; redo a dead actor's slice on a new one."""
        ray = self._ray
        start = time.perf_counter()
        num_tasks = sum(len(job.tasks) for job in jobs)
        payload = ray.put((policy, params))

        def submit(job: SliceJob) -> Any:
            return self.workers[job.index].sample.remote(payload, job.tasks, job.part, num_tasks,
                                                         episodes_per_task, job.seed,
                                                         deterministic)

        pending = {submit(job): job for job in jobs}
        results: dict[int, EpisodeBatch] = {}
        busy: list[float] = []
        retries = [0] * len(jobs)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ref)
            try:
                results[job.index], seconds = ray.get(ref)
                busy.append(seconds)
            except ray.exceptions.RayActorError as err:
                retries[job.index] += 1
                if retries[job.index] > self.max_retries:
                    raise RayBackendError(
                        f"Ray sampler worker {job.index} died {retries[job.index]} times on the "
                        f"same slice of {len(job.tasks)} tasks; giving up (last error: "
                        f"{type(err).__name__}: {str(err).splitlines()[0]})") from None
                self.worker_restarts += 1
                print(f"metarl: Ray sampler worker {job.index} died "
                      f"({type(err).__name__}); restarting it and redoing its "
                      f"{len(job.tasks)} tasks", file=sys.stderr, flush=True)
                self.workers[job.index] = self._start_worker()
                pending[submit(job)] = job
        batches = [results[i] for i in range(len(jobs))]
        wall = time.perf_counter() - start
        self.last_timing = RayTiming(wall, max(busy), wall - max(busy), _nbytes(params),
                                     sum(_nbytes(b) for b in batches))
        return batches

    def diagnostics(self) -> dict[str, float]:
        """``diagnostics/worker_restarts``: actors restarted since the last call."""
        restarts = self.worker_restarts - getattr(self, "_restarts_reported", 0)
        self._restarts_reported = self.worker_restarts
        return {"diagnostics/worker_restarts": float(restarts)}

    def close(self) -> None:
        """Stop the actors, and Ray itself when this sampler started it."""
        if getattr(self, "workers", None):
            for worker in self.workers:
                self._ray.kill(worker)
            self.workers = []
        if getattr(self, "_owns_ray", False) and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False
        super().close()
