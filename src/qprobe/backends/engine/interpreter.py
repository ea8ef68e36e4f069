"""Compile a model into a list of engine steps under one profile, and run it.

``compile_program`` reads the graph, folds what is constant (``fold.py``: constant
subgraphs and batch-independent shape arithmetic), applies onnxruntime's quantization of
float weights inside QDQ groups where the profile says so (``ort_weights.py``, knob
``float_weights``), plans its units (``graph.plan_units``), resolves
each unit's operands, quantization and ``Numerics``, and builds its kernel from the
registry (``kernels.KERNELS``). A QDQ group whose integer kernel cannot express it
(``Ungroupable``) or whose profile says ``compute = float`` runs as float32
DQ -> op -> Q (``float_ops.float_group``); the reason is kept in ``Program.notes``. An op
without any kernel stops compilation with an ``UnsupportedOpError`` naming it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from qprobe.backends.engine.batch_split import split_blocker
from qprobe.backends.engine.crop import causal_crops
from qprobe.backends.engine.fold import fold_constants, static_dims
from qprobe.backends.engine.graph import GNode, GraphView, Unit, plan_units, read_graph
from qprobe.backends.engine.kernels import KERNELS, conv, gemm
from qprobe.backends.engine.kernels.base import Kernel, Operand, OpSpec, QType, Ungroupable
from qprobe.backends.engine.kernels.float_ops import float_group
from qprobe.backends.engine.kernels.quantize import (
    build_dequantize,
    build_dynamic_quantize,
    build_quantize,
)
from qprobe.backends.engine.ort_weights import quantize_float_weights
from qprobe.backends.engine.profiles import Profile
from qprobe.backends.engine.qoperator import LAYOUT, RuntimeParams, lower
from qprobe.backends.engine.window_push import pushed_windows
from qprobe.errors import InputError, ProfileError, UnsupportedOpError
from qprobe.tensors import ONNX_INT_TYPES

BOUNDARY = {"QuantizeLinear": build_quantize, "DequantizeLinear": build_dequantize,
            "DynamicQuantizeLinear": build_dynamic_quantize}
INTEGER_ONLY = {"MatMulInteger": ("gemm", gemm.build_matmul_integer), "ConvInteger": ("conv", conv.build_conv_integer)}


@dataclass
class Step:
    node: str
    inputs: tuple[str, ...]  # "" where the kernel gets a constant or nothing
    consts: tuple[np.ndarray | None, ...]
    outputs: tuple[str, ...]
    kernel: Kernel
    out_dtypes: tuple[str | None, ...]
    clamp: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.execute = self._compiled()

    def run(self, env: dict[str, np.ndarray]) -> None:
        """Compute the outputs from ``env`` into ``env``."""
        self.execute(env)

    def _compiled(self) -> Callable[[dict[str, np.ndarray]], None]:
        """``run`` as one closure made for this step's shape: the arguments of a step whose
        first input is its only tensor input are ``[env[x], *constants]``, one output without
        a clamp is stored without a loop, and a cast is made only where the kernel's dtype
        differs (the engine runs every step on every call: on one sample this glue is a
        tenth of the run)."""
        kernel, clamp = self.kernel, self.clamp
        names, consts = self.inputs, self.consts
        dtypes = tuple(None if d is None else np.dtype(d) for d in self.out_dtypes)
        args: Callable[[dict[str, np.ndarray]], list[np.ndarray | None]]
        if names and names[0] and not any(names[1:]):
            first, rest = names[0], list(consts[1:])

            def args(env: dict[str, np.ndarray]) -> list[np.ndarray | None]:
                return [env[first], *rest]
        else:
            pairs = tuple(zip(names, consts, strict=True))

            def args(env: dict[str, np.ndarray]) -> list[np.ndarray | None]:
                return [env[n] if n else c for n, c in pairs]

        if len(self.outputs) == 1 and clamp is None:
            name, dt = self.outputs[0], dtypes[0]

            def single(env: dict[str, np.ndarray]) -> None:
                y = kernel(args(env))[0]
                env[name] = y if dt is None or y.dtype == dt else y.astype(dt)

            return single
        outs = tuple(zip(self.outputs, dtypes, strict=True))

        def general(env: dict[str, np.ndarray]) -> None:
            ys = kernel(args(env))
            for (name, dt), y in zip(outs, ys, strict=True):
                if clamp is not None:
                    y = np.clip(y, *clamp)
                env[name] = y.astype(dt) if dt is not None and y.dtype != dt else y

        return general


@dataclass
class Program:
    steps: list[Step]
    inputs: list[str]
    outputs: list[str]
    consts: dict[str, np.ndarray]
    notes: dict[str, str] = field(default_factory=dict)
    weight_notes: dict[str, str] = field(default_factory=dict)  # float weights quantized as onnxruntime does
    split_blocker: str | None = "not checked"  # why the batch cannot be split over threads (batch_split.py)

    def __post_init__(self) -> None:
        self.last_uses = _last_uses(self.steps, self.outputs)  # tensors freed after each step
        self._plan = [(s.execute, tuple(self.last_uses.get(i, ()))) for i, s in enumerate(self.steps)]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise InputError(f"missing model input(s) {missing}; the model takes {self.inputs}")
        env: dict[str, np.ndarray] = {n: np.asarray(feeds[n]) for n in self.inputs}
        for run, frees in self._plan:
            run(env)
            for name in frees:
                env.pop(name, None)
        return {n: env[n] if n in env else self.consts[n] for n in self.outputs}


def _last_uses(steps: Sequence[Step], keep: Sequence[str]) -> dict[int, list[str]]:
    last: dict[str, int] = {}
    for i, s in enumerate(steps):
        for n in s.inputs:
            if n:
                last[n] = i
    out: dict[int, list[str]] = {}
    for n, i in last.items():
        if n not in keep:
            out.setdefault(i, []).append(n)
    return out


def _qtype(view: GraphView, node: GNode, codes: str, dtype_default: str) -> QType:
    """Quantization of a DequantizeLinear's input or a QuantizeLinear's output."""
    scale = view.consts[node.inputs[1]]
    zp = view.consts.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if zp is not None:
        dtype = str(zp.dtype)
    elif "output_dtype" in node.attrs:
        dtype = ONNX_INT_TYPES.get(int(node.attrs["output_dtype"]), dtype_default)
    elif codes in view.consts:
        dtype = str(view.consts[codes].dtype)
    else:
        dtype = view.dtypes.get(codes, dtype_default)
    if int(node.attrs.get("block_size", 0)):
        raise Ungroupable("blocked quantization")
    axis = int(node.attrs.get("axis", 1))
    return QType.make(scale, zp, dtype, axis)


def _group_spec(view: GraphView, unit: Unit, profile: Profile,
                crops: Mapping[str, tuple[int | None, ...]] | None = None, channels_last: bool = False) -> OpSpec:
    node = unit.anchor
    ops: list[Operand] = []
    for i, name in enumerate(node.inputs):
        dq = unit.dq.get(i)
        if dq is not None:
            codes = dq.inputs[0]
            ops.append(Operand(codes, view.consts.get(codes), _qtype(view, dq, codes, "int32")))
        else:
            ops.append(Operand(name, view.consts.get(name) if name else None))
    out_q = tuple(_qtype(view, q, "", "uint8") for q in unit.q)
    entry = KERNELS[node.op_type]
    info: dict[str, object] = {"fixed_batch_one": view.fixed_batch_one, "opset": view.opset,
                               "channels_last": channels_last}
    if crops and node.name in crops:
        info["crop"] = crops[node.name]
    return OpSpec(node.name, node.op_type, node.attrs, tuple(ops), tuple(q.outputs[0] for q in unit.q), out_q,
                  profile.numerics_for(entry.op_class, node.op_type, node.name), info)


def _fold_clamp(view: GraphView, unit: Unit, out_q: QType) -> tuple[int, int] | None:
    if not unit.folded:
        return None
    lo, hi = out_q.qmin, out_q.qmax
    for node in unit.folded:
        bounds = [float(node.attrs.get("min", -np.inf)), float(node.attrs.get("max", np.inf))]
        if node.op_type == "Relu":
            bounds = [0.0, np.inf]
        for k in (1, 2):
            name = node.inputs[k] if len(node.inputs) > k else ""
            if not name:
                continue
            producer = view.producer.get(name)
            if producer is not None:  # a DequantizeLinear of a constant
                q = _qtype(view, producer, producer.inputs[0], "uint8")
                bounds[k - 1] = float((int(view.consts[producer.inputs[0]].reshape(-1)[0]) - q.z) * np.float64(q.s))
            else:
                bounds[k - 1] = float(view.consts[name].reshape(-1)[0])
        if bounds[0] > -np.inf:
            lo = max(lo, out_q.quantize_exact(bounds[0]))
        if bounds[1] < np.inf:
            hi = min(hi, out_q.quantize_exact(bounds[1]))
    return lo, hi


def _build_quantized(spec: OpSpec, unit: Unit, profile: Profile, notes: dict[str, str]) -> Kernel:
    entry = KERNELS.get(spec.op_type)
    qnode = unit.q[0].name if unit.q else unit.anchor.name
    qnum = profile.numerics_for("quantize", "QuantizeLinear", qnode)
    if spec.op_type in INTEGER_ONLY:
        return INTEGER_ONLY[spec.op_type][1](spec)
    assert entry is not None and entry.build_int is not None
    wide = any(q is not None and q.dtype in ("int16", "uint16") for q
               in (*spec.out_qtypes, *(o.qtype for o in spec.inputs)))
    if spec.numerics.compute == "float" or (spec.numerics.compute == "integer8" and wide):
        notes[spec.node] = f"float32 (profile: compute={spec.numerics.compute})"
        return float_group(spec, entry.build_float, qnum)
    try:
        kernel = entry.build_int(spec)
        if "note" in spec.info:  # the kernel chose a fallback within its integer form
            notes[spec.node] = str(spec.info["note"])
        return kernel
    except Ungroupable as e:
        notes[spec.node] = f"float32 ({e})"
        return float_group(spec, entry.build_float, qnum)


def _unit_step(view: GraphView, unit: Unit, profile: Profile, notes: dict[str, str],
               crops: Mapping[str, tuple[int | None, ...]] | None = None, channels_last: bool = False) -> Step:
    node = unit.anchor
    clamp = None
    if unit.kind == "group":
        spec = _group_spec(view, unit, profile, crops, channels_last)
        clamp = spec.info["clamp"] = _fold_clamp(view, unit, spec.out_q)
        kernel = _build_quantized(spec, unit, profile, notes)
        if spec.info.get("clamped"):  # the kernel applied the folded clamp itself
            clamp = None
    elif unit.kind == "qop":
        try:
            spec = _qop_spec(view, node, profile, view.consts)
        except RuntimeParams:
            return _runtime_qop_step(view, unit, profile)
        kernel = _build_quantized(spec, unit, profile, notes)
    else:
        spec, kernel = _single(view, node, profile)
    names = tuple("" if op.const is not None else op.name for op in spec.inputs)
    consts = tuple(op.const for op in spec.inputs)
    dtypes = tuple(q.dtype if q is not None else None for q in spec.out_qtypes)
    if spec.op_type in INTEGER_ONLY:
        dtypes = ("int32",)
    return Step(node.name, names, consts, spec.outputs, kernel, dtypes, clamp)


def _qop_spec(view: GraphView, node: GNode, profile: Profile, values: Mapping[str, np.ndarray]) -> OpSpec:
    op, attrs, ops, out_q = lower(view, node, values)
    cls = INTEGER_ONLY[op][0] if op in INTEGER_ONLY else KERNELS[op].op_class
    return OpSpec(node.name, op, attrs, ops, tuple(node.outputs[:1]), (out_q,),
                  profile.numerics_for(cls, node.op_type, node.name), {})


def _runtime_qop_step(view: GraphView, unit: Unit, profile: Profile) -> Step:
    """A QOperator node whose scales or zero points are graph inputs: lowered on every run."""
    node = unit.anchor

    def kernel(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        values = dict(view.consts)
        values.update({n: a for n, a in zip(node.inputs, args, strict=True) if n and a is not None})
        spec = _qop_spec(view, node, profile, values)
        out = _build_quantized(spec, unit, profile, {})([op.const for op in spec.inputs])
        dtype = "int32" if spec.op_type in INTEGER_ONLY else spec.out_q.dtype
        return [np.asarray(out[0]).astype(dtype)]

    names = tuple("" if (not n or n in view.consts) else n for n in node.inputs)
    consts = tuple(view.consts.get(n) if n else None for n in node.inputs)
    return Step(node.name, names, consts, tuple(node.outputs[:1]), kernel, (None,))


def _single(view: GraphView, node: GNode, profile: Profile,
            consts: Mapping[str, np.ndarray] | None = None) -> tuple[OpSpec, Kernel]:
    known = view.consts if consts is None else consts
    ops = tuple(Operand(n, known.get(n) if n else None) for n in node.inputs)
    if node.domain == "" and node.op_type in BOUNDARY:
        num = profile.numerics_for("quantize", node.op_type, node.name)
        spec = OpSpec(node.name, node.op_type, node.attrs, ops, tuple(node.outputs), tuple(None for _ in node.outputs),
                      num)
        return spec, BOUNDARY[node.op_type](spec)
    entry = KERNELS.get(node.op_type) if node.domain == "" else None
    if entry is None:
        raise UnsupportedOpError(
            f"the engine has no kernel for op {node.op_type!r}"
            f"{' (domain ' + node.domain + ')' if node.domain else ''} at node {node.name!r}; "
            f"supported: {', '.join(sorted(KERNELS))} and QDQ/QOperator forms; "
            "no silent float fallback is made"
        )
    num = profile.numerics_for(entry.op_class, node.op_type, node.name)
    spec = OpSpec(node.name, node.op_type, node.attrs, ops, tuple(node.outputs),
                  tuple(None for _ in node.outputs), num,
                  {"fixed_batch_one": view.fixed_batch_one, "opset": view.opset})
    return spec, entry.build_float(spec)


def _node_class(node: GNode) -> str:
    op = LAYOUT[node.op_type][0] if node.op_type in LAYOUT else node.op_type
    if op in INTEGER_ONLY:
        return INTEGER_ONLY[op][0]
    if op == "QLinearConcat":
        return "concat"
    return KERNELS[op].op_class if op in KERNELS else "quantize"


def _check_node_overrides(view: GraphView, profile: Profile) -> None:
    """Node overrides must name nodes of the model, and a stated class must be the node's."""
    nodes = {n.name: n for n in view.nodes}
    unknown = sorted(set(profile.nodes) - set(nodes))
    if unknown:
        hints = {u: difflib.get_close_matches(u, list(nodes), n=1) for u in unknown}
        raise ProfileError(
            "profile overrides name node(s) that are not in the model: "
            + ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
        )
    for name, claimed in profile.node_class_claims().items():
        actual = _node_class(nodes[name])
        if claimed - {actual}:
            raise ProfileError(
                f"override nodes.{name}.{sorted(claimed - {actual})[0]}.*: node {name!r} "
                f"({nodes[name].op_type}) reads the {actual!r} class; use nodes.{name}.{actual}.<knob>"
            )


def _evaluate(view: GraphView, profile: Profile, node: GNode, consts: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """One node on constant inputs (compile-time folding), with the profile's kernels."""
    _spec, kernel = _single(view, node, profile, consts)
    return kernel([consts.get(n) if n else None for n in node.inputs])


def _wants_ort_weights(profile: Profile, node: GNode) -> bool:
    cls = "gemm" if node.op_type == "Gemm" else "conv"
    return profile.numerics_for(cls, node.op_type, node.name).float_weights == "ort_quantize"


def compile_program(model: ir.Model, profile: Profile) -> Program:
    view = read_graph(model)
    _check_node_overrides(view, profile)
    notes: dict[str, str] = {}
    weight_notes: dict[str, str] = {}
    view = fold_constants(view, model, lambda node, consts: _evaluate(view, profile, node, consts))
    view = quantize_float_weights(view, lambda node: _wants_ort_weights(profile, node), weight_notes)
    shapes: list[Mapping[str, tuple[int | None, ...]]] = []

    def dims() -> Mapping[str, tuple[int | None, ...]]:  # shape inference once, and only when asked
        if not shapes:
            shapes.append(static_dims(model))
        return shapes[0]

    view = pushed_windows(view, dims)
    view, crops = causal_crops(view, plan_units(view), dims)
    channels_last = _has_depthwise(view)
    steps = []
    for unit in plan_units(view):
        try:
            steps.append(_unit_step(view, unit, profile, notes, crops, channels_last))
        except Ungroupable:
            for n in [unit.anchor, *unit.folded, *unit.q]:
                steps.append(_unit_step(view, Unit("node", n), profile, notes))
    return Program(_live(steps, view.outputs), view.inputs, view.outputs, view.consts, notes, weight_notes,
                   split_blocker(view, model))


def _has_depthwise(view: GraphView) -> bool:
    """Whether the model has a depthwise conv: its batched convs then hand on channels-last
    results (the layout the depthwise kernel works in) instead of channels first."""
    for node in view.nodes:
        index = {"Conv": 1, "QLinearConv": 3}.get(node.op_type)
        if index is None or len(node.inputs) <= index:
            continue
        name = node.inputs[index]
        producer = view.producer.get(name)
        if producer is not None and producer.op_type == "DequantizeLinear":  # QDQ: the weights' codes
            name = producer.inputs[0]
        w = view.consts.get(name)
        if w is not None and w.ndim > 2 and w.shape[1] == 1 and int(node.attrs.get("group", 1)) > 1:
            return True
    return False


def _live(steps: list[Step], outputs: Sequence[str]) -> list[Step]:
    needed = set(outputs)
    kept: list[Step] = []
    for step in reversed(steps):
        if needed.intersection(step.outputs):
            kept.append(step)
            needed.update(n for n in step.inputs if n)
    return kept[::-1]
