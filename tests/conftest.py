"""Shared test configuration: the ``cuda`` marker.

Tests marked ``cuda`` run only with ``METARL_TEST_DEVICE`` set: ``cuda`` on a machine with a
GPU (``../shared/gpu/check.sh`` does that), or ``cpu`` to run their logic on a CPU machine.
Without it, as in CI, they are skipped and ``-ra`` says why.

The suite runs on two pytest-xdist workers (``-n 2`` in pyproject's ``addopts``). Each worker
gives torch one thread, and idle OpenMP threads sleep, so two workers do not spin against each
other on a 2-core machine; ``pytest -n 0`` runs it in one process.
"""

import os

# Read when the OpenMP runtime starts, so before torch is imported (as metarl's CLI does);
# the `metarl` subprocesses the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


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
