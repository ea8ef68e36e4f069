"""qprobe: find, explain and work around numerical defects of int8 quantized networks.

The public API, one function per pipeline stage (see DESIGN.md): load a model and its
quantization view, choose probes, build backends from spec strings, compare two backends
tensor by tensor, localize the op that introduces an error, extract a runnable cut.
Importing qprobe has no side effects.
"""

from qprobe.backends import Backend, Capabilities, Session, create_backend, known_backends
from qprobe.compare import (
    Comparison,
    ProbeEffect,
    TensorComparison,
    Tolerance,
    TolerancePolicy,
    compare_backends,
    parse_policy,
)
from qprobe.errors import (
    BackendError,
    InputError,
    ModelError,
    ProfileError,
    QprobeError,
    TargetRunError,
    UnsupportedOpError,
)
from qprobe.localize import Divergence, Localization, localize
from qprobe.metrics import LsbMetrics, StMetrics, st_metrics
from qprobe.model.extract import extract_subgraph
from qprobe.model.inputs import InputSet, load_inputs, random_inputs
from qprobe.model.loader import load_model, save_model
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import OpView, QuantIndex, build_quant_index
from qprobe.tensors import ProbePlan, QuantParams, TensorRecord, Trace

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "Capabilities",
    "Comparison",
    "Divergence",
    "InputError",
    "InputSet",
    "Localization",
    "LsbMetrics",
    "ModelError",
    "OpView",
    "ProbeEffect",
    "ProbePlan",
    "ProfileError",
    "QprobeError",
    "QuantIndex",
    "QuantParams",
    "Session",
    "StMetrics",
    "TargetRunError",
    "TensorComparison",
    "TensorRecord",
    "Tolerance",
    "TolerancePolicy",
    "Trace",
    "UnsupportedOpError",
    "__version__",
    "apply_probe_plan",
    "build_quant_index",
    "compare_backends",
    "create_backend",
    "extract_subgraph",
    "known_backends",
    "load_inputs",
    "load_model",
    "localize",
    "parse_policy",
    "plan_probes",
    "random_inputs",
    "save_model",
    "st_metrics",
]
