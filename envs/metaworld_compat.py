"""Meta-World 3.1.1's Sawyer envs on MuJoCo 4: the one fix they need, applied to their classes only.

Meta-World 3.1.1 pins ``mujoco==3.3.0``. On MuJoCo 4.0.0 its envs fail in exactly one place:
``SawyerMocapBase.reset_mocap_welds`` (called from ``__init__``) assigns an 11-number row to
each weld's ``model.eq_data`` row, which is now 12 wide, so numpy refuses the broadcast.

What changed in MuJoCo (its ``doc/changelog.rst``, version 4.0.0, "mj_setConst now computes
only quantities derived from other fields", commit abddec5b9; ``mjmodel.h``:
``#define mjNEQDATA 12``, was 11 in 3.3.0): for a body-based weld whose MJCF has no
``relpose``, ``mj_setConst`` now recomputes the relative pose (``eq_data[3:10]``) from
``qpos0``; the compiler marks such welds with a nonzero ``eq_data[11]``, and "zero
``eq_data[11]`` before calling mj_setConst to set the relative pose of such a weld directly".

Why the fix is right: Meta-World's row sets anchor 0 (``[0:3]``), relative position 0
(``[3:6]``), relative orientation quaternion ``(-1, 0, 0, 0)``, the identity rotation
(``[6:10]``), and torque scale 5 (``[10]``): it sets the weld's relative pose *directly*.
MuJoCo 4 keeps the same meaning for columns 0-10, so we write Meta-World's 11 numbers there
unchanged and 0 in column 11, the value that declares the pose explicit. Padding with the
compiler's 1 instead would let any later ``mj_setConst`` replace Meta-World's zero offset
between the mocap body and the hand with their offset at ``qpos0``. On MuJoCo 3.3.0 (11
columns) :func:`reset_mocap_welds` does exactly what Meta-World does.

The fix is a subclass per Meta-World env class (:func:`compatible_class`) that overrides
``reset_mocap_welds``; nothing in ``mujoco`` or ``metaworld`` is modified, so other users of
either in the same process see them unchanged. Whether the physics behaves as on MuJoCo
3.3.0 is a separate question, measured in docs/metaworld.md.
"""

from __future__ import annotations

import functools
from typing import Any

import mujoco
import numpy as np

# Meta-World 3.1.1's weld row (sawyer_xyz_env.py, SawyerMocapBase.reset_mocap_welds):
# anchor xyz, relative position xyz, relative quaternion (w, x, y, z), torque scale.
METAWORLD_WELD_ROW = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0)
# MuJoCo >= 4: column 11 flags welds whose relative pose mj_setConst recomputes; 0 = explicit.
EXPLICIT_RELPOSE = 0.0


def weld_row(width: int) -> np.ndarray:
    """Meta-World's weld parameters as one ``eq_data`` row of ``width`` columns (11 or 12)."""
    if width < len(METAWORLD_WELD_ROW):
        raise ValueError(f"eq_data rows are {width} wide; Meta-World's weld needs "
                         f"{len(METAWORLD_WELD_ROW)}")
    row = np.full(width, EXPLICIT_RELPOSE)
    row[:len(METAWORLD_WELD_ROW)] = METAWORLD_WELD_ROW
    return row


def reset_mocap_welds(model: mujoco.MjModel) -> None:
    """Set every weld of a model with mocap bodies to Meta-World's explicit zero relative pose."""
    if model.nmocap == 0 or model.neq == 0:
        return
    welds = model.eq_type == mujoco.mjtEq.mjEQ_WELD
    model.eq_data[welds] = weld_row(model.eq_data.shape[1])


class _WeldFix:
    """Mixin placed before a Meta-World env class: MuJoCo-4-safe ``reset_mocap_welds``."""

    model: mujoco.MjModel

    def reset_mocap_welds(self) -> None:
        reset_mocap_welds(self.model)


@functools.cache
def compatible_class(env_cls: type) -> type:
    """``env_cls`` (a Meta-World ``SawyerXYZEnv`` subclass) with the MuJoCo 4 weld fix.

    The subclass keeps the original's name, so Meta-World's ``task_name`` and its own
    ``isinstance`` check in ``set_task`` still hold. Cached: one subclass per class.
    """
    if not callable(getattr(env_cls, "reset_mocap_welds", None)):
        raise TypeError(f"{env_cls.__name__} is not a Meta-World Sawyer env "
                        "(it has no reset_mocap_welds)")
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": env_cls.__qualname__,
                                 "__doc__": env_cls.__doc__}
    return type(env_cls.__name__, (_WeldFix, env_cls), namespace)
