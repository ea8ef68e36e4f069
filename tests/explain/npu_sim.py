"""A stand-in NPU for ``command:`` test targets: onnxruntime, except for the op classes a rule takes over.

A target script gives ``simulate`` a rule per op type. For every QDQ group of that type
(DequantizeLinear inputs with constant parameters, the op, an optional Relu, one
QuantizeLinear) in the model qprobe sends (whole, probed, cut or synthetic), the rule
looks at the group's scales, zero points and constants, never at node names, and returns
either ``None`` (onnxruntime computes the group) or a function of the group's input codes
(``Compute``) or of its correct output codes (``Corrupt``). Everything else runs on
onnxruntime with the settings of qprobe's ``ort-fused`` reference. Groups that a rule
takes over are evaluated level by level: onnxruntime computes their inputs, the rule
their outputs, which are fed back as graph inputs for what follows.

The rules' arithmetic is written in the scripts with Python integers and numpy,
independently of qprobe's engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


@dataclass
class Group:
    node: onnx.NodeProto
    inputs: list[str]  # code tensors of the activation operands, in input order
    in_q: list[tuple[np.ndarray, np.ndarray]]  # (scale, zero point) per activation operand
    consts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # input index -> (codes, scale, zero point)
    out: str
    out_q: tuple[float, int, str]  # scale, zero point, dtype
    relu: bool
    attrs: dict[str, object] = field(default_factory=dict)

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def qrange(self) -> tuple[int, int]:
        lo, hi = {"int8": (-128, 127), "uint8": (0, 255)}[self.out_q[2]]
        return (max(lo, self.out_q[1]), hi) if self.relu else (lo, hi)


@dataclass(frozen=True)
class Compute:
    fn: Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Corrupt:
    fn: Callable[[np.ndarray], np.ndarray]


Rule = Callable[[Group], Compute | Corrupt | None]


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def find_groups(model: onnx.ModelProto, rules: Mapping[str, Rule]) -> list[tuple[Group, Compute | Corrupt]]:
    g = model.graph
    consts = _consts(model)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    found = []
    for node in g.node:
        if node.op_type not in rules:
            continue
        group = _group(node, producer, consumers, consts, outputs)
        if group is not None:
            action = rules[node.op_type](group)
            if action is not None:
                found.append((group, action))
    return found


def _param(consts: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(consts[name]) if name else np.zeros((), np.int8)


def _group(node: onnx.NodeProto, producer: Mapping[str, onnx.NodeProto],
           consumers: Mapping[str, list[onnx.NodeProto]], consts: Mapping[str, np.ndarray],
           outputs: set[str]) -> Group | None:
    ins, in_q, cst = [], [], {}
    for k, t in enumerate(node.input):
        dq = producer.get(t)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        scale = _param(consts, dq.input[1])
        zp = _param(consts, dq.input[2] if len(dq.input) > 2 else "")
        if dq.input[0] in consts:
            cst[k] = (consts[dq.input[0]], scale, zp)
        else:
            ins.append(dq.input[0])
            in_q.append((scale, zp))
    t, relu = node.output[0], False
    users = consumers.get(t, [])
    if len(users) == 1 and users[0].op_type == "Relu" and t not in outputs:
        relu, t = True, users[0].output[0]
        users = consumers.get(t, [])
    if t in outputs or len(users) != 1 or users[0].op_type != "QuantizeLinear":
        return None
    q = users[0]
    zo = _param(consts, q.input[2] if len(q.input) > 2 else "")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return Group(node, ins, in_q, cst, q.output[0], (float(consts[q.input[1]]), int(zo), str(zo.dtype)), relu, attrs)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _types(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    inferred = onnx.shape_inference.infer_shapes(model).graph
    return {v.name: v for v in [*inferred.value_info, *inferred.input, *inferred.output]}


def rewired(model: onnx.ModelProto, fed: set[str], wanted: list[str], types: Mapping[str, onnx.ValueInfoProto]
            ) -> onnx.ModelProto:
    """The model with ``fed`` tensors as graph inputs (their producers removed), computing ``wanted``."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    need, keep, stack = set(), [], list(wanted)
    while stack:
        t = stack.pop()
        if t in need or t in fed:
            continue
        need.add(t)
        n = producer.get(t)
        if n is not None and id(n) not in {id(k) for k in keep}:
            keep.append(n)
            stack.extend(i for i in n.input if i)
    nodes = [n for n in g.node if any(n is k for k in keep)]
    inits = {i.name for i in g.initializer}
    used = {i for n in nodes for i in n.input} | set(wanted)
    inputs = [i for i in g.input if i.name in used and i.name not in inits]
    inputs += [types[t] for t in sorted(fed) if t in used]
    graph = helper.make_graph(nodes, g.name, inputs, [types[t] for t in wanted],
                              [i for i in g.initializer if i.name in used])
    m = helper.make_model(graph, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


def _run(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    ins = {i.name: feeds[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, ins), strict=True))


def _ancestors(model: onnx.ModelProto, tensors: list[str]) -> set[str]:
    producer = {o: n for n in model.graph.node for o in n.output}
    seen, stack = set(), list(tensors)
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        n = producer.get(t)
        if n is not None:
            stack.extend(i for i in n.input if i)
    return seen


def simulate(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
             rules: Mapping[str, Rule]) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` as the simulated NPU computes it."""
    types = _types(model)
    pending = find_groups(model, rules)
    known: dict[str, np.ndarray] = {}
    while pending:
        outs = {g.out for g, _a in pending}
        ready = [(g, a) for g, a in pending if not (_ancestors(model, g.inputs) & outs)]
        done = {id(g) for g, _a in ready}
        wanted = sorted({t for g, a in ready for t in (g.inputs if isinstance(a, Compute) else [g.out])} - set(known))
        res = {**known, **(_run(rewired(model, set(known), wanted, types), {**feeds, **known}) if wanted else {})}
        for g, a in ready:
            known[g.out] = a.fn([res[t] for t in g.inputs]) if isinstance(a, Compute) else a.fn(res[g.out])
        pending = [(g, a) for g, a in pending if id(g) not in done]
    wanted = [o.name for o in model.graph.output if o.name not in known]
    res = _run(rewired(model, set(known), wanted, types), {**feeds, **known}) if wanted else {}
    return {o.name: known[o.name] if o.name in known else res[o.name] for o in model.graph.output}


def main(argv: list[str], rules: Mapping[str, Rule], label: str) -> int:
    model_path, inputs_path, outputs_path = argv[1:4]
    model = onnx.load(model_path)
    with np.load(inputs_path) as z:
        feeds = {k: z[k] for k in z.files}
    out = simulate(model, feeds, rules)
    np.savez(outputs_path, **out)
    print(f"{label}: {len(find_groups(model, rules))} group(s) taken over, outputs {sorted(out)}")
    return 0
