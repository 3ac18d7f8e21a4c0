"""PEARL through the product: config keys, `metarl train` and `metarl eval` end to end."""

import csv
import math
import shutil

import pytest
import yaml

from metarl.algos.pearl import PEARLConfig
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import ConfigError, config_from_dict, load_config
from metarl.schema import check_settings

from cli_helpers import ROOT, metarl

NAV_PEARL = ROOT / "configs" / "pearl" / "navigation_2d.yaml"
TINY = ["--set", "train.iterations=2", "--set", "algo.num_train_tasks=6",
        "--set", "algo.num_test_tasks=3", "--set", "algo.num_tasks_sample=2",
        "--set", "algo.num_initial_steps=40", "--set", "algo.num_steps_prior=20",
        "--set", "algo.num_extra_rl_steps_posterior=40", "--set", "algo.meta_batch_size=4",
        "--set", "algo.batch_size=16", "--set", "algo.embedding_batch_size=8",
        "--set", "algo.num_train_steps_per_itr=5", "--set", "algo.eval_every=3",
        "--set", "algo.hidden_sizes=[16,16]", "--set", "algo.encoder_hidden_sizes=[16]",
        "--set", "train.checkpoint_every=1"]


def test_shipped_config_builds_pearls_own_settings():
    """The algo section is PEARLConfig itself: defaults and ranges are written once."""
    cfg = config_from_dict(yaml.safe_load(NAV_PEARL.read_text()))
    assert isinstance(cfg.algo, PEARLConfig)
    assert cfg.algo.meta_batch_size == 16 and cfg.algo.hidden_sizes == [64, 64]
    check_settings(cfg.algo, "algo.")
    assert PEARLConfig().hidden_sizes == [300, 300, 300]  # the reference's net_size
    assert "policy" not in cfg.to_dict() and "episodes_per_task" not in cfg.to_dict()["sampler"]


@pytest.mark.parametrize("override, message", [
    ({"algo": {"name": "pearl", "num_tasks_sample": 9, "num_train_tasks": 4}},
     r"^algo\.num_tasks_sample: 9 must not exceed algo\.num_train_tasks \(4\)"),
    ({"algo": {"name": "pearl", "num_steps_prior": 0}}, r"^algo\.num_extra_rl_steps_posterior"),
    ({"algo": {"name": "pearl"}, "policy": {"activation": "tanh"}},
     r"^policy\.activation: the policy section is not used by algo\.name 'pearl'"),
    ({"algo": {"name": "pearl"}, "sampler": {"episodes_per_task": 3}},
     r"^sampler\.episodes_per_task: not used by algo\.name 'pearl'"),
    ({"algo": {"name": "pearl", "max_kl": 0.1}},
     r"^algo\.max_kl: unknown key for algo\.name 'pearl' \(it is a key of maml_trpo, rl2, trpo\)"),
    ({"algo": {"name": "pearl", "reward_scale": 0}}, r"^algo\.reward_scale: 0"),
    ({"algo": {"name": "pearl", "kl_lambd": 1}}, r"did you mean 'kl_lambda'"),
])
def test_pearl_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(override)
    # a MAML config rejects PEARL's keys instead of ignoring them
    with pytest.raises(ConfigError, match=r"^algo\.num_tasks_sample: unknown key for "
                                          r"algo\.name 'maml_trpo' \(it is a key of pearl\)"):
        config_from_dict({"algo": {"num_tasks_sample": 9, "num_train_tasks": 4}})


@pytest.fixture(scope="module")
def pearl_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("pearl_cli")
    run_dir = work / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")  # tiny networks: one thread avoids OpenMP spinning on busy CPUs
    try:
        proc = metarl("train", NAV_PEARL, *TINY, "--seed", 2, "--run-dir", run_dir, cwd=work)
        assert proc.returncode == 0, proc.stderr
        yield run_dir, proc, work
    finally:
        mp.undo()


def test_train_logs_pearl_losses_and_meta_test(pearl_run):
    run_dir, proc, _ = pearl_run
    assert "iter 1/2" in proc.stdout and "test k=0.." in proc.stdout
    rows = list(csv.DictReader(open(run_dir / "progress.csv")))
    # meta-tested after iteration 1 and every algo.eval_every (3) iterations
    assert rows[1]["meta_test/return/adapt_0"] == "" and rows[0]["meta_test/return/adapt_2"]
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    # at least the initial steps and the schedule (whole episodes; one reaching its goal
    # ends early and the task collects another)
    assert int(rows[0]["env_steps"]) >= 6 * 40 + 2 * (20 + 40)
    for key in ("losses/qf", "losses/vf", "losses/policy", "losses/kl_z",
                "meta_train/return/adapt_0", "meta_train/return/posterior",
                "time/sample_s", "time/update_s"):
        assert math.isfinite(float(rows[1][key])), key
    for key in ("meta_test/return/adapt_0", "meta_test/return/adapt_2", "meta_test/return/gain",
                "time/meta_test_s"):
        assert math.isfinite(float(rows[0][key])), key
    state = load_checkpoint(run_dir / "checkpoints" / "iter_000002.pt")
    assert state["algo"] == "pearl" and state["iteration"] == 2


def test_eval_writes_the_context_trajectory_curve(pearl_run, tmp_path):
    run_dir, _, work = pearl_run
    out = tmp_path / "eval"
    proc = metarl("eval", run_dir, "--tasks", 4, "--grad-steps", 2, "--seed", 5, "--out", out,
                  "--device", "cpu", cwd=work)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "adaptation.csv")))
    assert list(rows[0]) == ["method", "step", "mean_return", "stderr", "n_tasks"]
    assert [(r["method"], int(r["step"]), int(r["n_tasks"])) for r in rows] == [
        ("pearl", 0, 4), ("pearl", 1, 4), ("pearl", 2, 4)]
    assert all(math.isfinite(float(r["mean_return"])) and float(r["stderr"]) >= 0 for r in rows)
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = metarl("eval", run_dir, "--tasks", 4, "--grad-steps", 2, "--seed", 5, "--out",
                   tmp_path / "again", "--device", "cpu", cwd=work)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "adaptation.csv").read_text() == (out / "adaptation.csv").read_text()

    refused = metarl("eval", run_dir, "--baselines", "random", "--out", tmp_path / "b", cwd=work)
    assert refused.returncode == 2 and "not defined for a pearl run" in refused.stderr
    refused = metarl("eval", run_dir, "--step-sizes", "0.2", "--out", tmp_path / "s", cwd=work)
    assert refused.returncode == 2 and "--step-sizes: a pearl run adapts over" in refused.stderr


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """Meta-tests in between (after iterations 1 and 2) and a resume after iteration 2
    leave training's samples and updates as in one run of 3 iterations."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = [*TINY, "--set", "algo.eval_every=2", "--seed", 4]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert metarl("train", NAV_PEARL, *common, "--set", "train.iterations=3", "--run-dir", whole,
                  cwd=tmp_path).returncode == 0
    assert metarl("train", NAV_PEARL, *common, "--run-dir", part, cwd=tmp_path).returncode == 0
    resumed = metarl("train", "--resume", part, "--set", "train.iterations=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    def rows(run):
        return [{k: v for k, v in r.items() if not k.startswith("time/") and k != "wall_s"}
                for r in csv.DictReader(open(run / "progress.csv"))]

    assert rows(part) == rows(whole)
    a = load_checkpoint(whole / "checkpoints" / "iter_000003.pt")["algo_state"]["networks"]
    b = load_checkpoint(part / "checkpoints" / "iter_000003.pt")["algo_state"]["networks"]
    assert all(a[k].equal(b[k]) for k in a)


# what a PEARL run's config looked like before `algo` was scoped to its algorithm: every
# algorithm's keys in `algo`, and the actor/Q/V widths in `policy`
_OLD_MAML_KEYS = {"inner_steps": 1, "inner_step_size": 0.1, "first_order": False,
                  "normalize_advantages": True, "gae_lambda": 1.0, "baseline_reg": 1e-5,
                  "max_kl": 0.01, "fisher": "gauss_newton", "fisher_subsample": 1.0,
                  "cg_iters": 10, "cg_damping": 1e-5, "ls_max_steps": 15,
                  "ls_backtrack_ratio": 0.8, "eval_step_sizes": [0.1, 0.05]}


def _old_format(config):
    old = yaml.safe_load(yaml.safe_dump(config))
    old["policy"] = {"hidden_sizes": old["algo"].pop("hidden_sizes"), "activation": "relu",
                     "init_std": 1.0, "min_std": 1e-6}
    old["algo"].pop("task_set")  # added to PEARL after the scoping: never in those dumps
    old["algo"].update(_OLD_MAML_KEYS)
    old["sampler"]["episodes_per_task"] = 20
    return old


def test_a_run_written_before_scoped_configs_still_evaluates_and_resumes(pearl_run, tmp_path):
    run_dir, _, work = pearl_run
    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    config = yaml.safe_load((old / "config.yaml").read_text())
    (old / "config.yaml").write_text(yaml.safe_dump(_old_format(config)))
    for path in (old / "checkpoints").glob("iter_*.pt"):
        state = load_checkpoint(path)
        state["config"] = _old_format(state["config"])
        save_checkpoint(path, state)
    with pytest.raises(ConfigError, match=r"^algo\.\w+: unknown key for algo\.name 'pearl'"):
        load_config(old / "config.yaml")  # as a user's config: an error, not a silent ignore

    evaluated = metarl("eval", old, "--tasks", 3, "--steps", 1, "--out", tmp_path / "eval",
                       "--device", "cpu", cwd=work)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "written by an earlier metarl; moved policy.hidden_sizes to algo.hidden_sizes; " \
           "dropped the keys algo.name 'pearl' does not have: algo.inner_steps" in evaluated.stdout
    resumed = metarl("train", "--resume", old, "--set", "train.iterations=3", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert "written by an earlier metarl" in resumed.stdout and "iter 3/3" in resumed.stdout
    saved = yaml.safe_load((old / "config.yaml").read_text())  # rewritten in today's form
    assert "policy" not in saved and saved["algo"]["hidden_sizes"] == [16, 16]
    assert "max_kl" not in saved["algo"]


def test_eval_builds_only_what_adaptation_needs(pearl_run):
    run_dir, _, _ = pearl_run
    import torch

    from metarl.runs import load_run

    run = load_run(run_dir, torch.device("cpu"))
    try:
        learner = run.parts.algo
        assert not hasattr(learner, "replay_buffer") and not hasattr(learner, "critic_optimizer")
        trained = load_checkpoint(run.checkpoint)["algo_state"]["networks"]
        for name, value in learner.nets.state_dict().items():
            assert torch.equal(value, trained[name]), name
    finally:
        run.parts.sampler.close()
