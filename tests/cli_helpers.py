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
