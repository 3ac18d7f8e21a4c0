"""Importing a user's module named in a config (``env.id: "my_module:Family-v0"``,
``algo.name: "my_module:my_algo"``): the module registers what the config names."""

from __future__ import annotations

import importlib
import os
import sys


def import_user_module(module: str) -> str | None:
    """Import ``module``, searching the current directory too (as ``python -m`` would: a
    user's module next to their config); returns why it cannot be imported, or None."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module.split(".")[0] or os.getcwd() in sys.path:
            return f"cannot import module {module!r}: {err}"
        sys.path.append(os.getcwd())
        return import_user_module(module)
    return None


def import_prefix(text: str) -> tuple[str, str | None]:
    """``"module:name"`` -> imports ``module`` and returns ``(name, None)``, or ``(name, why
    the module cannot be imported)``; text without a colon is returned as it is."""
    module, sep, rest = text.rpartition(":")
    if not sep:
        return text, None
    return rest, import_user_module(module)
