"""Benchmarks behind ``metarl bench``: each measures the alternative in the same run."""

from .fisher import FisherPoint, bench_fisher
from .maml import MamlBenchResult, bench_maml
from .pearl import PearlBenchResult, bench_pearl
from .sampler import SamplerBenchResult, bench_sampler

__all__ = ["FisherPoint", "MamlBenchResult", "PearlBenchResult", "SamplerBenchResult", "bench_fisher", "bench_maml",
           "bench_pearl", "bench_sampler"]
