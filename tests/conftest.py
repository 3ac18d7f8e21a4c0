"""Shared test configuration: the ``cuda`` marker.

Tests marked ``cuda`` run only with ``METARL_TEST_DEVICE`` set: ``cuda`` on a machine with a
GPU (``../shared/gpu/check.sh`` does that), or ``cpu`` to run their logic on a CPU machine.
Without it, as in CI, they are skipped and ``-ra`` says why.
"""

import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    wanted = os.environ.get("METARL_TEST_DEVICE")
    if wanted is None:
        reason = "CUDA test: run with METARL_TEST_DEVICE=cuda on a machine with a GPU"
    elif wanted == "cuda" and not torch.cuda.is_available():
        reason = "METARL_TEST_DEVICE=cuda, but torch sees no CUDA device"
    elif wanted not in ("cuda", "cpu"):
        reason = f"METARL_TEST_DEVICE={wanted!r}: expected cuda or cpu"
    else:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
