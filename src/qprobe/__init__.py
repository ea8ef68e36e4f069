"""qprobe: find, explain and work around numerical defects of int8 quantized networks.

The public API, one function per pipeline stage (see DESIGN.md): load a model and its
quantization view, choose probes, build backends from spec strings, run them into Traces,
compare Traces tensor by tensor, localize the op that introduces an error, extract a runnable
cut. Importing qprobe has no side effects and is cheap: each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API: dict[str, str] = {
    "BackendBase": "qprobe.backends",
    "InputRequest": "qprobe.compare",
    "SchemaError": "qprobe.serde",
    "compare_saved": "qprobe.compare",
    "compare_traces": "qprobe.compare",
    "resolve_inputs": "qprobe.compare",
    "run_traces": "qprobe.compare",
    "Backend": "qprobe.backends",
    "BackendError": "qprobe.errors",
    "Capabilities": "qprobe.backends",
    "Comparison": "qprobe.compare",
    "Divergence": "qprobe.localize",
    "InputError": "qprobe.errors",
    "InputSet": "qprobe.model.inputs",
    "Localization": "qprobe.localize",
    "LsbMetrics": "qprobe.metrics",
    "ModelError": "qprobe.errors",
    "OpView": "qprobe.model.quant",
    "ProbeEffect": "qprobe.compare",
    "ProbePlan": "qprobe.tensors",
    "ProfileError": "qprobe.errors",
    "QprobeError": "qprobe.errors",
    "QuantIndex": "qprobe.model.quant",
    "QuantParams": "qprobe.tensors",
    "Session": "qprobe.backends",
    "StMetrics": "qprobe.metrics",
    "TargetRunError": "qprobe.errors",
    "TensorComparison": "qprobe.compare",
    "TensorRecord": "qprobe.tensors",
    "Tolerance": "qprobe.compare",
    "TolerancePolicy": "qprobe.compare",
    "Trace": "qprobe.tensors",
    "UnsupportedOpError": "qprobe.errors",
    "apply_probe_plan": "qprobe.model.probe",
    "build_quant_index": "qprobe.model.quant",
    "compare_backends": "qprobe.compare",
    "create_backend": "qprobe.backends",
    "extract_subgraph": "qprobe.model.extract",
    "known_backends": "qprobe.backends",
    "load_inputs": "qprobe.model.inputs",
    "load_model": "qprobe.model.loader",
    "localize": "qprobe.localize",
    "parse_policy": "qprobe.compare",
    "plan_probes": "qprobe.model.probe",
    "random_inputs": "qprobe.model.inputs",
    "save_model": "qprobe.model.loader",
    "st_metrics": "qprobe.metrics",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'qprobe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
