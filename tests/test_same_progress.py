"""docs/runs/same_progress.py: the reproduction check docs/runs/README.md quotes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs/runs/same_progress.py"


@pytest.fixture
def same_progress():
    spec = importlib.util.spec_from_file_location("same_progress", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("iteration,env_steps,wall_s,time/iteration_s,losses/qf\n"
                    + "".join(row + "\n" for row in rows))
    return path


def test_timings_and_extra_iterations_are_not_compared(same_progress, tmp_path, capsys):
    a = write(tmp_path / "a.csv", ["1,100,3.0,3.0,0.5", "2,200,6.1,3.1,0.25"])
    b = write(tmp_path / "b.csv", ["1,100,9.0,9.0,0.5", "2,200,18.2,9.2,0.25", "3,300,27,9,1"])
    assert same_progress.main([str(a), str(b)]) == 0
    assert "the first 2 iterations on 3 columns (timings excluded): 0 differing" in (
        capsys.readouterr().out)


def test_a_changed_digit_is_named(same_progress, tmp_path, capsys):
    a = write(tmp_path / "a.csv", ["1,100,3.0,3.0,0.5", "2,200,6.1,3.1,0.25"])
    b = write(tmp_path / "b.csv", ["1,100,3.0,3.0,0.5", "2,200,6.1,3.1,0.2500001"])
    assert same_progress.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "1 differing values" in out and "iteration 2, losses/qf: 0.25 vs 0.2500001" in out


def test_a_column_only_one_file_has_is_a_difference(same_progress, tmp_path, capsys):
    a = write(tmp_path / "a.csv", ["1,100,3.0,3.0,0.5"])
    b = tmp_path / "b.csv"
    b.write_text("iteration,env_steps,wall_s,losses/qf,losses/vf\n1,100,3.0,0.5,2\n")
    assert same_progress.main([str(a), str(b)]) == 1
    assert "iteration 1, losses/vf: (absent) vs 2" in capsys.readouterr().out


def test_a_file_that_is_not_progress_csv_exits_2_naming_it(same_progress, tmp_path, capsys):
    a = write(tmp_path / "a.csv", ["1,100,3.0,3.0,0.5"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SystemExit) as exit_:
        same_progress.main([str(a), str(empty)])
    assert exit_.value.code == 2 and str(empty) in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        same_progress.main([str(a), str(tmp_path / "missing.csv")])
    assert exit_.value.code == 2 and "missing.csv" in capsys.readouterr().err
