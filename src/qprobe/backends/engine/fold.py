"""Compile-time constant folding of the engine's graph view.

``fold_constants(view, model, evaluate)`` evaluates, once per compilation, every node whose
inputs are all constants (initializers, Constant nodes, earlier folded results), and the
shape arithmetic whose values do not depend on the batch: ``Shape`` of a tensor whose
non-batch dimensions are static (from ONNX shape inference, with every graph input's
first dimension made symbolic), followed by Gather/Slice/Concat/Unsqueeze/Squeeze on those
partly known vectors. What remains (a shape that involves the batch dimension, e.g.
PyTorch's ``x.size(0)``) runs on every call as integer tensor ops.

Never folded: DequantizeLinear (QDQ groups are recognized from it, as onnxruntime keeps it
when it folds constants), nodes without inputs other than Constant (already constants),
and nodes without a kernel. The first dimension of a runtime tensor's shape is never
folded, even in a model whose batch is fixed to 1: the engine runs all samples in one
call, so at run time that dimension is the number of samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import onnx_ir as ir

from qprobe.backends.engine.graph import GNode, GraphView
from qprobe.backends.engine.kernels import KERNELS
from qprobe.backends.engine.kernels.shape import shape_slice
from qprobe.model.shapes import inferred

Evaluate = Callable[[GNode, dict[str, np.ndarray]], list[np.ndarray]]
Partial = list[int | None]  # a 1-D int64 shape vector with unknown entries
_NEVER = frozenset({"DequantizeLinear", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"})
_SHAPE_OPS = ("Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Identity")


def static_dims(model: ir.Model) -> dict[str, tuple[int | None, ...]]:
    """Each value's dimensions from ONNX shape inference (None: unknown or batch-dependent)."""
    proto = ir.to_proto(model)
    for inp in proto.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "__qprobe_batch"
    proto = inferred(proto)  # a help: without it nothing shape-related folds
    out: dict[str, tuple[int | None, ...]] = {}
    for vi in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return out


def _partial_shape(node: GNode, dims: dict[str, tuple[int | None, ...]]) -> Partial | None:
    known = dims.get(node.inputs[0])
    if known is None:
        return None
    full: Partial = [None, *known[1:]] if known else []
    start, end = int(node.attrs.get("start", 0)), node.attrs.get("end")
    return list(shape_slice(full, start, None if end is None else int(end)))  # type: ignore[arg-type]


def _vector(name: str, consts: dict[str, np.ndarray], partial: dict[str, Partial]) -> Partial | None:
    if name in partial:
        return partial[name]
    v = consts.get(name)
    if v is not None and v.dtype.kind in "iu" and v.ndim <= 1:
        return [int(e) for e in v.reshape(-1)]
    return None


def _propagate(node: GNode, consts: dict[str, np.ndarray], partial: dict[str, Partial],
               dims: dict[str, tuple[int | None, ...]]) -> Partial | None:
    """The partly known value of a shape-arithmetic node's output, or None."""
    op = node.op_type
    if op == "Shape":
        return _partial_shape(node, dims)
    vec = _vector(node.inputs[0], consts, partial) if node.inputs else None
    if vec is None or node.inputs[0] not in partial:
        return None
    if op == "Gather" and len(node.inputs) > 1 and node.inputs[1] in consts and int(node.attrs.get("axis", 0)) == 0:
        idx = consts[node.inputs[1]].reshape(-1)
        return [vec[int(i)] for i in idx]
    if op == "Concat":
        parts = [_vector(i, consts, partial) for i in node.inputs]
        return None if any(p is None for p in parts) else [e for p in parts for e in p]  # type: ignore[union-attr]
    if op in ("Unsqueeze", "Squeeze", "Identity"):
        return vec
    if op == "Slice" and all(i in consts for i in node.inputs[1:] if i):
        start, end = (int(consts[node.inputs[k]].reshape(-1)[0]) for k in (1, 2))
        step = int(consts[node.inputs[4]].reshape(-1)[0]) if len(node.inputs) > 4 and node.inputs[4] else 1
        return vec[slice(start, end, step)]
    return None


def _foldable(node: GNode, consts: dict[str, np.ndarray]) -> bool:
    present = [i for i in node.inputs if i]
    known = node.op_type in KERNELS or node.op_type == "QuantizeLinear"
    return (bool(present) and known and node.op_type not in _NEVER and node.domain == ""
            and all(i in consts for i in present))


def fold_constants(view: GraphView, model: ir.Model, evaluate: Evaluate) -> GraphView:
    """A view without the foldable nodes, their outputs moved into ``consts``."""
    consts = dict(view.consts)
    dims: dict[str, tuple[int | None, ...]] | None = None
    partial: dict[str, Partial] = {}
    kept: list[GNode] = []
    for node in view.nodes:
        if _foldable(node, consts):
            for name, value in zip(node.outputs, evaluate(node, consts), strict=True):
                consts[name] = np.asarray(value)
            continue
        if node.op_type in _SHAPE_OPS and node.domain == "":
            if dims is None and node.op_type == "Shape":
                dims = static_dims(model)
            vec = _propagate(node, consts, partial, dims or {})
            if vec is not None and all(v is not None for v in vec) and node.op_type != "Identity":
                shape_is_scalar = node.op_type == "Gather" and consts[node.inputs[1]].ndim == 0
                arr = np.array(vec, dtype=np.int64)
                consts[node.outputs[0]] = arr.reshape(()) if shape_is_scalar else arr
                continue
            if vec is not None:
                partial[node.outputs[0]] = vec
        kept.append(node)
    if len(kept) == len(view.nodes):
        return view
    dtypes = dict(view.dtypes)
    dtypes.update({k: str(v.dtype) for k, v in consts.items() if k not in view.consts})
    return replace(view, nodes=kept, consts=consts, dtypes=dtypes, producer={}, consumers=defaultdict(list))
