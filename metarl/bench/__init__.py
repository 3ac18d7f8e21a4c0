"""Benchmarks behind ``metarl bench``: each measures the alternative in the same run."""

from .maml import MamlBenchResult, bench_maml
from .sampler import SamplerBenchResult, bench_sampler

__all__ = ["MamlBenchResult", "SamplerBenchResult", "bench_maml", "bench_sampler"]
