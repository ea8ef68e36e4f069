"""Small read-only helpers over an onnx_ir graph: constants, producers, attributes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

Q_OPS = frozenset({"QuantizeLinear"})
DQ_OPS = frozenset({"DequantizeLinear"})


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant behind ``value`` (initializer or Constant node), else None."""
    if value is None:
        return None
    if value.const_value is not None:
        return np.asarray(value.const_value.numpy())
    node = value.producer()
    if node is not None and node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        attr = node.attributes.get("value")
        if attr is not None:
            return np.asarray(attr.as_tensor().numpy())
    return None


def is_constant(value: ir.Value | None) -> bool:
    """True for initializers, Constant outputs and DequantizeLinear of a constant (weights)."""
    if value is None:
        return True
    if const_array(value) is not None:
        return True
    node = value.producer()
    if node is not None and node.op_type in DQ_OPS:
        return const_array(node.inputs[0]) is not None
    return False


def int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return default if attr is None else int(attr.as_int())


def node_label(node: ir.Node) -> str:
    """The node's name; models from ``model.loader`` have every node named (``name_nodes``)."""
    if not node.name:
        raise ValueError(f"unnamed {node.op_type} node: build models with qprobe.model.loader (name_nodes)")
    return node.name


def graph_output_names(model: ir.Model) -> list[str]:
    return [v.name for v in model.graph.outputs if v.name]


def find_value(model: ir.Model, name: str) -> ir.Value | None:
    g = model.graph
    for v in g.inputs:
        if v.name == name:
            return v
    for node in g:
        for v in node.outputs:
            if v.name == name:
                return v
    return g.initializers.get(name)


def name_of(value: ir.Value | None) -> str:
    """A value's name, or '' for a missing optional input or an unnamed value."""
    return "" if value is None or value.name is None else value.name


# ops whose outputs depend only on their input's shape, not on its values
SHAPE_OPS = frozenset({"Shape", "Size", "ConstantOfShape"})


def sample_tensors(model: ir.Model) -> set[str]:
    """Tensors that carry per-sample data: the graph inputs and everything computed from their
    values. Shape computations (``Shape``, ``Size``, ``ConstantOfShape`` and what is computed from
    them and from constants, e.g. PyTorch's Shape -> Gather -> Unsqueeze -> Concat flatten) hold
    one value for the whole batch; they are not compared per sample."""
    live = {name_of(v) for v in model.graph.inputs if v.name not in model.graph.initializers}
    for node in model.graph:
        if node.op_type in SHAPE_OPS or node.op_type == "Constant":
            continue
        if any(v is not None and v.name in live for v in node.inputs):
            live.update(name_of(v) for v in node.outputs if v.name)
    return live
