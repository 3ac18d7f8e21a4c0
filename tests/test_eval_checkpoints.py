"""`metarl eval --checkpoint latest|best|ITER`, the baselines' separate tuning draw and
the per-step progress lines, on one tiny in-process training run."""

import csv
import re
import shutil

import numpy as np
import pytest
import yaml

from metarl.checkpoint import CheckpointError
from metarl.algos import get_algorithm
from metarl.cli import main
from metarl.envs import get_task_family
from metarl.comparisons import draw_tuning_tasks, tuning_seed
from metarl.runs import training_returns
from metarl.experiment import STREAM_EVAL_ACTIONS, STREAM_EVAL_TASKS, derive_seed
from metarl.samplers import BatchSampler

from cli_helpers import NAV_CONFIG

EVAL = ["--tasks", "2", "--grad-steps", "1", "--device", "cpu"]
RETURN = "meta_train/return/adapt_1"  # one inner step: the post-adaptation return


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three iterations, a checkpoint after each; evaluation with 2 episodes per task."""
    run = tmp_path_factory.mktemp("evalckpt") / "run"
    assert main(["train", str(NAV_CONFIG), "--set", "algo.meta_batch_size=2",
                 "--set", "sampler.episodes_per_task=2", "--set", "env.horizon=10",
                 "--set", "sampler.eval_episodes_per_task=2", "--set", "train.iterations=3",
                 "--set", "train.checkpoint_every=1", "--set", "logging.tensorboard=false",
                 "--device", "cpu", "--run-dir", str(run)]) == 0
    return run


def _copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])  # as a crash mid-copy leaves it


def _info(out):
    return yaml.safe_load((out / "eval_info.yaml").read_text())


def _set_returns(run, values):
    """Overwrite ``progress.csv``'s post-adaptation return of each iteration."""
    with open(run / "progress.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    for row in rows:
        row[RETURN] = values[int(row["iteration"])]
    with open(run / "progress.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def test_latest_falls_back_past_a_truncated_checkpoint_and_reports_progress(
        trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    newest = run / "checkpoints" / "iter_000003.pt"
    _truncate(newest)
    capsys.readouterr()
    assert main(["eval", str(run), *EVAL, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "skipping unusable checkpoint" in out and str(newest) in out
    assert "checkpoint: iteration 2 (latest that loads)" in out
    for step in (0, 1):
        assert re.search(rf"^eval maml step {step}/1: 2/2 tasks, \d+\.\ds elapsed$", out, re.M)
    info = _info(tmp_path / "out")
    assert info["iteration"] == 2 and info["checkpoint"].endswith("iter_000002.pt")
    assert info["iterate"] == {"iteration": 2, "checkpoint": info["checkpoint"],
                               "chosen_by": "latest", "skipped_checkpoints": [str(newest)]}


def test_explicit_iteration_is_that_one_or_an_error(trained, tmp_path, capsys):
    assert main(["eval", str(trained), *EVAL, "--checkpoint", "1",
                 "--out", str(tmp_path / "one")]) == 0
    info = _info(tmp_path / "one")
    assert info["iteration"] == 1 and info["iterate"]["chosen_by"] == "explicit"
    assert info["iterate"]["checkpoint"].endswith("iter_000001.pt")
    capsys.readouterr()
    assert main(["eval", str(trained), *EVAL, "--checkpoint", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--checkpoint 7: no checkpoint of iteration 7" in err
    assert err.endswith("available iterations: 1, 2, 3") and len(err.splitlines()) == 1
    assert main(["eval", str(trained), *EVAL, "--checkpoint", "newest"]) == 2
    assert "expected latest, best or an iteration number, got 'newest'" in capsys.readouterr().err
    # A corrupted explicit iterate is an error naming the file; no other iterate stands in.
    run = _copy(trained, tmp_path)
    _truncate(run / "checkpoints" / "iter_000002.pt")
    assert main(["eval", str(run), *EVAL, "--checkpoint", "2",
                 "--out", str(tmp_path / "two")]) == 2
    err = capsys.readouterr().err
    assert "iter_000002.pt is corrupted or truncated" in err and "not evaluating another" in err
    assert not (tmp_path / "two").exists()


def test_best_is_the_highest_training_return_among_loadable_checkpoints(
        trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    _set_returns(run, {1: -9.0, 2: -1.5, 3: -4.0})
    assert main(["eval", str(run), *EVAL, "--checkpoint", "best",
                 "--out", str(tmp_path / "best")]) == 0
    assert f"checkpoint: iteration 2 (best: highest {RETURN} in progress.csv, -1.5)" \
        in capsys.readouterr().out
    iterate = _info(tmp_path / "best")["iterate"]
    assert iterate["iteration"] == 2 and iterate["chosen_by"] == "best"
    assert iterate["train_return"] == -1.5 and iterate["train_return_column"] == RETURN
    # the best checkpoint unloadable: the next best that loads, the skipped one named
    _truncate(run / "checkpoints" / "iter_000002.pt")
    _set_returns(run, {1: -3.0, 2: -1.5, 3: -3.0})  # 1 and 3 tie: the earliest wins
    assert main(["eval", str(run), *EVAL, "--checkpoint", "best",
                 "--out", str(tmp_path / "next")]) == 0
    iterate = _info(tmp_path / "next")["iterate"]
    assert iterate["iteration"] == 1 and iterate["train_return"] == -3.0
    assert iterate["skipped_checkpoints"] == [str(run / "checkpoints" / "iter_000002.pt")]
    (run / "progress.csv").unlink()
    capsys.readouterr()
    assert main(["eval", str(run), *EVAL, "--checkpoint", "best"]) == 2
    assert f"{run / 'progress.csv'} not found" in capsys.readouterr().err


def test_best_reads_the_post_adaptation_column_of_each_algorithm(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text("iteration,meta_train/return/adapt_0,meta_train/return/adapt_2,"
                    "meta_train/return/adapt_1,meta_train/return/posterior\n"
                    "1,-5,-3,-4,-2\n2,-6,,-1,nan\n3,-4,-2.5,-3,-7\n")
    assert training_returns(tmp_path, get_algorithm("maml_trpo")) == ("meta_train/return/adapt_2",
                                                       {1: -3.0, 3: -2.5})
    assert training_returns(tmp_path, get_algorithm("pearl")) == ("meta_train/return/posterior",
                                                   {1: -2.0, 3: -7.0})
    with pytest.raises(CheckpointError, match="'trpo' run"):
        training_returns(tmp_path, get_algorithm("trpo"))
    path.write_text("iteration,meta_train/return/adapt_0\n1,-5\n")
    with pytest.raises(CheckpointError, match="has no column meta_train/return/posterior"):
        training_returns(tmp_path, get_algorithm("pearl"))


def test_baseline_step_sizes_are_tuned_on_a_separate_draw(trained, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", str(trained), *EVAL, "--baselines", "random", "--step-grid", "0.05,0.2",
                 "--tuning-tasks", "3", "--seed", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tuned on 3 separate tuning tasks" in printed
    assert re.search(r"^eval random \(tuning, step size 0\.05\) step 1/1: 3/3 tasks, ", printed,
                     re.M)
    assert re.search(r"^eval random \(step size 0\.(05|2)\) step 1/1: 2/2 tasks, ", printed, re.M)
    info = _info(out)
    tuning, held_out = info["baseline_tuning"], info["held_out"]
    assert tuning["tasks"] == 3 and len(tuning["task_values"]) == 3
    assert tuning["task_seed"] == tuning_seed(4, STREAM_EVAL_TASKS)
    assert tuning["action_seed"] == tuning_seed(4, STREAM_EVAL_ACTIONS)
    assert held_out["task_seed"] == derive_seed(4, STREAM_EVAL_TASKS)
    assert tuning["action_seed"] != held_out["action_seed"]
    assert not {tuple(v) for v in tuning["task_values"]} & {tuple(v) for v in
                                                           held_out["task_values"]}
    assert tuning["tasks_equal_in_value_to_reported"] == 0 and "note" not in tuning
    assert info["baselines"]["random"]["step_size"] in (0.05, 0.2)


def test_discrete_task_sets_are_flagged_as_coinciding_in_value():
    sampler = BatchSampler(get_task_family("HalfCheetahDir-v0"), horizon=5, seed=0)
    reported = sampler.sample_tasks(4, np.random.default_rng(derive_seed(0, STREAM_EVAL_TASKS)))
    draw = draw_tuning_tasks(sampler, reported, 4, seed=0)
    assert draw.task_seed != derive_seed(0, STREAM_EVAL_TASKS)
    directions = {task.direction for task in reported}  # +-1: any draw repeats values
    assert draw.equal_in_value == sum(task.direction in directions for task in draw.tasks) > 0
    assert "discrete task set" in draw.info("HalfCheetahDir-v0")["note"]


def _task_returns(out):
    with open(out / "task_returns.csv", newline="") as handle:
        return {(r["method"], int(r["step"]), int(r["task"])): float(r["return"])
                for r in csv.DictReader(handle)}


def test_step_sizes_replace_the_runs_eval_step_sizes(trained, tmp_path, capsys):
    """`--step-sizes` gives what a run whose checkpoint saved those eval_step_sizes gives."""
    from metarl.checkpoint import load_checkpoint, save_checkpoint

    assert main(["eval", str(trained), *EVAL, "--step-sizes", "0.3",
                 "--out", str(tmp_path / "flag")]) == 0
    assert "maml: step sizes [0.3] (--step-sizes; the run's algo.eval_step_sizes: [0.1, 0.05])" \
        in capsys.readouterr().out
    info = _info(tmp_path / "flag")
    assert info["step_sizes"] == [0.3] and info["step_sizes_from"] == "--step-sizes"
    # The independent route: the same iterate with 0.3 written into its saved config.
    run = _copy(trained, tmp_path)
    path = run / "checkpoints" / "iter_000003.pt"
    state = load_checkpoint(path)
    state["config"]["algo"]["eval_step_sizes"] = [0.3]
    save_checkpoint(path, state)
    assert main(["eval", str(run), *EVAL, "--out", str(tmp_path / "saved")]) == 0
    assert _info(tmp_path / "saved")["step_sizes"] == [0.3]
    assert "step_sizes_from" not in _info(tmp_path / "saved")
    flag, saved = _task_returns(tmp_path / "flag"), _task_returns(tmp_path / "saved")
    assert flag == saved
    assert main(["eval", str(trained), *EVAL, "--out", str(tmp_path / "default")]) == 0
    default = _task_returns(tmp_path / "default")
    assert all(default["maml", 0, t] == flag["maml", 0, t] for t in (0, 1))  # before any step
    assert any(default["maml", 1, t] != flag["maml", 1, t] for t in (0, 1))


@pytest.mark.parametrize("value, message", [
    ("0", "--step-sizes: need positive step sizes, got [0.0]"),
    ("0.1,nan", "--step-sizes: need positive step sizes, got [0.1, nan]"),
    ("fast", "--step-sizes: expected comma-separated numbers, got 'fast'"),
    (",", "--step-sizes: need positive step sizes, got []"),
])
def test_step_sizes_errors_name_the_flag(trained, tmp_path, capsys, value, message):
    assert main(["eval", str(trained), *EVAL, "--step-sizes", value,
                 "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_inner_step_diagnostic_measures_the_step_metarl_eval_takes(trained, tmp_path,
                                                                    monkeypatch):
    """docs/runs/inner_step_size.py adapts exactly as `metarl eval --steps 1` does, and its
    KL is the closed-form Gaussian KL of the two policies on the pre-step states."""
    import importlib.util
    import sys
    from pathlib import Path

    import torch

    script = Path(__file__).resolve().parents[1] / "docs" / "runs" / "inner_step_size.py"
    spec = importlib.util.spec_from_file_location("inner_step_size", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    measured = module.measure(trained, 3, seed=0, num_tasks=2)
    assert main(["eval", str(trained), *EVAL, "--out", str(tmp_path / "eval")]) == 0
    returns = _task_returns(tmp_path / "eval")
    for k in (0, 1):
        assert measured.returns[k].tolist() == pytest.approx(
            [returns["maml", k, t] for t in (0, 1)], rel=1e-6)
    assert measured.iteration == 3 and measured.step_size == 0.1
    assert bool((measured.kl > 0).all()) and bool((measured.param_change > 0).all())

    # Closed form, recomputed from the same adaptation: sum over action dims of
    # log(s1/s0) + (s0^2 + (m0-m1)^2) / (2 s1^2) - 1/2, averaged over real steps.
    from metarl.runs import load_run

    run = load_run(trained, torch.device("cpu"), checkpoint=3)
    try:
        learner, sampler = run.parts.algo, run.parts.sampler
        tasks = module.held_out_tasks(learner, sampler, 2,
                                      derive_seed(0, STREAM_EVAL_TASKS), lambda _: None)
        adaptation = learner.adapt(tasks, 1, 2, sampler.using(
            module.RolloutStreams(derive_seed(0, STREAM_EVAL_ACTIONS))), step_sizes=[0.1])
        before, policy = adaptation.batches[0], learner.policy
        with torch.no_grad():
            pre = module.stack_params(dict(policy.params()), 2)
            m0, s0 = policy.mean_std(before.observations, pre)
            m1, s1 = policy.mean_std(before.observations, adaptation.params)
        kl = (torch.log(s1 / s0) + (s0 ** 2 + (m0 - m1) ** 2) / (2 * s1 ** 2) - 0.5).sum(-1)
        mask = before.mask.numpy()
        expected = (kl.numpy() * mask).sum((1, 2)) / mask.sum((1, 2))
    finally:
        run.parts.algo.close()
        run.parts.sampler.close()
    assert measured.kl.numpy() == pytest.approx(expected, rel=1e-5)
