"""The quantization view of a model: which tensors are quantized, and how each op is fed.

``QuantIndex`` maps every quantized activation tensor (a QuantizeLinear output or a
QOperator output) to its ``QuantParams``, maps each float DequantizeLinear output back to
the codes it reads, and lists the compute ops (everything but Q, DQ and Constant) in
topological order with the quantized tensors that feed them and that they produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from qprobe.model.graph import DQ_OPS, Q_OPS, const_array, int_attr, is_constant, name_of, node_label
from qprobe.model.qoperator import SIGNATURES
from qprobe.tensors import ONNX_INT_TYPES, QuantParams

_CODE_PASSTHROUGH = frozenset(
    {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "MaxPool", "Gather",
     "Split", "Identity", "Resize", "Pad", "Expand", "Tile"}
)
# ops that rescale each operand to the output: the operand/output scale ratio is each coefficient
ELTWISE_RATIO_OPS = frozenset({"Add", "Sub", "Concat", "QLinearAdd", "QLinearConcat"})
# ops whose one requantization multiplier is the product of the operand scales over the output's
PRODUCT_RATIO_OPS = frozenset({"Mul", "QLinearMul"})


@dataclass(frozen=True)
class OpView:
    """One compute op as the quantization sees it."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    q_inputs: tuple[str | None, ...]
    outputs: tuple[str, ...]
    q_outputs: tuple[str | None, ...]

    @property
    def observed_outputs(self) -> tuple[str, ...]:
        """What a target can emit for this op: its quantized outputs where it has them."""
        return tuple(q or o for q, o in zip(self.q_outputs, self.outputs, strict=True))


@dataclass
class QuantIndex:
    tensors: dict[str, QuantParams] = field(default_factory=dict)
    dequantized: dict[str, str] = field(default_factory=dict)
    ops: list[OpView] = field(default_factory=list)
    producer: dict[str, str] = field(default_factory=dict)
    producer_type: dict[str, str] = field(default_factory=dict)
    op_of_tensor: dict[str, str] = field(default_factory=dict)
    quantized_from: dict[str, str] = field(default_factory=dict)  # QuantizeLinear output -> its float input

    def quant_of(self, tensor: str) -> QuantParams | None:
        """Params of codes, or of the codes a float DequantizeLinear output reads."""
        if tensor in self.tensors:
            return self.tensors[tensor]
        src = self.dequantized.get(tensor)
        return self.tensors.get(src) if src else None

    def label(self, tensor: str) -> tuple[str, str]:
        """(op, op type) a comparison row names for ``tensor``: the compute op it belongs to, else
        its producer node, else ``("(input)", "input")`` for graph inputs."""
        op_name = self.op_of_tensor.get(tensor) or self.producer.get(tensor, "(input)")
        op_type = next((o.op_type for o in self.ops if o.name == op_name), self.producer_type.get(tensor, "input"))
        return op_name, op_type

    def inputs_of(self, tensor: str) -> tuple[str, ...] | None:
        """The activation tensors that ``tensor`` is computed from (codes where quantized): the
        inputs of its compute op, or the float input of a QuantizeLinear; None when unknown."""
        if tensor in self.quantized_from and tensor not in self.op_of_tensor:
            return (self.quantized_from[tensor],)
        name = self.op_of_tensor.get(tensor)
        if name is None:
            return None
        op = self.op(name)
        return tuple(q or a for q, a in zip(op.q_inputs, op.inputs, strict=True))

    def op(self, name: str) -> OpView:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    def scale_ratios(self, op: OpView) -> list[float] | None:
        """Operand-scale / output-scale per operand of an int8 Add/Sub/Concat: the coefficient each
        operand is rescaled by. None when any operand or the output is not quantized per tensor
        (a float operand makes it no int8 eltwise op), and for other ops."""
        out = self._output(op)
        if op.op_type not in ELTWISE_RATIO_OPS or out is None:
            return None
        ins = [self.tensors.get(q) if q else None for q in op.q_inputs]
        if not ins or any(p is None or not p.per_tensor for p in ins):
            return None
        return [p.scale[0] / out.scale[0] for p in ins if p is not None]

    def multiplier(self, op: OpView) -> float | None:
        """The one requantization multiplier of an int8 Mul: product of operand scales / output scale."""
        out = self._output(op)
        ins = [p for q in op.q_inputs if q and (p := self.tensors.get(q)) is not None and p.per_tensor]
        if op.op_type not in PRODUCT_RATIO_OPS or out is None or len(ins) != 2 or len(op.q_inputs) != 2:
            return None
        return ins[0].scale[0] * ins[1].scale[0] / out.scale[0]

    def _output(self, op: OpView) -> QuantParams | None:
        if not op.q_outputs or op.q_outputs[0] is None:
            return None
        out = self.tensors.get(op.q_outputs[0])
        return out if out is not None and out.per_tensor else None


def _qparams(node: ir.Node, s_idx: int, z_idx: int, axis: int | None) -> QuantParams | None:
    ins = node.inputs
    s = const_array(ins[s_idx]) if len(ins) > s_idx else None
    if s is None:
        return None
    zv = ins[z_idx] if len(ins) > z_idx else None
    z = const_array(zv)
    if z is not None:
        dtype = str(z.dtype)
    else:
        out_dt = node.attributes.get("output_dtype")
        dtype = _dtype_name(int(out_dt.as_int())) if out_dt is not None else "uint8"
    if dtype not in ("int8", "uint8", "int16", "uint16"):
        return None
    return QuantParams.from_arrays(s, z if z is not None else 0, dtype, axis)


def _dtype_name(onnx_type: int) -> str:
    return ONNX_INT_TYPES.get(onnx_type, "unknown")


def build_quant_index(model: ir.Model) -> QuantIndex:
    idx = QuantIndex()
    for node in model.graph:
        label = node_label(node)
        for v in node.outputs:
            if v.name:
                idx.producer[name_of(v)] = label
                idx.producer_type[name_of(v)] = node.op_type
        if node.op_type == "Constant":
            continue
        if node.op_type in Q_OPS:
            _index_quantize(idx, node)
        elif node.op_type in DQ_OPS:
            src = name_of(node.inputs[0])
            if src in idx.tensors:
                idx.dequantized[name_of(node.outputs[0])] = src
        else:
            _index_compute(idx, node, label)
    return idx


def _index_quantize(idx: QuantIndex, node: ir.Node) -> None:
    s = const_array(node.inputs[1])
    axis = int_attr(node, "axis", 1) if s is not None and s.size > 1 else None
    p = _qparams(node, 1, 2, axis)
    if p is not None and name_of(node.outputs[0]):
        idx.tensors[name_of(node.outputs[0])] = p
        idx.quantized_from[name_of(node.outputs[0])] = name_of(node.inputs[0])


def _index_compute(idx: QuantIndex, node: ir.Node, label: str) -> None:
    op = node.op_type
    sig = SIGNATURES.get(op)
    if sig is not None and sig.output is not None:
        p = _qparams(node, sig.output[0], sig.output[1], None)
        if p is not None:
            idx.tensors[name_of(node.outputs[0])] = p
    if sig is not None:
        # activation operands only: weights (initializers or Constant nodes) are constants everywhere
        act = [name_of(node.inputs[t]) for t, _s, _z in sig.triples(len(node.inputs))
               if t < len(node.inputs) and node.inputs[t] is not None and not is_constant(node.inputs[t])]
        outs = tuple(name_of(v) for v in node.outputs)
        view = OpView(label, op, tuple(act), tuple(a if a in idx.tensors else None for a in act), outs, outs)
    else:
        view = _qdq_view(idx, node, label)
    idx.ops.append(view)
    for t in (*view.outputs, *(q for q in view.q_outputs if q)):
        idx.op_of_tensor[t] = label


def _qdq_view(idx: QuantIndex, node: ir.Node, label: str) -> OpView:
    act_inputs = [name_of(v) for v in node.inputs if v is not None and not is_constant(v)]
    q_in: list[str | None] = []
    for a in act_inputs:
        if a in idx.dequantized:
            q_in.append(idx.dequantized[a])
        elif a in idx.tensors:
            q_in.append(a)  # codes flowing straight in (data movement on codes)
        else:
            q_in.append(None)
    q_out: list[str | None] = []
    for v in node.outputs:
        q = next((name_of(c.outputs[0]) for c in v.consumers() if c.op_type in Q_OPS), None)
        if q is None and node.op_type in _CODE_PASSTHROUGH and q_in and q_in[0] is not None:
            # integer data movement on codes (QOperator graphs / fused remnants)
            if v.name and q_in[0] in idx.tensors and _is_integer_flow(node):
                idx.tensors[name_of(v)] = idx.tensors[q_in[0]]
                q = name_of(v)
        q_out.append(q)
    return OpView(
        label,
        node.op_type,
        tuple(act_inputs),
        tuple(q_in),
        tuple(name_of(v) for v in node.outputs),
        tuple(q_out),
    )


def _is_integer_flow(node: ir.Node) -> bool:
    v = node.inputs[0]
    src = v.producer() if v is not None else None
    return src is not None and src.op_type not in DQ_OPS
