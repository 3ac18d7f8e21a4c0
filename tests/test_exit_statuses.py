"""Every exit status of the `metarl` command means one thing (docs/reliability.md, "Exit statuses").

Statuses 0, 2, 3, 130 and 143 are also checked where their behaviour is tested
(test_cli, test_config, test_reliability); here are the others, and the signal
handler's states one by one. No test depends on timing: signals are sent after the
process printed that it reached the state under test.
"""

import signal
import subprocess
import sys
import textwrap

import pytest

from metarl.cli import main
from metarl.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_NONFINITE_UPDATES,
    EXIT_NUMERICAL,
    exit_after_signal,
)
from metarl.interrupts import Interrupted, StopRequests
from cli_helpers import NAV_CONFIG

SMALL = ["--set", "algo.meta_batch_size=2", "--set", "sampler.episodes_per_task=2",
         "--set", "env.horizon=10", "--set", "logging.tensorboard=false", "--device", "cpu"]


def test_statuses_are_distinct():
    statuses = [0, EXIT_BUG, EXIT_BAD_INPUT, EXIT_NONFINITE_UPDATES, EXIT_INTERRUPTED,
                EXIT_NUMERICAL, exit_after_signal(signal.SIGINT), exit_after_signal(signal.SIGTERM)]
    assert statuses == [0, 1, 2, 3, 4, 5, 130, 143]


# -- the handler's states, in-process (signal.raise_signal runs the handler before it returns)

def test_deferred_first_signal_is_recorded_second_raises_later_ones_are_absorbed():
    stop = StopRequests()
    before = signal.getsignal(signal.SIGINT)
    with stop.deferred():
        signal.raise_signal(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and not stop.stopped_at_once
        with pytest.raises(Interrupted, match="second SIGINT: stopping at once"):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # while unwinding: absorbed, no second raise
        assert stop.count == 3
    assert stop.exit_status(130) == EXIT_INTERRUPTED
    assert signal.getsignal(signal.SIGINT) is before  # a library caller's handler is back


def test_outside_the_training_loop_the_first_signal_stops_at_once():
    stop = StopRequests()
    with stop.deferred():
        pass  # installs (temporarily) and leaves the deferring state
    stop._install_temporarily()
    try:
        with pytest.raises(Interrupted, match="^SIGTERM: stopping at once"):
            signal.raise_signal(signal.SIGTERM)
    finally:
        stop._restore()
    assert stop.exit_status(0) == EXIT_INTERRUPTED


@pytest.mark.parametrize("signals, status", [(1, 0), (2, EXIT_INTERRUPTED)])
def test_after_finish_a_lone_signal_is_ignored_a_second_exits_4(tmp_path, signals, status):
    script = textwrap.dedent(f"""
        import signal
        from metarl.interrupts import REQUESTS
        REQUESTS.install()
        REQUESTS.finish()
        for _ in range({signals}):
            signal.raise_signal(signal.SIGINT)
        print("still running", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == status, proc.stderr
    assert ("still running" in proc.stdout) == (signals == 1)


# -- the command line ----------------------------------------------------------------------------

def test_first_signal_stops_a_command_other_than_train_with_4(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "metarl", "bench", "maml", "--config", str(NAV_CONFIG),
         "--iterations", "100000", "--warmup", "0", *SMALL],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("iteration 1:"):
            break
    else:
        raise AssertionError(proc.stderr.read())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "interrupted (SIGTERM: stopping at once)" in err and "Traceback" not in err


def test_a_bug_in_user_code_is_status_1_with_its_traceback(tmp_path):
    (tmp_path / "buggy_family.py").write_text(textwrap.dedent("""
        from metarl.envs import register_task_family
        from metarl.envs.navigation import Navigation2DBatchEnv

        class BuggyBatchEnv(Navigation2DBatchEnv):
            def step(self, actions):
                raise RuntimeError("a bug in the user's env")

        register_task_family("Buggy-v0", env_entry_point="metarl.envs.navigation:Navigation2DEnv",
                             batch_entry_point=BuggyBatchEnv, max_episode_steps=10)
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "metarl", "train", str(NAV_CONFIG), *SMALL,
         "--set", "env.id=buggy_family:Buggy-v0", "--set", "train.iterations=1",
         "--run-dir", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_BUG
    assert "Traceback" in proc.stderr and "RuntimeError: a bug in the user's env" in proc.stderr


def test_command_line_mistakes_are_status_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--no-such-flag"])
    assert info.value.code == EXIT_BAD_INPUT
    assert main(["train", str(NAV_CONFIG), "--set", "algo.max_kll=0.1"]) == EXIT_BAD_INPUT
    assert "did you mean 'max_kl'" in capsys.readouterr().err


def test_non_finite_adaptation_in_eval_is_status_5(tmp_path, monkeypatch, capsys):
    from metarl.algos import MAMLTRPO

    run = tmp_path / "run"
    assert main(["train", str(NAV_CONFIG), *SMALL, "--set", "train.iterations=1",
                 "--run-dir", str(run)]) == 0
    original = MAMLTRPO.advantages
    monkeypatch.setattr(MAMLTRPO, "advantages",
                        lambda self, batch: original(self, batch) * float("nan"))
    capsys.readouterr()
    assert main(["eval", str(run), "--tasks", "2", "--grad-steps", "1"]) == EXIT_NUMERICAL
    err = capsys.readouterr().err
    assert "metarl eval: error: adaptation failed" in err and "non-finite" in err
