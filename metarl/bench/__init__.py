"""Benchmarks behind ``metarl bench``: each measures the alternative in the same run."""

from .sampler import SamplerBenchResult, bench_sampler

__all__ = ["SamplerBenchResult", "bench_sampler"]
