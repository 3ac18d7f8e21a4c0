"""Atomic checkpoint writes and clear errors on bad files."""

import pytest
import torch

from metarl.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_loadable,
    load_checkpoint,
    save_checkpoint,
)


def test_roundtrip_and_latest(tmp_path):
    for it in (2, 10, 4):
        save_checkpoint(checkpoint_path(tmp_path, it), {"iteration": it, "w": torch.ones(3) * it})
    latest, _, skipped = latest_loadable(tmp_path, "test")
    assert skipped == []
    assert latest.name == "iter_000010.pt"
    state = load_checkpoint(latest)
    assert state["iteration"] == 10 and torch.equal(state["w"], torch.full((3,), 10.0))
    assert not list(tmp_path.glob("*.tmp")), "no temporary files left behind"


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = checkpoint_path(tmp_path, 1)
    save_checkpoint(path, {"iteration": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, {"iteration": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["iteration"] == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_checkpoint_is_named(tmp_path):
    path = save_checkpoint(checkpoint_path(tmp_path, 3), {"w": torch.randn(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"iter_000003\.pt is corrupted or truncated"):
        load_checkpoint(path)


def test_foreign_or_unsafe_files_are_refused(tmp_path):
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a metarl checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"format": "metarl-checkpoint", "format_version": 1, "obj": _Custom()},
               tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="no checkpoints"):
        latest_loadable(tmp_path / "empty", "test")


class _Custom:
    pass
