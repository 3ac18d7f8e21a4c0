"""Process-level performance settings applied by the ``metarl`` command line."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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
