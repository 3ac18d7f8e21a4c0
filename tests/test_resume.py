"""Exact resume: a run interrupted and resumed ends exactly where an uninterrupted one does."""

import csv
from pathlib import Path

import pytest
import torch

from metarl.checkpoint import load_checkpoint
from metarl.cli import main
from metarl.logger import RunLogger

SMALL = ["--set", "algo.meta_batch_size=2", "--set", "sampler.episodes_per_task=2",
         "--set", "env.horizon=10", "--set", "train.checkpoint_every=3",
         "--set", "logging.console=false"]
CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "maml_trpo" / "navigation_2d.yaml")


def _rows(run_dir):
    with open(run_dir / "progress.csv", newline="") as handle:
        # timings differ between runs; everything else must match
        return [{k: v for k, v in row.items() if not (k.startswith("time/") or k == "wall_s")}
                for row in csv.DictReader(handle)]


def _final_policy(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "iter_000006.pt")["algo_state"]["policy"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    assert main(["train", CONFIG, *SMALL, "--set", "train.iterations=6", "--run-dir", str(run)]) == 0
    return run


def _assert_same_run(run, reference):
    assert _rows(run) == _rows(reference)
    for name, tensor in _final_policy(reference).items():
        torch.testing.assert_close(_final_policy(run)[name], tensor, rtol=0, atol=0)


def test_three_plus_three_iterations_equal_six(tmp_path, uninterrupted):
    run = tmp_path / "run"
    assert main(["train", CONFIG, *SMALL, "--set", "train.iterations=3", "--run-dir", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--set", "train.iterations=6"]) == 0
    _assert_same_run(run, uninterrupted)
    assert "iterations: 6" in (run / "config.yaml").read_text()


def test_resume_falls_back_past_a_corrupted_checkpoint(tmp_path, uninterrupted, capsys):
    run = tmp_path / "run"
    assert main(["train", CONFIG, *SMALL, "--set", "train.iterations=6", "--run-dir", str(run)]) == 0
    latest = run / "checkpoints" / "iter_000006.pt"
    latest.write_bytes(latest.read_bytes()[:100])  # truncated, as by a crash mid-copy
    assert main(["train", "--resume", str(run)]) == 0  # redoes iterations 4..6 from iter 3
    out = capsys.readouterr().out
    assert "skipping unusable checkpoint" in out and "iter_000006.pt" in out
    _assert_same_run(run, uninterrupted)


def test_resume_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", CONFIG, *SMALL, "--set", "train.iterations=3", "--run-dir", str(run)]) == 0
    assert main(["train", "--resume", str(run)]) == 2
    assert "already at iteration 3" in capsys.readouterr().err


def test_resume_widens_progress_csv_for_new_columns(tmp_path):
    """A run started by an older metarl lacks newer columns; resuming keeps every row."""
    old = RunLogger(tmp_path, tensorboard=False)
    old.log_iteration(1, 10, 1.0, 1.0, {"meta_train/return/adapt_0": -2.0})
    old.log_iteration(2, 20, 2.0, 1.0, {"meta_train/return/adapt_0": -1.5})
    old.close()
    new = RunLogger(tmp_path, tensorboard=False, resume_after=1)
    new.log_iteration(2, 20, 2.0, 1.0, {"meta_train/return/adapt_0": -1.0,
                                        "diagnostics/policy_std": 0.9})
    new.log_iteration(3, 30, 3.0, 1.0, {"meta_train/return/adapt_0": -0.5,
                                        "diagnostics/policy_std": 0.8})
    new.close()
    with open(tmp_path / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["iteration"], r["meta_train/return/adapt_0"], r["diagnostics/policy_std"])
            for r in rows] == [("1", "-2.0", ""), ("2", "-1.0", "0.9"), ("3", "-0.5", "0.8")]


def test_tensorboard_keeps_one_point_per_iteration_across_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    every = ["--set", "train.checkpoint_every=2"]
    assert main(["train", CONFIG, *SMALL, *every, "--set", "train.iterations=3",
                 "--run-dir", str(run)]) == 0
    # each resume redoes iterations whose TensorBoard points were already written
    (run / "checkpoints" / "iter_000003.pt").unlink()
    assert main(["train", "--resume", str(run), "--set", "train.iterations=5"]) == 0
    (run / "checkpoints" / "iter_000005.pt").unlink()
    assert main(["train", "--resume", str(run), "--set", "train.iterations=6"]) == 0
    assert len(list(run.glob("events.out.tfevents.*"))) == 3
    steps = [int(row["env_steps"]) for row in _rows(run)]
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "meta_train/return/adapt_1" in tags
    for tag in tags:
        assert [e.step for e in events.Scalars(tag)] == steps, tag
    assert [e.value for e in events.Scalars("time/iteration")] == [1, 2, 3, 4, 5, 6]
