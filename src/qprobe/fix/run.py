"""Running a model on a backend for fix: one open, every sample, the final outputs and chosen probes.

One ``Backend.open`` per call (fix counts target runs as opens); a backend that wants every
sample in one run (hardware in the loop) gets them at once, others in batches. Integer codes
of a quantized tensor are returned as codes; ``real`` turns any output into float values with
the model's own quantization. (When ``qprobe.compare.run_traces`` lands on main, this is the
place to call it instead.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import QuantIndex, build_quant_index


def run_model(
    backend: Backend, model: ir.Model, inputs: InputSet, probes: Sequence[str] = (), batch_size: int = 64
) -> dict[str, np.ndarray]:
    """The model's final outputs and the ``probes`` that exist in it, on every sample."""
    index = build_quant_index(model)
    known = {v.name for n in model.graph for v in n.outputs} | {v.name for v in model.graph.inputs}
    extra = [p for p in probes if p in known and p not in graph_output_names(model)]
    probed = apply_probe_plan(model, plan_probes(model, index, extra)) if extra else model
    session = backend.open(probed)
    try:
        if backend.capabilities().whole_run:
            return {k: np.asarray(v) for k, v in session.run(inputs.arrays, first_sample=0).items()}
        parts: dict[str, list[np.ndarray]] = {}
        for first, feeds in inputs.batches(batch_size):
            for k, v in session.run(feeds, first_sample=first).items():
                parts.setdefault(k, []).append(np.asarray(v))
        return {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    finally:
        session.close()


def real(outputs: Mapping[str, np.ndarray], index: QuantIndex, name: str) -> np.ndarray:
    """Float values of one output: codes dequantized with the model's parameters, floats as they are."""
    a = np.asarray(outputs[name])
    q = index.quant_of(name)
    if np.issubdtype(a.dtype, np.integer) and q is not None:
        return q.dequantize_f32(a).astype(np.float64)
    return a.astype(np.float64)
