"""The MAML paper's comparison methods: TRPO on the task mixture, the task-aware
oracle, and `metarl eval --baselines` end to end with a tiny budget."""

import csv
import dataclasses

import numpy as np
import pytest
import torch
import yaml

from metarl.algos.maml import TRPOConfig
from metarl.envs import DirectionTask, GoalTask, VelocityTask, get_task_family, task_features
from metarl.policies import GaussianMLPPolicy
from metarl.samplers import BatchSampler

from cli_helpers import NAV_CONFIG, metarl

CONFIG = NAV_CONFIG
TINY = ["--set", "train.iterations=2", "--set", "algo.meta_batch_size=3",
        "--set", "sampler.episodes_per_task=2", "--set", "sampler.eval_episodes_per_task=2",
        "--set", "env.horizon=15", "--device", "cpu"]


def test_task_features_flatten_numeric_fields():
    np.testing.assert_array_equal(task_features(VelocityTask(1.5)), [1.5])
    np.testing.assert_array_equal(task_features(DirectionTask(-1)), [-1.0])
    np.testing.assert_array_equal(task_features(GoalTask((0.25, -0.5))), [0.25, -0.5])
    with pytest.raises(TypeError, match="dataclass"):
        task_features(1.5)


def test_sampler_appends_task_parameters_for_the_oracle():
    family = get_task_family("Navigation2D-v0")
    plain = BatchSampler(family, horizon=5, seed=0)
    oracle = BatchSampler(family, horizon=5, seed=0, task_in_obs=True)
    assert oracle.obs_dim == plain.obs_dim + 2
    tasks = [GoalTask((0.1, 0.2)), GoalTask((-0.3, 0.4))]
    policy = GaussianMLPPolicy(oracle.obs_dim, oracle.act_dim, (4,))
    batch = oracle.sample(policy, policy.params(), tasks, 3)
    for i, task in enumerate(tasks):
        goal = torch.tensor(task.goal).expand(3, 5, 2)
        torch.testing.assert_close(batch.observations[i, :, :, 2:], goal)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("baselines")
    root = work / "runs"
    common = [*TINY, "--set", f"train.runs_root={root}"]
    # the baselines' config: the MAML config's keys that TRPO has (no inner loop)
    data = yaml.safe_load(CONFIG.read_text())
    keys = {f.name for f in dataclasses.fields(TRPOConfig)}
    data["algo"] = {k: v for k, v in data["algo"].items() if k in keys} | {"name": "trpo"}
    (work / "trpo.yaml").write_text(yaml.safe_dump(data))
    for config, extra in ((CONFIG, []), (work / "trpo.yaml", []),
                          (work / "trpo.yaml", ["--set", "env.task_in_observation=true"])):
        proc = metarl("train", config, *common, *extra, cwd=work)
        assert proc.returncode == 0, proc.stderr
    by_algo = {}
    for run in root.iterdir():
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        key = "oracle" if cfg["env"]["task_in_observation"] else cfg["algo"]["name"]
        by_algo[key] = run
    assert set(by_algo) == {"maml_trpo", "trpo", "oracle"}
    return work, by_algo


def test_eval_with_baselines_writes_all_curves(runs):
    work, by_algo = runs
    out = work / "eval"
    proc = metarl("eval", by_algo["maml_trpo"], "--tasks", 3, "--grad-steps", 2, "--device", "cpu",
                  "--baselines", "pretrained,random,oracle", "--step-grid", "0.05,0.2",
                  "--out", out, cwd=work)
    assert proc.returncode == 0, proc.stderr
    with open(out / "adaptation.csv") as handle:
        rows = list(csv.DictReader(handle))
    methods = {(r["method"], int(r["step"])) for r in rows}
    assert methods == {(m, k) for m in ("maml", "pretrained", "random", "oracle") for k in range(3)}
    oracle = [float(r["mean_return"]) for r in rows if r["method"] == "oracle"]
    assert len(set(oracle)) == 1  # not adapted: one measurement drawn at every step
    info = yaml.safe_load((out / "eval_info.yaml").read_text())
    assert info["baselines"]["pretrained"]["step_size"] in (0.05, 0.2)
    assert str(by_algo["trpo"]) in info["baselines"]["pretrained"]["checkpoint"]
    assert str(by_algo["oracle"]) in info["baselines"]["oracle"]["checkpoint"]
    assert (out / "adaptation.png").stat().st_size > 0
    # Per-task returns: their means are adaptation.csv's, and the paired differences in
    # eval_info.yaml (and on the console) are MAML's minus each method's, task by task.
    with open(out / "task_returns.csv") as handle:
        per_task = {}
        for r in csv.DictReader(handle):
            per_task.setdefault((r["method"], int(r["step"])), []).append(
                (int(r["task"]), float(r["return"])))
    assert set(per_task) == methods
    for r in rows:
        tasks, values = zip(*per_task[(r["method"], int(r["step"]))])
        assert tasks == (0, 1, 2)
        assert np.mean(values) == pytest.approx(float(r["mean_return"]), abs=1e-5)
        assert np.std(values, ddof=1) / np.sqrt(3) == pytest.approx(float(r["stderr"]), abs=1e-5)
    paired = info["paired_differences"]
    assert paired["method"] == "maml" and set(paired["minus"]) == {"pretrained", "random", "oracle"}
    for other, diffs in paired["minus"].items():
        assert [d["step"] for d in diffs] == [0, 1, 2]
        for d in diffs:
            gap = (np.array([v for _, v in per_task[("maml", d["step"])]])
                   - np.array([v for _, v in per_task[(other, d["step"])]]))
            assert d["mean"] == pytest.approx(gap.mean(), abs=1e-5)
            assert d["stderr"] == pytest.approx(gap.std(ddof=1) / np.sqrt(3), abs=1e-5)
    assert "maml minus pretrained, paired over the 3 tasks (step: mean ± s.e.): 0: " in proc.stdout
    # Same held-out tasks and action noise for every method: the random baseline is
    # reproducible, and MAML's curve does not depend on which baselines were asked for.
    again = metarl("eval", by_algo["maml_trpo"], "--tasks", 3, "--grad-steps", 2,
                   "--device", "cpu", "--out", work / "eval2", cwd=work)
    assert again.returncode == 0, again.stderr
    with open(work / "eval2" / "adaptation.csv") as handle:
        maml_only = [r for r in csv.DictReader(handle)]
    assert maml_only == [r for r in rows if r["method"] == "maml"]
    again_info = yaml.safe_load((work / "eval2" / "eval_info.yaml").read_text())
    assert again_info["paired_differences"] is None  # no baselines, nothing to pair with


def test_eval_baseline_errors_explain(runs, tmp_path):
    work, by_algo = runs
    lonely = tmp_path / "alone"
    lonely.mkdir()
    import shutil
    shutil.copytree(by_algo["maml_trpo"], lonely / "maml")
    proc = metarl("eval", lonely / "maml", "--tasks", 2, "--grad-steps", 1,
                  "--baselines", "pretrained", cwd=tmp_path)
    assert proc.returncode == 2
    assert "configs/baselines/" in proc.stderr and "pretrained=RUN_DIR" in proc.stderr
    proc = metarl("eval", by_algo["maml_trpo"], "--baselines", "pretrained=" + str(by_algo["oracle"]),
                  "--tasks", 2, "--grad-steps", 1, cwd=tmp_path)
    assert proc.returncode == 2 and "not a pretrained baseline" in proc.stderr
    proc = metarl("eval", by_algo["trpo"], "--tasks", 2, cwd=tmp_path)
    assert proc.returncode == 2 and "'trpo' run" in proc.stderr
    proc = metarl("eval", by_algo["maml_trpo"], "--baselines", "pretrianed", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown method 'pretrianed'" in proc.stderr
