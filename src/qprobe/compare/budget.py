"""The memory budget of a comparison: how many samples one batch may hold.

``sample_bytes`` counts the bytes one sample of the probed tensors and of the model inputs
occupies, from the shapes ONNX shape inference gives (axis 0 is the sample axis, DESIGN.md).
Assumptions, stated once: a symbolic dimension other than axis 0 counts as
``SYMBOLIC_DIM`` elements; a tensor whose shape is unknown counts as the largest tensor of
known shape (at least its element type's size).

``choose_batch_size`` divides what the budget leaves after the fixed cost of the run (the
Python process, the backends' sessions and two copies of the weights, ``fixed_bytes``) by
the bytes one sample costs: ``STREAMS`` copies of its probed tensors (the reference and the
target stream each hold one batch of them, the comparison makes about as much again in
float32 temporaries, and while it computes one batch's metrics the streams run the next:
``compare.accumulate``) plus the **working set of a run** (``working_bytes``): while a backend
runs, it holds float32 copies of its largest activation (a QDQ op's dequantized input, its
float output before QuantizeLinear, the next op's dequantized input: ``WORKING_COPIES``),
which an int8 model's probed codes do not show (measured on the ResNet-18-sized model, 224x224,
every tensor: 22 MB per sample against 2.9 MB of probed tensors and inputs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import onnx
import onnx_ir as ir

from qprobe.errors import InputError
from qprobe.model.graph import graph_output_names, sample_tensors
from qprobe.model.loader import to_proto, weight_bytes
from qprobe.model.shapes import value_types
from qprobe.tensors import ProbePlan

DEFAULT_MEMORY_BUDGET = 1 << 30
# compare's largest batch: larger batches buy no speed (onnxruntime's per-run cost is small) and
# lose some to cache misses: TCN 4000 samples, every tensor: 4.6 s at 64, 5.2 s at 1024;
# MobileNet-like 512: 4.7-5.7 s at 64, 8.1-10.7 s at 1024 (2 cores, loaded); and a batch
# this size keeps peak RSS flat from 10^2 samples up (benchmarks/bench_compare.py --growth)
FASTEST_BATCH = 64
SYMBOLIC_DIM = 64  # assumed size of a symbolic dimension other than the sample axis
BASE_BYTES = 256 << 20  # the interpreter, numpy, onnxruntime and their arenas before any batch
STREAMS = 6  # copies of a batch's probed tensors held at once (see above)
WORKING_COPIES = 3  # float32 copies of the largest activation a backend holds while it runs


def _elem_size(vi: onnx.ValueInfoProto) -> int:
    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4


def _per_sample(vi: onnx.ValueInfoProto) -> int | None:
    """Bytes of one sample of a typed value (None: its shape is unknown)."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = list(tt.shape.dim)[1:]
    count = math.prod(d.dim_value if d.HasField("dim_value") else SYMBOLIC_DIM for d in dims)
    return max(1, count) * _elem_size(vi)


def sample_bytes(model: ir.Model, plan: ProbePlan | None,
                 types: Mapping[str, onnx.ValueInfoProto] | None = None) -> int:
    """Bytes one sample of ``plan``'s tensors (None: the graph outputs) plus the model inputs
    occupies; ``types``: the model's ``value_types`` when the caller has them."""
    names = list(plan.tensors) if plan is not None else graph_output_names(model)
    names += [v.name for v in model.graph.inputs if v.name and v.name not in model.graph.initializers]
    types = value_types(to_proto(model)) if types is None else types
    known = {n: _per_sample(types[n]) for n in names if n in types}
    sized = [b for b in known.values() if b is not None]
    largest = max(sized, default=4)
    total = 0
    for n in dict.fromkeys(names):
        b = known.get(n)
        total += largest if b is None else b
    return max(1, total)


def working_bytes(model: ir.Model, types: Mapping[str, onnx.ValueInfoProto] | None = None) -> int:
    """Bytes per sample of a run's working set: ``WORKING_COPIES`` float32 copies of the
    model's largest per-sample value of known shape (any value, probed or not; a value computed
    from constants only is one tensor for the whole batch, not counted per sample)."""
    per_sample = sample_tensors(model)
    largest = 0
    for name, vi in (value_types(to_proto(model)) if types is None else types).items():
        per = _per_sample(vi) if name in per_sample else None
        if per is not None:
            largest = max(largest, per // _elem_size(vi))
    return WORKING_COPIES * 4 * largest


def fixed_bytes(model: ir.Model) -> int:
    """The run's cost before any batch: ``BASE_BYTES`` and the weights held by two backends (x2 each)."""
    return BASE_BYTES + 4 * weight_bytes(model)


def choose_batch_size(
    model: ir.Model, plan: ProbePlan | None, budget: int, *, streams: int = STREAMS, maximum: int = 1024,
    types: Mapping[str, onnx.ValueInfoProto] | None = None,
) -> int:
    """The largest batch (1..``maximum``) whose ``streams`` copies and working set fit in what
    ``budget`` leaves; ``types``: the model's ``value_types`` when the caller has them."""
    if budget <= 0:
        raise InputError(f"the memory budget must be positive, got {budget} bytes")
    free = budget - fixed_bytes(model)
    types = value_types(to_proto(model)) if types is None else types
    per = streams * sample_bytes(model, plan, types) + working_bytes(model, types)
    return int(max(1, min(maximum, free // per if free > 0 else 1)))
