"""Helpers that the corpus builders share: a small graph builder, the quantizer call, and
the rewrites that turn a quantizer's QDQ model into the export patterns it cannot write.

Everything is deterministic for a seed: weights come from ``numpy.random.default_rng``,
calibration data from a fixed-seed generator, and ``quantize_static`` runs with its
default MinMax calibration (which is deterministic).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

F32 = np.float32
OPSET = 17


@dataclass
class Net:
    """A float graph under construction: ``init`` adds a weight, ``node`` a node (auto-named outputs)."""

    name: str
    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    _count: int = 0

    def init(self, name: str, value: Any, dtype: Any = F32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, name: str, shape: Sequence[int], std: float) -> str:
        return self.init(name, self.rng.normal(0.0, std, tuple(shape)))

    def node(self, op: str, inputs: Sequence[str], name: str, n_out: int = 1, **attrs: Any) -> str:
        outs = [f"{name}_out" if n_out == 1 else f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs[0]

    def conv(self, x: str, name: str, cin: int, cout: int, k: int | Sequence[int], *, group: int = 1,
             std: float = 0.3, bias: bool = True, dims: int = 2, **attrs: Any) -> str:
        ks = [k] * dims if isinstance(k, int) else list(k)
        w = self.weight(f"{name}_w", [cout, cin // group, *ks], std)
        ins = [x, w] + ([self.weight(f"{name}_b", [cout], 0.1)] if bias else [])
        return self.node("Conv", ins, name, group=group, kernel_shape=ks, **attrs)

    def model(self, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto],
              opset: int = OPSET) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, list(inputs), list(outputs), self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model)
        typed = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
        for out in model.graph.output:
            if not out.type.tensor_type.HasField("shape") and out.name in typed:
                out.CopyFrom(typed[out.name])
        onnx.checker.check_model(model)
        return model


def tensor(name: str, shape: Sequence[int | str] | None, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, None if shape is None else list(shape))


def calibration(shapes: Mapping[str, Sequence[int]], n: int, seed: int, low: float = -1.0,
                high: float = 1.0) -> dict[str, np.ndarray]:
    """``n`` uniform samples per input (fixed seed), samples on axis 0."""
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(low, high, (n, *s)).astype(F32) for k, s in shapes.items()}


class _Reader(CalibrationDataReader):
    def __init__(self, data: Mapping[str, np.ndarray], batch: int) -> None:
        n = len(next(iter(data.values())))
        self._it = iter([{k: v[i:i + batch] for k, v in data.items()} for i in range(0, n, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_file(src: Path, dst: Path, data: Mapping[str, np.ndarray], *, fmt: QuantFormat = QuantFormat.QDQ,
                  activations: QuantType = QuantType.QInt8, weights: QuantType = QuantType.QInt8,
                  per_channel: bool = True, batch: int = 1, **kwargs: Any) -> Path:
    """``quantize_static`` of the float model at ``src`` calibrated on ``data`` (MinMax), written to ``dst``."""
    quantize_static(str(src), str(dst), _Reader(data, batch), quant_format=fmt, activation_type=activations,
                    weight_type=weights, per_channel=per_channel, **kwargs)
    return dst


def quantize(model: onnx.ModelProto, data: Mapping[str, np.ndarray], **kwargs: Any) -> onnx.ModelProto:
    """``quantize_file`` of an in-memory model (options as there), returned as a ModelProto."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, src)
        return onnx.load(quantize_file(src, Path(tmp) / "int8.onnx", data, **kwargs))


def initializers_to_constants(model: onnx.ModelProto, keep: Sequence[str] = ()) -> onnx.ModelProto:
    """Every initializer (but ``keep``) becomes a Constant node at the top of the graph, as
    exporters that write weights as Constant nodes (torch.onnx's older paths, tf2onnx) do."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    moved = [i for i in out.graph.initializer if i.name not in keep]
    consts = [helper.make_node("Constant", [], [i.name], name=f"const_{k}", value=i) for k, i in enumerate(moved)]
    kept = [i for i in out.graph.initializer if i.name in keep]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    nodes = consts + list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def float_weights(model: onnx.ModelProto, reference: onnx.ModelProto, ops: Sequence[str] = ("Conv", "Gemm"),
                  bias: bool = True, skip: Sequence[str] = ()) -> onnx.ModelProto:
    """ST Edge AI "OE" style: the weights (and biases) of ``ops`` become the float
    initializers of ``reference`` (the float model), read directly, with no DequantizeLinear."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    floats = {i.name: i for i in reference.graph.initializer}
    ref_nodes = {n.name: n for n in reference.graph.node}
    prod = _producers(out)
    dead: set[str] = set()
    for node in out.graph.node:
        if node.op_type not in ops or node.name in skip or node.name not in ref_nodes:
            continue
        for k in range(1, 3 if bias else 2):
            if k >= len(node.input) or node.input[k] not in prod:
                continue
            dq = prod[node.input[k]]
            if dq.op_type != "DequantizeLinear":
                continue
            original = ref_nodes[node.name].input[k]
            node.input[k] = original
            dead.add(dq.name)
            if original not in {i.name for i in out.graph.initializer}:
                out.graph.initializer.append(floats[original])
    _drop_nodes(out, dead)
    return out


def _drop_nodes(model: onnx.ModelProto, names: set[str]) -> None:
    keep = [n for n in model.graph.node if n.name not in names]
    used = {i for n in keep for i in n.input}
    del model.graph.node[:]
    model.graph.node.extend(keep)
    inits = [i for i in model.graph.initializer if i.name in used or i.name in {o.name for o in model.graph.output}]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)


def integer_io(model: onnx.ModelProto) -> onnx.ModelProto:
    """Graph inputs become the codes their QuantizeLinear made and graph outputs the codes
    their DequantizeLinear read (uint8 or int8 I/O, as ST Edge AI's OE exports have)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    dead: set[str] = set()
    new_inputs = []
    for inp in g.input:
        q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == inp.name)
        dead.add(q.name)
        for n in g.node:
            n.input[:] = [inp.name if i == q.output[0] else i for i in n.input]
        new_inputs.append(tensor(inp.name, _dims(inp), inits[q.input[2]].data_type))
    new_outputs = []
    prod = _producers(out)
    for o in g.output:
        dq = prod[o.name]
        assert dq.op_type == "DequantizeLinear", f"output {o.name} is not a DequantizeLinear output"
        dead.add(dq.name)
        new_outputs.append(tensor(dq.input[0], _dims(o), inits[dq.input[2]].data_type))
    del g.input[:]
    g.input.extend(new_inputs)
    del g.output[:]
    g.output.extend(new_outputs)
    _drop_nodes(out, dead)
    return out


def _dims(v: onnx.ValueInfoProto) -> list[int | str] | None:
    shape = v.type.tensor_type.shape
    if not v.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_param if d.dim_param else d.dim_value for d in shape.dim]


def quantize_inputs(model: onnx.ModelProto, data: Mapping[str, np.ndarray], source: onnx.ModelProto
                    ) -> dict[str, np.ndarray]:
    """``data`` (float) as the codes ``source``'s input QuantizeLinear nodes make (for integer I/O)."""
    inits = {i.name: numpy_helper.to_array(i) for i in source.graph.initializer}
    out = {}
    for name, x in data.items():
        q = next(n for n in source.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name)
        s, z = inits[q.input[1]], inits[q.input[2]]
        info = np.iinfo(z.dtype)
        out[name] = np.clip(np.rint(x / s) + z.astype(np.int64), info.min, info.max).astype(z.dtype)
    return out
