"""Conjugate gradient for symmetric positive-definite systems given only ``A @ v``."""

from __future__ import annotations

from typing import Callable

import torch


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int = 10, residual_tol: float = 1e-10
                       ) -> tuple[torch.Tensor, float]:
    """Approximately solve ``A x = b`` (Nocedal & Wright, Algorithm 5.2).

    Args:
        matvec: ``v -> A v`` for a symmetric positive-definite ``A``.
        b: right-hand side (a flat vector).
        iters: maximum iterations (TRPO uses 10).
        residual_tol: stop once the squared residual norm falls below this.

    Returns:
        ``(x, residual_norm)`` where ``residual_norm = ||b - A x||``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr.item() < residual_tol:
            break
        ap = matvec(p)
        alpha = rr / torch.dot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x.detach(), float(rr.sqrt().item())
