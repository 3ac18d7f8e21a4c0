"""Trust-region pieces of TRPO (Schulman et al. 2015): Fisher-vector products,
step scaling and the backtracking line search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def hessian_vector_product(grad: Sequence[torch.Tensor], params: Sequence[torch.Tensor],
                           damping: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (H + damping I) v`` by double backprop, where ``grad = dF/dparams``
    was computed with ``create_graph=True``. The graph is kept so the returned
    function can be called once per conjugate-gradient iteration.
    """
    flat_grad = flat(grad)

    def product(vector: torch.Tensor) -> torch.Tensor:
        grad_dot_v = torch.dot(flat_grad, vector)
        hv = torch.autograd.grad(grad_dot_v, params, retain_graph=True)
        return flat(hv).detach() + damping * vector

    return product


def trust_region_step(direction: torch.Tensor, hvp: Callable[[torch.Tensor], torch.Tensor],
                      max_kl: float) -> torch.Tensor:
    """Scale ``direction`` so the quadratic KL model ``0.5 s^T H s`` equals ``max_kl``."""
    shs = 0.5 * torch.dot(direction, hvp(direction))
    if not torch.isfinite(shs) or shs.item() <= 0:
        raise FloatingPointError(f"trust-region curvature s^T H s is {2 * shs.item()!r}; "
                                 "the Fisher-vector product is not positive definite")
    return direction * torch.sqrt(max_kl / shs)


@dataclass
class LineSearchResult:
    accepted: bool
    steps: int  # trials evaluated
    step_fraction: float  # fraction of the full step taken (0 when rejected)
    loss: float
    kl: float


def backtracking_line_search(evaluate: Callable[[float], tuple[float, float]], loss_before: float,
                             max_kl: float, max_steps: int = 15, ratio: float = 0.8
                             ) -> LineSearchResult:
    """Shrink the step until the surrogate loss improves and KL stays within ``max_kl``.

    ``evaluate(fraction)`` applies ``fraction`` of the full step and returns
    ``(loss, kl)`` there. If no trial is accepted the caller must restore the
    parameters (``evaluate(0.0)`` is not called here).
    """
    fraction = 1.0
    loss, kl = float("nan"), float("nan")
    for step in range(1, max_steps + 1):
        loss, kl = evaluate(fraction)
        if loss < loss_before and kl <= max_kl:
            return LineSearchResult(True, step, fraction, loss, kl)
        fraction *= ratio
    return LineSearchResult(False, max_steps, 0.0, loss, kl)
