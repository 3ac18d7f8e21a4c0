"""FLOP counting and the matmul ceiling that ``metarl bench maml`` reports.

:class:`MatmulFlops` counts the matrix-product FLOPs every dispatched ``mm``/``bmm``/
``addmm``/``baddbmm`` performs (``2 m n k`` from the operands' shapes), through forward,
backward and double-backward passes alike: what a meta-update's forward, backward and
Hessian-vector passes cost. Elementwise work is not counted: at these shapes the matrix
products are most of the FLOPs, and the ceiling below is a matrix-product ceiling.

:func:`matmul_ceiling` times those products on the update's own shapes (each policy
layer, per task, in the three orientations forward and backward use) and reports their
FLOP-weighted throughput: the rate the update would reach if it did nothing but them.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
_PRODUCTS = {_aten.mm: 0, _aten.bmm: 0, _aten.addmm: 1, _aten.baddbmm: 1}


class MatmulFlops(TorchDispatchMode):
    """``with MatmulFlops() as counter: ...``; then ``counter.flops``."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        first = _PRODUCTS.get(func._overloadpacket)
        if first is not None:  # (m x k) @ (k x n), batched or not: 2 m k n
            a, b = args[first], args[first + 1]
            self.flops += 2 * a.numel() * b.shape[-1]
        return out


def matmul_ceiling(layers: Sequence[tuple[int, int]], tasks: int, rows: int,
                   device: torch.device, dtype: torch.dtype = torch.float32,
                   repeats: int = 5) -> float:
    """GFLOP/s of the batched matrix products of an MLP with ``layers`` (``(in, out)``
    widths) over ``tasks`` tasks of ``rows`` samples each: forward ``[T, N, in] @ [T, in,
    out]``, the input gradient ``[T, N, out] @ [T, out, in]`` and the weight gradient ``[T,
    in, N] @ [T, N, out]``, each timed at its best of ``repeats``, FLOP-weighted."""
    flops = seconds = 0.0
    for n_in, n_out in layers:
        x = torch.randn(tasks, rows, n_in, device=device, dtype=dtype)
        w = torch.randn(tasks, n_in, n_out, device=device, dtype=dtype)
        g = torch.randn(tasks, rows, n_out, device=device, dtype=dtype)
        for a, b in ((x, w), (g, w.transpose(1, 2)), (x.transpose(1, 2), g)):
            best = float("inf")
            for _ in range(repeats + 1):  # the first call warms up
                sync(device)
                start = time.perf_counter()
                torch.bmm(a, b)
                sync(device)
                best = min(best, time.perf_counter() - start)
            flops += 2 * a.numel() * b.shape[-1]
            seconds += best
    return flops / seconds / 1e9


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op on the CPU), so a timer sees all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
