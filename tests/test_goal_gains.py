"""docs/runs/goal_gains.py: the numbers results.md quotes from it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "docs/runs/goal_gains.py"


@pytest.fixture
def goal_gains(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when run as a script: split_by_task
    spec = importlib.util.spec_from_file_location("goal_gains", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spearman_against_the_rank_difference_formula(goal_gains):
    # ranks x: 0 3 1 2, y: 0 2 3 1; sum d^2 = 6, rho = 1 - 6 * 6 / (4 * (16 - 1)) = 0.4
    rho, _ = goal_gains.spearman(np.array([0.1, 0.4, 0.2, 0.3]), np.array([1.0, 3.0, 4.0, 2.0]))
    assert rho == pytest.approx(0.4)


def test_spearman_permutation_p_value_matches_the_exact_one(goal_gains):
    # n = 4: |rho| = 1 for 2 of the 24 orderings, so p = 1/12
    rho, p = goal_gains.spearman(np.arange(4.0), -np.arange(4.0), draws=20_000)
    assert rho == pytest.approx(-1.0)
    assert p == pytest.approx(1 / 12, abs=0.01)


def _eval_dir(path: Path, goals: list[list[float]], returns: dict[int, list[float]]) -> Path:
    path.mkdir()
    (path / "eval_info.yaml").write_text(yaml.safe_dump({"held_out": {"task_values": goals}}))
    lines = ["method,step,task,return"]
    lines += [f"pearl,{k},{t},{r}" for k, row in returns.items() for t, r in enumerate(row)]
    (path / "task_returns.csv").write_text("\n".join(lines) + "\n")
    return path


def test_pools_seeds_per_goal_before_pairing(goal_gains, tmp_path, monkeypatch, capsys):
    goals = [[0.0, 0.5], [2.5, 0.0], [0.0, -2.0]]
    a = _eval_dir(tmp_path / "s0", goals, {0: [-100, -200, -300], 1: [-90, -200, -330]})
    b = _eval_dir(tmp_path / "s1", goals, {0: [-110, -180, -300], 1: [-80, -160, -290]})
    monkeypatch.setattr(sys, "argv", ["goal_gains.py", str(a), str(b)])
    goal_gains.main()
    out = capsys.readouterr().out
    # per-goal means: k0 -105, -190, -300; k1 -85, -180, -310; differences +20, +10, -10
    se = np.std([20.0, 10.0, -10.0], ddof=1) / np.sqrt(3)
    assert f"minus k=0 +6.7 ± {se:.1f}, higher on 2/3" in out
    assert "2 evaluations, 3 held-out goals" in out


def test_refuses_evaluations_of_different_goals(goal_gains, tmp_path, monkeypatch):
    a = _eval_dir(tmp_path / "s0", [[0.0, 1.0]], {0: [-1.0], 1: [0.0]})
    b = _eval_dir(tmp_path / "s1", [[1.0, 0.0]], {0: [-1.0], 1: [0.0]})
    monkeypatch.setattr(sys, "argv", ["goal_gains.py", str(a), str(b)])
    with pytest.raises(SystemExit, match="held-out goals differ"):
        goal_gains.main()


def test_names_a_directory_that_is_not_an_evaluation(goal_gains, tmp_path, monkeypatch):
    stray = tmp_path / "eval.log"
    stray.write_text("not an evaluation\n")
    monkeypatch.setattr(sys, "argv", ["goal_gains.py", str(stray)])
    with pytest.raises(SystemExit, match="eval.log: not a `metarl eval` output directory"):
        goal_gains.main()
