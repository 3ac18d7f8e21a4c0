"""The ray sampler backend: same samples as the in-process partitioned sampler, actor
failures redone, clear errors; and the CLI on a local Ray."""

import csv
import dataclasses
import os
import socket
import sys

import numpy as np
import pytest
import torch

from metarl.config import ConfigError, load_config
from metarl.envs import get_task_family
from metarl.experiment import make_sampler
from metarl.policies import GaussianMLPPolicy
from metarl.policies.gaussian_mlp import stack_params
from metarl.samplers.partition import PartitionedSampler, partition
from cli_helpers import NAV_CONFIG, metarl

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from metarl.samplers.ray_sampler import RayBackendError, RaySampler, connect  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (loopback, 2 CPUs) for the module; samplers join it instead of starting one."""
    started = connect(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()


def assert_same_batch(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert (x is None) == (y is None), f.name
        if x is not None:
            assert torch.equal(x, y), f.name


def perturbed_stacked_params(policy, num_tasks):
    gen = torch.Generator().manual_seed(0)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen)
            for k, v in stack_params(policy.params(), num_tasks).items()}


def test_partition_covers_tasks_in_order():
    assert partition(5, 2) == [slice(0, 3), slice(3, 5)]
    assert partition(2, 4) == [slice(0, 1), slice(1, 2)]
    parts = partition(40, 3)
    assert [p.stop - p.start for p in parts] == [14, 13, 13]
    assert parts[0].start == 0 and parts[-1].stop == 40


def test_unreachable_cluster_names_the_address():
    # before the module's local Ray starts: a connected process never dials another address
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    if ray.is_initialized():
        pytest.skip("this process is already connected to Ray")
    with pytest.raises(RayBackendError, match=f"cannot reach the Ray cluster at {address}"):
        connect(address, num_cpus=1)
    with pytest.raises(RayBackendError, match="not 'host:port'"):
        connect("no-port-here", num_cpus=1)


def test_missing_ray_names_the_extra(monkeypatch):
    cfg = load_config(NAV_CONFIG, ["sampler.backend=ray"])
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"optional extra.*\.\[ray\]"):
        make_sampler(cfg, get_task_family(cfg.env.id), torch.device("cpu"), 0)


def test_local_ray_binds_to_loopback(local_ray):
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert ray.cluster_resources()["CPU"] <= 2


def test_ray_equals_in_process_partition(local_ray):
    """Same seed and partition: bit-identical batches, call after call, per-task parameters."""
    family = get_task_family("HalfCheetahVel-v0")
    reference = PartitionedSampler(family, horizon=40, seed=7, num_partitions=2)
    remote = RaySampler(family, horizon=40, seed=7, num_workers=2)
    try:
        policy = GaussianMLPPolicy(reference.obs_dim, reference.act_dim)
        tasks = reference.sample_tasks(5, np.random.default_rng(0))
        params = perturbed_stacked_params(policy, len(tasks))
        for _ in range(2):
            expected = reference.sample(policy, params, tasks, 3)
            got = remote.sample(policy, params, tasks, 3)
            assert got.observations.shape == (5, 3, 40, reference.obs_dim)
            assert_same_batch(expected, got)
        # shared parameters, and the resume path: the stream is in state_dict
        state = remote.state_dict()
        first = remote.sample(policy, policy.params(), tasks, 2)
        remote.load_state_dict(state)
        assert_same_batch(first, remote.sample(policy, policy.params(), tasks, 2))
        assert remote.worker_restarts == 0
    finally:
        remote.close()
        reference.close()


def test_killed_worker_is_replaced_and_its_slice_redone(local_ray):
    """A worker dies in the middle of its slice (its process exits inside the policy call,
    an event, not a timer); a new actor redoes the slice with the same seed."""
    family = get_task_family("HalfCheetahVel-v0")
    horizon, tasks_n, episodes = 50, 4, 3
    reference = PartitionedSampler(family, horizon=horizon, seed=3, num_partitions=2)
    remote = RaySampler(family, horizon=horizon, seed=3, num_workers=2)

    class DiesInOneWorker(GaussianMLPPolicy):
        """Pickled by value to the actors; the process with ``victim_pid`` exits mid-rollout."""

        victim_pid = -1

        def mean_std(self, obs, params):
            if os.getpid() == self.victim_pid:
                os._exit(1)
            return super().mean_std(obs, params)

    try:
        policy = DiesInOneWorker(reference.obs_dim, reference.act_dim)
        tasks = reference.sample_tasks(tasks_n, np.random.default_rng(1))
        remote.sample(policy, policy.params(), tasks, 1)  # workers have their envs
        policy.victim_pid = pid = ray.get(remote.workers[0].pid.remote())
        got = remote.sample(policy, policy.params(), tasks, episodes)
        assert remote.worker_restarts == 1
        assert ray.get(remote.workers[0].pid.remote()) != pid
        reference.sample(policy, policy.params(), tasks, 1)  # same stream position
        assert_same_batch(reference.sample(policy, policy.params(), tasks, episodes), got)
    finally:
        remote.close()
        reference.close()


@pytest.mark.parametrize("config", [NAV_CONFIG, NAV_CONFIG.parents[1] / "promp" / NAV_CONFIG.name],
                         ids=["maml_trpo", "promp"])
def test_train_cli_on_local_ray(tmp_path, config):
    run_dir = tmp_path / "run"
    proc = metarl("train", config, "--run-dir", run_dir, "--set", "train.iterations=2",
                  "--set", "sampler.backend=ray", "--set", "sampler.num_workers=2",
                  "--set", "algo.meta_batch_size=4", "--set", "sampler.episodes_per_task=4",
                  "--set", "logging.tensorboard=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert [float(r["diagnostics/worker_restarts"]) for r in rows] == [0.0, 0.0]
    assert all(np.isfinite(float(r["meta_train/return/adapt_1"])) for r in rows)


def test_bench_sampler_reports_ray_figures(local_ray):
    from metarl.bench import bench_sampler

    result = bench_sampler("HalfCheetahVel-v0", tasks=2, episodes=2, horizon=20, repeats=1,
                           backend="ray", workers=2, log=lambda _: None).to_dict()
    assert result["ray_workers"] == 2
    assert result["ray_steps_per_s"] > 0 and result["ray_to_batch"] > 0
    assert result["ray_overhead_s"] >= 0 and result["ray_batch_bytes"] > 0
