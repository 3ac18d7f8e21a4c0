"""Atomic, safely-loadable checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to
disk and renamed over the target, so a crash never leaves a half-written file
under a checkpoint's name. Loading uses ``torch.load(weights_only=True)``:
tensors and plain Python containers only, never arbitrary pickled code.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import BadInputError

FORMAT = "metarl-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^iter_(\d{6,})\.pt$")


class CheckpointError(BadInputError, RuntimeError):
    """A checkpoint is missing, unreadable or not one of ours."""


def checkpoint_path(checkpoint_dir: Path, iteration: int) -> Path:
    return Path(checkpoint_dir) / f"iter_{iteration:06d}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (adds format markers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and sanity-check a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(f"checkpoint {path} contains objects other than tensors and "
                                  "plain containers; refusing to unpickle them "
                                  "(metarl loads checkpoints with weights_only=True)") from None
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated ({err})") from None
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a metarl checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {state.get('format_version')}, "
                              f"this metarl reads version {FORMAT_VERSION}")
    return state


def list_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """Checkpoints in ``checkpoint_dir``, oldest iteration first."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in checkpoint_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(checkpoint_dir: Path, newest: Path, keep: int) -> list[Path]:
    """Delete the checkpoints older than ``newest`` (just written) beyond the ``keep``
    newest (``newest`` included); ``keep=0`` keeps all. Files of later iterations are
    never touched: a resume that passed over a corrupted later checkpoint overwrites it
    when it gets there. Returns the deleted paths."""
    if keep < 0:
        raise ValueError(f"prune_checkpoints: keep must be >= 0, got {keep}")
    if keep == 0:
        return []
    current = checkpoint_iteration(newest)
    older = [p for p in list_checkpoints(checkpoint_dir) if checkpoint_iteration(p) < current]
    doomed = older[:max(0, len(older) - (keep - 1))]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def checkpoint_iteration(path: Path) -> int:
    """The iteration in a checkpoint's file name (``iter_000012.pt`` -> 12)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise CheckpointError(f"{path} is not named like a checkpoint (iter_NNNNNN.pt)")
    return int(match.group(1))


def _say(message: str) -> None:
    print(message, flush=True)


def first_loadable(candidates: Sequence[Path], what: str,
                   report: Callable[[str], None] = _say
                   ) -> tuple[Path, dict[str, Any], list[Path]]:
    """The first of ``candidates`` (in the caller's order of preference) that loads, its
    state and the checkpoints skipped before it; each skipped one is reported by path.

    Shared by ``metarl train --resume`` and ``metarl eval`` so that both pass over a
    truncated or corrupted checkpoint the same way. ``what`` prefixes the error raised
    when none loads (e.g. ``--resume``).
    """
    skipped: list[Path] = []
    for path in candidates:
        try:
            return path, load_checkpoint(path), skipped
        except CheckpointError as err:
            report(f"metarl: skipping unusable checkpoint: {err}")
            skipped.append(path)
    if not candidates:
        raise CheckpointError(f"{what}: no checkpoints to load")
    raise CheckpointError(f"{what}: none of the {len(candidates)} checkpoints in "
                          f"{Path(candidates[0]).parent} could be loaded")


def latest_loadable(checkpoint_dir: Path, what: str, report: Callable[[str], None] = _say
                    ) -> tuple[Path, dict[str, Any], list[Path]]:
    """The newest checkpoint in ``checkpoint_dir`` that loads (see :func:`first_loadable`)."""
    found = list_checkpoints(checkpoint_dir)
    if not found:
        raise CheckpointError(f"{what}: no checkpoints (iter_*.pt) in {checkpoint_dir}")
    return first_loadable(list(reversed(found)), what, report)
