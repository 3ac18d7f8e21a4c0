"""Shared by the tests that drive the `metarl` command line in subprocesses."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAV_CONFIG = ROOT / "configs" / "maml_trpo" / "navigation_2d.yaml"


def metarl(*args, cwd):
    """Run ``python -m metarl ARGS`` in ``cwd``; returns the completed process."""
    return subprocess.run([sys.executable, "-m", "metarl", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def two_plus_two_equals_four(config, tmp_path, overrides):
    """Train ``config`` 4 iterations, and 2 then resumed to 4, in-process; returns both run
    directories and their final ``algo_state`` after asserting they are bit-identical
    (the policy and every optimiser tensor)."""
    import torch

    from metarl.checkpoint import load_checkpoint
    from metarl.cli import main

    full, part = tmp_path / "full", tmp_path / "part"
    for run, iterations in ((full, 4), (part, 2)):
        assert main(["train", str(config), *overrides, "--set", f"train.iterations={iterations}",
                     "--run-dir", str(run)]) == 0
    assert main(["train", "--resume", str(part), "--set", "train.iterations=4"]) == 0
    a, b = (load_checkpoint(run / "checkpoints" / "iter_000004.pt")["algo_state"]
            for run in (full, part))
    for name, tensor in a["policy"].items():
        assert torch.equal(b["policy"][name], tensor), name
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key, state in a["optimizer"]["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(b["optimizer"]["state"][key][field]),
                               torch.as_tensor(value)), (key, field)
    return full, part, a, b
