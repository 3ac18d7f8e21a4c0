"""Signals, NaN guards, hostile config input and unusable run directories."""

import csv
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarl.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from metarl.cli import main
from metarl.config import ConfigError, config_from_dict, describe_fields, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "maml_trpo" / "navigation_2d.yaml"
SMALL = ["--set", "algo.meta_batch_size=2", "--set", "sampler.episodes_per_task=2",
         "--set", "env.horizon=10", "--device", "cpu"]


# -- signals ------------------------------------------------------------------------------------

def _start_training(run_dir, cwd, size=SMALL):
    return subprocess.Popen(
        [sys.executable, "-m", "metarl", "train", str(CONFIG), *size,
         "--set", "train.iterations=100000", "--set", "train.checkpoint_every=100000",
         "--set", "logging.tensorboard=false", "--run-dir", str(run_dir)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_iteration(proc, n):
    for line in proc.stdout:
        if line.startswith(f"iter {n:>6}/"):
            return
    raise AssertionError(f"training ended early: {proc.stderr.read()}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_checkpoint_at_a_safe_point_then_resume_continues(tmp_path, signum):
    run = tmp_path / "run"
    proc = _start_training(run, tmp_path)
    _wait_for_iteration(proc, 2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert f"stopped by {name} after iteration" in err and f"--resume {run}" in err
    (ckpt,) = list_checkpoints(run / "checkpoints")
    state = load_checkpoint(ckpt)
    with open(run / "progress.csv") as handle:
        assert len(list(csv.DictReader(handle))) == state["iteration"]
    resumed = subprocess.run(
        [sys.executable, "-m", "metarl", "train", "--resume", str(run),
         "--set", f"train.iterations={state['iteration'] + 1}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr


# ProMP, RL² and PEARL go through the same training loop as MAML-TRPO: a signal checkpoints
# them too, and every progress.csv column is also a TensorBoard scalar against env steps
_OTHER_LEARNERS = {
    "promp": ["--set", "algo.meta_batch_size=2", "--set", "sampler.episodes_per_task=2",
              "--set", "env.horizon=10"],
    "rl2": ["--set", "algo.meta_batch_size=2", "--set", "algo.episodes_per_trial=2",
            "--set", "env.horizon=10"],
    "pearl": ["--set", "algo.num_train_tasks=4", "--set", "algo.num_test_tasks=2",
              "--set", "algo.num_tasks_sample=2", "--set", "algo.num_initial_steps=20",
              "--set", "algo.num_steps_prior=10", "--set", "algo.num_extra_rl_steps_posterior=10",
              "--set", "algo.meta_batch_size=2", "--set", "algo.batch_size=8",
              "--set", "algo.embedding_batch_size=8", "--set", "algo.num_train_steps_per_itr=2",
              "--set", "algo.eval_every=1000", "--set", "algo.hidden_sizes=[8,8]",
              "--set", "algo.encoder_hidden_sizes=[8]"],
}


@pytest.mark.parametrize("algo", sorted(_OTHER_LEARNERS))
def test_signal_checkpoints_every_learner_resume_continues_and_tensorboard_has_every_column(
        tmp_path, algo):
    run = tmp_path / "run"
    config = ROOT / "configs" / algo / "navigation_2d.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "metarl", "train", str(config), *_OTHER_LEARNERS[algo],
         "--device", "cpu", "--set", "train.iterations=100000",
         "--set", "train.checkpoint_every=100000", "--run-dir", str(run)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_iteration(proc, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "stopped by SIGINT after iteration" in err and f"--resume {run}" in err
    (ckpt,) = list_checkpoints(run / "checkpoints")
    done = load_checkpoint(ckpt)["iteration"]
    with open(run / "progress.csv") as handle:
        assert len(list(csv.DictReader(handle))) == done
    resumed = subprocess.run(
        [sys.executable, "-m", "metarl", "train", "--resume", str(run),
         "--set", f"train.iterations={done + 1}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    with open(run / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == done + 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    columns = set(rows[0]) - {"iteration", "env_steps", "wall_s"}
    assert any(c.startswith("meta_train/return/") for c in columns)
    steps: dict[str, list[int]] = {}
    for events in sorted(run.glob("events.out.tfevents.*")):  # one file per process
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
    assert columns <= set(steps), columns - set(steps)
    assert sorted(steps["meta_train/return/adapt_0"]) == [int(r["env_steps"]) for r in rows]


def _wait_for_line(proc, text):
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed: {proc.stderr.read()}")


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_second_signal_stops_at_once_without_damage(tmp_path, second):
    """Wherever the second signal lands (the iteration, the checkpoint write, Ray or
    logger cleanup, interpreter exit), the status is 4: the handler stays installed."""
    run = tmp_path / "run"
    proc = _start_training(run, tmp_path)
    _wait_for_iteration(proc, 1)
    proc.send_signal(signal.SIGINT)
    _wait_for_line(proc, "SIGINT received")  # the first signal was handled: now the second
    proc.send_signal(second)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "Traceback" not in err
    for path in list_checkpoints(run / "checkpoints"):
        load_checkpoint(path)  # whatever exists is complete
    assert not list((run / "checkpoints").glob(".*.tmp"))


# -- numerical guards ---------------------------------------------------------------------------

def test_repeated_nonfinite_updates_stop_the_run_with_a_checkpoint(tmp_path, monkeypatch, capsys):
    from metarl.algos import MAMLTRPO

    original = MAMLTRPO.advantages
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        adv = original(self, batch)
        return adv * float("nan") if calls["n"] > 2 else adv  # iteration 1 is healthy

    monkeypatch.setattr(MAMLTRPO, "advantages", poisoned)
    run = tmp_path / "run"
    code = main(["train", str(CONFIG), *SMALL, "--set", "train.iterations=10",
                 "--set", "train.max_skipped_updates=2", "--set", "logging.tensorboard=false",
                 "--run-dir", str(run)])
    err = capsys.readouterr()
    assert code == 3
    assert "2 meta-updates in a row were skipped (last: non-finite advantages" in err.err
    assert "skipped (non-finite advantages in the inner step)" in err.out
    with open(run / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["diagnostics/skipped_updates"]) for r in rows] == [0.0, 1.0, 1.0]
    state = load_checkpoint(run / "checkpoints" / "iter_000003.pt")
    assert all(torch.isfinite(t).all() for t in state["algo_state"]["policy"].values())


# -- run directories ----------------------------------------------------------------------------

def test_full_or_unusable_run_directory_is_reported_before_training(tmp_path, monkeypatch, capsys):
    import metarl.experiment as experiment

    real = shutil.disk_usage
    monkeypatch.setattr(experiment.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=5 * 2**20))
    assert main(["train", str(CONFIG), *SMALL, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "only 5.0 MiB free" in err and "progress" not in err
    assert not (tmp_path / "run" / "progress.csv").exists()
    monkeypatch.setattr(experiment.shutil, "disk_usage", real)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", str(CONFIG), *SMALL, "--run-dir", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["train", str(CONFIG), *SMALL, "--run-dir", str(blocker / "run")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_eval_explains_what_is_wrong_with_the_directory(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "is not a metarl run directory" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", str(CONFIG), *SMALL, "--set", "train.iterations=1",
                 "--set", "logging.tensorboard=false", "--run-dir", str(run)]) == 0
    ckpt = run / "checkpoints" / "iter_000001.pt"
    state = load_checkpoint(ckpt)
    state["config"]["algo"]["inner_optimizer"] = "adam"  # a key from some other metarl version
    save_checkpoint(ckpt, {k: v for k, v in state.items() if k not in ("format", "format_version")})
    capsys.readouterr()
    assert main(["eval", str(run), "--tasks", "2"]) == 2
    err = capsys.readouterr().err
    assert "does not fit metarl" in err and "algo.inner_optimizer: unknown key" in err


# -- hostile config input (property-based) -----------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=8)
_sections = ["env", "policy", "sampler", "algo", "train", "logging"]
# every key of every built-in algorithm: (algorithm, section, key)
_keys = [(algo, *path.split(".")) for algo in ("maml_trpo", "trpo", "promp", "pearl", "rl2")
         for path, _, _ in describe_fields(algo)]


def _config(algo, section, name, value):
    """``{section: {name: value}}`` in a config for ``algo``."""
    data = {"algo": {"name": algo}}
    data.setdefault(section, {})[name] = value
    return data


def _names_the_key(message, section, name):
    # a cross-key check may name its partner key first (num_tasks_sample vs num_train_tasks)
    return message.startswith((f"{section}.{name}", "policy.")) or \
        section == "algo" and message.startswith("algo.")


def _assert_one_line_error(err: ConfigError) -> None:
    message = str(err)
    assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_values, st.dictionaries(st.sampled_from(_sections + ["algoo", "extra"]),
                                          _values, max_size=3)))
def test_arbitrary_structures_give_config_or_one_line_error(data):
    try:
        config_from_dict(data)
    except ConfigError as err:
        _assert_one_line_error(err)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.sampled_from(_keys), _values)
def test_any_value_for_a_known_key_is_accepted_or_named(key, value):
    algo, section, name = key
    try:
        cfg = config_from_dict(_config(algo, section, name, value))
    except ConfigError as err:
        _assert_one_line_error(err)
        assert _names_the_key(str(err), section, name), str(err)
    else:
        assert getattr(getattr(cfg, section), name) is not None or value is None


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from([k for k in _keys if k[2] not in ("kwargs", "id", "runs_root", "name")]),
       st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, -1e300, 1e300, 10**30]))
def test_nan_negative_and_huge_numbers_are_rejected_or_in_range(key, value):
    algo, section, name = key
    with pytest.raises(ConfigError) as info:
        config_from_dict(_config(algo, section, name, value))
    _assert_one_line_error(info.value)
    assert f"{section}.{name}" in str(info.value)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_malformed_yaml_files_give_one_line_errors(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as err:
        _assert_one_line_error(err)
        assert str(path) in str(err)
