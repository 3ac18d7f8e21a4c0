"""PEARL's guard against non-finite learner state: a CPU snapshot of the last finite
state (networks, target network, both optimisers) and the rollback to it."""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch

from ...errors import NumericalError


class NonFiniteStateError(NumericalError, FloatingPointError):
    """The learner state (networks, target network or optimiser state) holds NaN/Inf and no
    finite snapshot exists to roll back to."""


def _to_cpu(obj: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def _non_finite(named: Sequence[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or Inf (one sync per device)."""
    groups: dict[torch.device, list[int]] = {}
    for i, (_, t) in enumerate(named):
        if t.is_floating_point() or t.is_complex():
            groups.setdefault(t.device, []).append(i)
    bad: set[int] = set()
    for indices in groups.values():
        flags = torch.stack([torch.isfinite(named[i][1]).all() for i in indices]).tolist()
        bad.update(i for i, ok in zip(indices, flags) if not ok)
    return [named[i][0] for i in sorted(bad)]


def _some(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 4 more``: a bounded list for one-line messages."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more



class Rollback:
    """Mixed into :class:`~metarl.algos.pearl.learner.PEARL`: snapshot and restore of the
    learner state. Uses the learner's ``nets``, both optimisers and ``_snapshot``."""

    nets: Any
    critic_optimizer: torch.optim.Optimizer
    actor_optimizer: torch.optim.Optimizer
    _snapshot: dict[str, Any] | None

    def _learner_state(self) -> dict[str, Any]:
        """CPU copy of what a rollback restores: every network (the target V included) and
        both optimisers' states. On the CPU so that a snapshot costs no accelerator memory."""
        return _to_cpu({"nets": self.nets.state_dict(),
                        "critic": self.critic_optimizer.state_dict(),
                        "actor": self.actor_optimizer.state_dict()})

    def _load_learner_state(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.critic_optimizer.load_state_dict(state["critic"])
        self.actor_optimizer.load_state_dict(state["actor"])

    def _learner_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every tensor :meth:`_learner_state` saves, named for messages (optimiser state by
        the parameter it belongs to, e.g. ``critic_optimizer[qf1.net.0.weight].exp_avg``)."""
        names = {id(p): n for n, p in self.nets.named_parameters()}
        named = [(f"networks.{k}", v) for k, v in self.nets.state_dict().items()]
        for label, optimizer in (("critic_optimizer", self.critic_optimizer),
                                 ("actor_optimizer", self.actor_optimizer)):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    named += [(f"{label}[{names.get(id(p), '?')}].{k}", v)
                              for k, v in optimizer.state.get(p, {}).items()
                              if isinstance(v, torch.Tensor)]
        return named

    def _restore_if_non_finite(self) -> str | None:
        """Before an iteration: keep a first snapshot if none exists; if the learner already
        holds NaN/Inf (it was set from outside), restore the last finite snapshot and say so.
        Raises :class:`NonFiniteStateError` when there is nothing finite to restore."""
        bad = _non_finite(self._learner_tensors())
        if not bad:
            if self._snapshot is None:
                self._snapshot = self._learner_state()
            return None
        if self._snapshot is None:
            raise NonFiniteStateError(
                f"PEARL: the learner state holds NaN/Inf before this iteration ({_some(bad)}) "
                f"and no finite snapshot exists to roll back to (none is kept across a restart "
                f"or load_state_dict); resume from an earlier checkpoint whose state is finite, "
                f"or start the run afresh")
        self._load_learner_state(self._snapshot)
        return (f"non-finite state before the iteration ({_some(bad)}); rolled back to the "
                f"last finite state and skipped this iteration's gradient steps")
