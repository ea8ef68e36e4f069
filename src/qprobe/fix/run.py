"""Running a model on a backend for fix: one open, every sample, the final outputs and chosen probes.

One ``Backend.open`` per call (fix counts target runs as opens), through
``qprobe.compare.run_traces``. Integer codes of a quantized tensor are returned as codes;
``real`` turns any output into float values with the model's own quantization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.compare.traces import gather, run_traces
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.probe import plan_probes
from qprobe.model.quant import QuantIndex, build_quant_index


def run_model(
    backend: Backend, model: ir.Model, inputs: InputSet, probes: Sequence[str] = (), batch_size: int = 64
) -> dict[str, np.ndarray]:
    """The model's final outputs and the ``probes`` that exist in it, on every sample (one open).

    The backend is scoped to the model's nodes first (``Backend.scoped``), so that a profile's
    node overrides of nodes a rewrite removed do not stop the run.
    """
    index = build_quant_index(model)
    known = {v.name for n in model.graph for v in n.outputs} | {v.name for v in model.graph.inputs}
    extra = [p for p in probes if p in known and p not in graph_output_names(model)]
    plan = plan_probes(model, index, extra) if extra else None
    scoped = backend.scoped([n.name or "" for n in model.graph])
    return gather(run_traces(scoped, model, plan, inputs, batch_size, index=index))


def real(outputs: Mapping[str, np.ndarray], index: QuantIndex, name: str) -> np.ndarray:
    """Float values of one output: codes dequantized with the model's parameters, floats as they are."""
    a = np.asarray(outputs[name])
    q = index.quant_of(name)
    if np.issubdtype(a.dtype, np.integer) and q is not None:
        return q.dequantize_f32(a).astype(np.float64)
    return a.astype(np.float64)
