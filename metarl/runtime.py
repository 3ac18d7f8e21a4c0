"""Process-level performance settings applied by the ``metarl`` command line."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from pathlib import Path

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory_in_heap(threshold_bytes: int = 1 << 30) -> bool:
    """Stop glibc from handing large freed blocks back to the kernel.

    A meta-batch's activations are tens of MB per tensor. By default glibc serves
    every block above 32 MB with a fresh ``mmap`` and unmaps it on free, so each
    new tensor page-faults on all of its pages; on the 2-core development machine
    that made the MAML meta-update 1.8x slower (``metarl bench maml``). Raising
    the mmap and trim thresholds lets freed blocks be reused. Peak memory is
    unchanged; memory freed after the peak is kept by the process.

    Returns whether the setting was applied (only on Linux with glibc).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, threshold_bytes)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * threshold_bytes - 1))
    return _applied


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota
    (containers and Slurm jobs often see every core of the host but own a few)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota
    return max(1, cpus)


def resolve_threads(setting: int | str, preferred: int | None = None) -> int:
    """Torch threads for ``train.threads``: a number as given; ``auto`` = the algorithm's
    ``preferred`` count (its registry entry's ``torch_threads``; PEARL's is one) or, when
    it has none, :func:`usable_cpus`."""
    if setting != "auto":
        return int(setting)
    return preferred if preferred is not None else usable_cpus()


def apply_threads(setting: int | str, preferred: int | None = None) -> int:
    """Set torch's intra-op (OpenMP) thread count from ``train.threads``; returns it."""
    import torch

    threads = resolve_threads(setting, preferred)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def prefer_sleeping_openmp_threads() -> None:
    """Make idle OpenMP threads sleep instead of spinning (unless the user chose).

    libgomp's idle threads busy-wait for the next parallel region by default; on a
    machine with another busy process they take CPU time from it and from metarl's
    own threads, which made a PEARL iteration 13x slower next to one other process.
    Read once, when the OpenMP runtime starts: call before importing torch.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
