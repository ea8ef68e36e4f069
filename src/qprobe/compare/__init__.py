"""Compare two backends tensor by tensor: alignment, tolerance policy, Comparison."""

from qprobe.compare.policy import Tolerance, TolerancePolicy, parse_policy
from qprobe.compare.result import Comparison, ProbeEffect, TensorComparison
from qprobe.compare.run import compare_backends

__all__ = [
    "Comparison",
    "ProbeEffect",
    "TensorComparison",
    "Tolerance",
    "TolerancePolicy",
    "compare_backends",
    "parse_policy",
]
