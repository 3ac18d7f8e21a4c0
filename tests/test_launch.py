"""launch/: the sweep launcher runs a grid on a local Ray; the cluster and Slurm examples are valid."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from cli_helpers import NAV_CONFIG, ROOT

SWEEP = ROOT / "launch" / "sweep.py"


def sweep(*args, cwd):
    return subprocess.run([sys.executable, str(SWEEP), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_sweep_dry_run_expands_the_grid(tmp_path):
    proc = sweep(NAV_CONFIG, "--seeds", 1, 2, "--grid", "algo.inner_step_size=0.05,0.1",
                 "--set", "train.iterations=3", "--out", tmp_path, "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4
    assert sum("--seed 2" in line for line in lines) == 2
    assert sum("algo.inner_step_size=0.1" in line for line in lines) == 2
    assert all("--set train.iterations=3" in line for line in lines)


def test_sweep_rejects_a_typo_before_starting_anything(tmp_path):
    proc = sweep(NAV_CONFIG, "--grid", "algo.inner_stepsize=0.1,0.2", "--out", tmp_path,
                 cwd=tmp_path)
    assert proc.returncode != 0
    assert "did you mean 'inner_step_size'" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_sweep_runs_grid_on_local_ray(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    out = tmp_path / "sweep"
    proc = sweep(NAV_CONFIG, "--seeds", 1, 2, "--out", out,
                 "--set", "train.iterations=1", "--set", "algo.meta_batch_size=2",
                 "--set", "sampler.episodes_per_task=2", "--set", "logging.tensorboard=false",
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = sorted(p.name for p in out.iterdir() if p.name != "logs")
    assert runs == ["maml_trpo-navigation_2d__seed1", "maml_trpo-navigation_2d__seed2"]
    for name in runs:
        assert (out / name / "progress.csv").read_text().count("\n") == 2  # header + 1 iteration
        assert (out / "logs" / f"{name}.log").exists()
    assert "iter 1:" in proc.stdout


def test_ray_cluster_config_matches_rays_schema():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema_path = os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")
    with open(schema_path) as f:
        schema = json.load(f)
    with open(ROOT / "launch" / "ray_cluster.yaml") as f:
        jsonschema.validate(yaml.safe_load(f), schema)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_slurm_script_parses_and_explains_usage(tmp_path):
    script = ROOT / "launch" / "slurm.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "usage: sbatch launch/slurm.sbatch" in proc.stderr


def _sweep_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sweep", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_retried_run_resumes_and_a_finished_one_is_skipped(tmp_path):
    sweep_module = _sweep_module()
    small = ("algo.meta_batch_size=2", "sampler.episodes_per_task=2", "env.horizon=10",
             "train.iterations=2", "train.checkpoint_every=1", "logging.tensorboard=false")
    run = sweep_module.Run(NAV_CONFIG, 1, small, ())
    run_dir, log = tmp_path / "run", tmp_path / "logs" / "run.log"
    assert sweep_module.execute(run, run_dir, log)[0] == 0
    (run_dir / "checkpoints" / "iter_000002.pt").unlink()  # as if the node died in iteration 2
    assert sweep_module.execute(run, run_dir, log)[0] == 0  # Ray's retry of the task
    text = log.read_text()
    assert "--resume" in text and "resuming at iteration 2" in text
    assert (run_dir / "checkpoints" / "iter_000002.pt").is_file()
    assert sweep_module.execute(run, run_dir, log)[0] == 0
    assert log.read_text().endswith(f"sweep: {run_dir} is already complete\n")
    # died before its first checkpoint: the directory is set aside, the run starts afresh
    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    assert sweep_module.execute(run, run_dir, log)[0] == 0
    assert (tmp_path / "run.incomplete-1" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "iter_000002.pt").is_file()
