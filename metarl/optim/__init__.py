"""Optimisation kernels: conjugate gradient and TRPO's trust-region step."""

from .conjugate_gradient import conjugate_gradient
from .trpo import (
    LineSearchResult,
    backtracking_line_search,
    flat,
    hessian_vector_product,
    trust_region_step,
)

__all__ = [
    "LineSearchResult",
    "backtracking_line_search",
    "conjugate_gradient",
    "flat",
    "hessian_vector_product",
    "trust_region_step",
]
