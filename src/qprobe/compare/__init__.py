"""Compare two backends tensor by tensor: Traces, mergeable accumulators, policy, Comparison.

The two seams of the pipeline (DESIGN.md): ``run_traces(backend, model, plan, inputs)`` is the
one place that opens a backend and loops over batches; ``compare_traces(ref, target, policy)``
is a pure comparison of two streams of Traces. ``compare_backends`` composes them.
"""

from qprobe.compare.accumulate import ComparisonAccumulator, TensorAccumulator
from qprobe.compare.compare import Streams, accumulate, compare_saved, compare_traces, finish
from qprobe.compare.inputs import InputRequest, resolve_inputs
from qprobe.compare.policy import Tolerance, TolerancePolicy, parse_policy
from qprobe.compare.result import Comparison, OutputEffect, ProbeEffect, TensorComparison
from qprobe.compare.run import compare_backends, restrict_plan
from qprobe.compare.traces import Capture, gather, outputs_plan, run_traces, tensor_values

__all__ = [
    "Capture",
    "Comparison",
    "InputRequest",
    "ComparisonAccumulator",
    "OutputEffect",
    "ProbeEffect",
    "Streams",
    "TensorAccumulator",
    "TensorComparison",
    "Tolerance",
    "TolerancePolicy",
    "accumulate",
    "compare_backends",
    "compare_saved",
    "compare_traces",
    "finish",
    "gather",
    "outputs_plan",
    "parse_policy",
    "resolve_inputs",
    "restrict_plan",
    "run_traces",
    "tensor_values",
]
