"""Random int8 QDQ models, hand-built with onnx.helper, for tests and defect injection.

``random_qdq_model(seed, ops=...)`` builds a small DAG (chains with residual and concat
branches) in which every op is wrapped in DequantizeLinear -> op -> QuantizeLinear, the
way onnxruntime's ``quantize_static`` writes QDQ models: int8 (or uint8) activations with
random zero points, per-channel symmetric int8 weights, int32 biases at scale
``fl32(sx * sw)``, and random scales of which a share are powers of two relative to
their inputs (``pow2_share``), so that rounding ties are common. Shapes have a dynamic
batch dimension ``N``.

Node names are unique and stable for a seed: the op of step ``i`` is ``<op>_<i>``
(e.g. ``conv_3``, ``add_5``); its output QuantizeLinear is ``<op>_<i>_quant`` and the
DequantizeLinear of its input ``k`` is ``<op>_<i>_dq<k>``. The graph input ``input`` is
float32 and quantized by ``input_quant``; the graph output ``output`` is the float32
DequantizeLinear of the last tensor (``output_dq``).

``random_inputs(model, n, seed)`` draws standard-normal float32 feeds with ``n`` samples.
Scales are set from a rough propagation of each tensor's standard deviation, so that
tensors use a good part of their integer range without saturating everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper

from models.generated_ops import OPS, Builder

DEFAULT_OPS = ("Conv", "DepthwiseConv", "Add", "Mul", "Concat", "Relu", "MaxPool", "AveragePool", "MatMul")
ALL_OPS = tuple(OPS)


def random_qdq_model(
    seed: int,
    *,
    ops: Sequence[str] | None = None,
    num_ops: int = 6,
    spatial_dims: int | None = None,
    channels: int | None = None,
    activation_type: str = "int8",
    pow2_share: float = 0.3,
    head: bool = False,
    relu_nodes: bool = False,
    opset: int = 17,
) -> onnx.ModelProto:
    """A random QDQ model; ``ops`` picks from ``ALL_OPS`` (default ``DEFAULT_OPS``).

    ``head`` appends GlobalAveragePool -> Flatten -> Gemm. A ReLU after a conv is expressed
    as an output zero point at the type minimum, as ``quantize_static`` leaves it;
    ``relu_nodes`` also keeps an explicit Relu node between the conv and its
    QuantizeLinear (a group whose Relu the engine folds into its output clamp). ``activation_type`` is int8,
    uint8 or int16 (opset 21 then). ``spatial_dims`` is 1 (NCW, a
    TCN-like signal) or 2 (NCHW); random when None.
    """
    rng = np.random.default_rng(seed)
    names = list(ops) if ops is not None else list(DEFAULT_OPS)
    unknown = [o for o in names if o not in OPS]
    if unknown:
        raise ValueError(f"unknown op(s) {unknown}; known: {', '.join(OPS)}")
    dims = spatial_dims if spatial_dims is not None else int(rng.integers(1, 3))
    c = channels if channels is not None else int(rng.integers(2, 9))
    spatial = [int(rng.integers(5, 13)) for _ in range(dims)]
    b = Builder(rng, activation_type, pow2_share, relu_nodes)
    x = b.model_input("input", [c, *spatial])
    live = [x]
    for i in range(num_ops):
        op = names[int(rng.integers(len(names)))]
        y = OPS[op](b, i, x, live) or OPS["Relu"](b, i, x, live)
        assert y is not None
        x = y
        live.append(x)
    if head:
        for k, op in enumerate(("GlobalAveragePool", "Gemm")):
            x = OPS[op](b, num_ops + k, x, live) or x
    return b.finish(x, max(opset, 21) if activation_type == "int16" else opset)  # 16-bit Q/DQ: opset 21


def random_inputs(model: onnx.ModelProto, n: int, seed: int) -> dict[str, np.ndarray]:
    """Standard-normal float32 feeds with ``n`` samples for every graph input."""
    rng = np.random.default_rng(seed)
    init = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
        shape = [n] + [d if d > 0 else 1 for d in dims[1:]]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


