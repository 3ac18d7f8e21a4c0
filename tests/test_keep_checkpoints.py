"""``train.keep_checkpoints``: only the newest N checkpoints stay, and nothing else changes."""

from pathlib import Path

import pytest

from metarl.checkpoint import list_checkpoints, prune_checkpoints
from metarl.cli import main

from test_resume import CONFIG, SMALL, _rows


def _iterations(run_dir: Path) -> list[str]:
    return [p.name for p in list_checkpoints(run_dir / "checkpoints")]


def _touch(directory: Path, *iterations: int) -> None:
    directory.mkdir(exist_ok=True)
    for it in iterations:
        (directory / f"iter_{it:06d}.pt").write_bytes(b"x")


def test_prune_keeps_the_newest_and_never_touches_later_ones(tmp_path):
    _touch(tmp_path, 3, 6, 9, 12, 15)
    (tmp_path / "notes.txt").write_text("kept")
    # 15 is later than the one just written (12): a corrupted file a resume passed over
    deleted = prune_checkpoints(tmp_path, tmp_path / "iter_000012.pt", keep=2)
    assert [p.name for p in deleted] == ["iter_000003.pt", "iter_000006.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "iter_000009.pt", "iter_000012.pt", "iter_000015.pt", "notes.txt"]
    assert prune_checkpoints(tmp_path, tmp_path / "iter_000012.pt", keep=1) == [
        tmp_path / "iter_000009.pt"]
    assert prune_checkpoints(tmp_path, tmp_path / "iter_000012.pt", keep=0) == []
    with pytest.raises(ValueError, match="keep must be >= 0"):
        prune_checkpoints(tmp_path, tmp_path / "iter_000012.pt", keep=-1)


def test_a_pruned_run_resumes_and_equals_a_kept_one(tmp_path):
    every = ["--set", "train.checkpoint_every=1"]
    full = tmp_path / "full"
    assert main(["train", CONFIG, *SMALL, *every, "--set", "train.iterations=5",
                 "--run-dir", str(full)]) == 0
    assert len(_iterations(full)) == 5
    pruned = tmp_path / "pruned"
    assert main(["train", CONFIG, *SMALL, *every, "--set", "train.keep_checkpoints=2",
                 "--set", "train.iterations=3", "--run-dir", str(pruned)]) == 0
    assert _iterations(pruned) == ["iter_000002.pt", "iter_000003.pt"]
    assert main(["train", "--resume", str(pruned), "--set", "train.iterations=5"]) == 0
    assert _iterations(pruned) == ["iter_000004.pt", "iter_000005.pt"]
    assert _rows(pruned) == _rows(full)


def test_keep_checkpoints_must_be_a_count(tmp_path, capsys):
    assert main(["train", CONFIG, *SMALL, "--set", "train.keep_checkpoints=-1",
                 "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "train.keep_checkpoints" in err and "-1" in err
