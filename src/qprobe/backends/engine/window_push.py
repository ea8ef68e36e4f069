"""Slices pushed up: a Slice that keeps a window of positions on one spatial axis is moved up
through the element-wise ops before it, so that the Conv that starts the chain computes only
the positions the window needs.

TCN classifiers keep one time step of the last residual block (``y[:, :, -1:]``): the block's
Conv, its requantization and the residual Add are computed over every position and all but one
are dropped. Read backwards from such a Slice (window ``[s, e)`` of width ``W`` on axis ``a``):

* QuantizeLinear / DequantizeLinear (quantized per tensor or along another axis) and unary
  element-wise ops (Relu, Clip, ...): the window of their output is the window of their input;
* Add / Sub / Mul (every operand as wide as the output on ``a``, or a constant of width 1
  there): the window of each operand;
* a Slice of step 1 on ``a`` only, starting at ``s0``: the window ``[s0 + s, s0 + e)`` of its
  input; the Slice stays as the identity on it (``DQ -> Slice -> Q`` remains one step on codes);
* a Conv (explicit pads): outputs ``[s, e)`` read the input positions ``[s*st - pb, (e-1)*st +
  ext - pb)``; the Conv gets that part of its input (clipped to ``[0, W_in)``) and the pads
  that make up the rest, so it computes ``e - s`` outputs (``conv_window``).

A tensor read by something else too (a residual branch's input, read by the next Conv) is not
changed: the window is cut out of it for this reader only, on its codes when it is a
DequantizeLinear's output (a new Slice and DequantizeLinear), so that the reader's QDQ group
stays a group. Every tensor changed is read once and is no graph output (a probed run sees
every tensor whole), and every width comes from the static shapes (``fold.static_dims``): where
one is unknown, nothing changes. The kept positions are computed from the same codes by the
same kernels, so the results are identical; the Slice itself stays, as ``[0, e - s)`` of its
new input. Slices that ``crop.causal_crops`` handles (start 0 right after a Conv's codes) are
left to it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from qprobe.backends.engine.crop import const_ints
from qprobe.backends.engine.graph import GNode, GraphView

Dims = Mapping[str, tuple[int | None, ...]]
ELEMENTWISE_UNARY = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Identity"}
ELEMENTWISE_BINARY = {"Add", "Sub", "Mul"}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear"}


@dataclass
class _Edit:
    """The rewrites of one push, applied only when it succeeds."""

    view: GraphView
    dims: Dims
    widths: dict[tuple[str, int], int]  # (renamed tensor, axis) -> its width there (absent from ``dims``)
    axis: int
    replace: dict[int, list[GNode]] = field(default_factory=dict)  # id(original node) -> nodes in its place
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0

    def width(self, name: str, rank: int) -> int | None:
        if (name, self.axis) in self.widths:
            return self.widths[name, self.axis]
        d = self.dims.get(name)
        return d[self.axis] if d is not None and len(d) == rank and self.axis < len(d) else None

    def fresh(self, base: str, s: int, e: int) -> str:
        self.count += 1
        return f"{base}__window{s}_{e}__{self.count}"

    def bounds(self, base: str, s: int, e: int) -> list[str]:
        """Constants ``[s]`` and ``[e]`` (starts, ends) for a Slice named ``base``."""
        names = [f"{base}__window_start{s}", f"{base}__window_end{e}"]
        for n, v in zip(names, (s, e), strict=True):
            self.consts[n] = np.asarray([v], dtype=np.int64)
        return names

    def slice_node(self, x: str, s: int, e: int, before: GNode) -> str:
        """A new Slice of ``x`` to ``[s, e)`` on the axis, placed before ``before``."""
        out = self.fresh(x, s, e)
        axes = f"{out}__axes"
        self.consts[axes] = np.asarray([self.axis], dtype=np.int64)
        self.replace.setdefault(id(before), []).append(
            GNode(out, "Slice", "", [x, *self.bounds(out, s, e), axes], [out], {}))
        self.widths[out, self.axis] = e - s
        return out


def pushed_windows(view: GraphView, dims: Callable[[], Dims]) -> GraphView:
    """The view with every window Slice it can push moved up (see the module docstring);
    ``dims()`` gives the static shapes (called only when a Slice qualifies; the caller memoizes it)."""
    widths: dict[tuple[str, int], int] = {}
    done: set[str] = set()
    for _ in range(4 * len(view.nodes) + 1):  # each pass marks a Slice done; pushes add a few
        for node in reversed(view.nodes):  # the last Slice first: its push may take earlier ones along
            if node.op_type != "Slice" or node.domain != "" or node.name in done:
                continue
            done.add(node.name)
            window = _window(view, node)
            if window is None or _causal(view, node, window):
                continue
            pushed = _push_slice(view, node, window, dims(), widths)
            if pushed is not None:
                view = pushed
                break
        else:
            return view
    return view


def _window(view: GraphView, node: GNode) -> tuple[int, int, int] | None:
    """(axis, start, end) of a Slice of step 1 on one axis >= 2 with constant bounds (raw values)."""
    def const(i: int) -> list[int] | None:
        found = const_ints(view, node, i)
        return None if found is None else found.tolist()

    starts, ends, axes = const(1), const(2), const(3)
    steps = const(4) if len(node.inputs) > 4 and node.inputs[4] else [1]
    if starts is None or ends is None or axes is None or len(starts) != 1 or len(ends) != 1 or len(axes) != 1:
        return None
    if steps != [1] or axes[0] < 0:
        return None
    return (axes[0], starts[0], ends[0]) if axes[0] >= 2 else None


def _causal(view: GraphView, node: GNode, window: tuple[int, int, int]) -> bool:
    """Start 0 right after a Conv's codes (``Conv -> Q -> DQ -> Slice``): crop.causal_crops's case."""
    dq = view.producer.get(node.inputs[0])
    q = view.producer.get(dq.inputs[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    conv = view.producer.get(q.inputs[0]) if q is not None and q.op_type == "QuantizeLinear" else None
    return window[1] == 0 and conv is not None and conv.op_type == "Conv"


def _rank(dims: Dims, name: str) -> int | None:
    d = dims.get(name)
    return len(d) if d is not None else None


def _push_slice(view: GraphView, node: GNode, window: tuple[int, int, int], dims: Dims,
                widths: dict[tuple[str, int], int]) -> GraphView | None:
    axis, s, e = window
    x = node.inputs[0]
    rank = _rank(dims, x)
    if rank is None or axis >= rank:
        return None
    edit = _Edit(view, dims, dict(widths), axis)
    w = edit.width(x, rank)
    if w is None:
        return None
    s, e = _clamped(s, w), _clamped(e, w)
    if not 0 <= s < e <= w or e - s == w:
        return None
    inner = _push(edit, x, s, e, w, rank)
    if inner is None:
        return None
    new = dataclasses.replace(node, inputs=[inner, *edit.bounds(node.name, 0, e - s), *node.inputs[3:]])
    edit.replace.setdefault(id(node), []).append(new)
    widths.update(edit.widths)  # edit.widths began as a copy of widths
    nodes: list[GNode] = []
    for n in view.nodes:
        nodes.extend(edit.replace.get(id(n), [n]))
    return dataclasses.replace(view, nodes=nodes, consts={**view.consts, **edit.consts}, producer={},
                               consumers=defaultdict(list))


def _clamped(v: int, w: int) -> int:
    return max(0, min(w, v + w if v < 0 else v))


def _push(edit: _Edit, t: str, s: int, e: int, w: int, rank: int) -> str | None:
    """A tensor holding ``t[..., s:e, ...]`` (on the axis) made by rewriting ``t``'s producer chain,
    or None where ``t`` cannot change (the caller then cuts the window out)."""
    view = edit.view
    p = view.producer.get(t)
    if p is None or p.domain != "" or t in view.outputs or len(view.consumers.get(t, [])) != 1:
        return None
    op = p.op_type
    if op in QUANT_OPS or op in ELEMENTWISE_UNARY:
        if any(i and i not in view.consts for i in p.inputs[1:]) or not _per_tensor_on(edit, p):
            return None
        inner = _window_of(edit, p.inputs[0], s, e, w, rank, p)
        return None if inner is None else _rewritten(edit, p, [inner, *p.inputs[1:]], t, s, e)
    if op in ELEMENTWISE_BINARY:
        ins: list[str] = []
        for i in p.inputs:
            if i in view.consts:
                c = np.asarray(view.consts[i])
                if c.ndim > rank - edit.axis and c.shape[c.ndim - (rank - edit.axis)] != 1:
                    return None  # a constant varying along the axis
                ins.append(i)
                continue
            if edit.width(i, rank) != w:
                return None  # broadcast along the axis, or unknown
            inner = _window_of(edit, i, s, e, w, rank, p)
            if inner is None:
                return None
            ins.append(inner)
        return _rewritten(edit, p, ins, t, s, e)
    if op == "Slice":
        sub = _window(view, p)
        x = p.inputs[0]
        wx = edit.width(x, rank)
        if sub is None or sub[0] != edit.axis or wx is None:
            return None
        s0 = _clamped(sub[1], wx)
        if not 0 <= s0 + s < s0 + e <= wx:
            return None
        inner = _window_of(edit, x, s0 + s, s0 + e, wx, rank, p)
        if inner is None:
            return None
        # kept as the identity on its new input: a DQ -> Slice -> Q stays one step on the codes
        return _rewritten(edit, p, [inner, *edit.bounds(p.name, 0, e - s), *p.inputs[3:]], t, s, e)
    if op == "Conv":
        return _conv(edit, p, t, s, e, rank)
    return None


def _per_tensor_on(edit: _Edit, node: GNode) -> bool:
    """A Q/DQ whose scale does not vary along the axis (per tensor, or per channel on another axis)."""
    if node.op_type not in QUANT_OPS:
        return True
    scale = edit.view.consts.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if scale is None:
        return False
    return np.asarray(scale).size == 1 or int(node.attrs.get("axis", 1)) != edit.axis


def _window_of(edit: _Edit, x: str, s: int, e: int, w: int, rank: int, reader: GNode) -> str | None:
    """``x``'s window for ``reader``: pushed up when only ``reader`` reads ``x``, else cut out of it
    (from the codes of a DequantizeLinear's output, so that the reader's group stays whole)."""
    if (s, e) == (0, w):
        return x
    view = edit.view
    if len(view.consumers.get(x, [])) == 1 and x not in view.outputs:
        pushed = _push(edit, x, s, e, w, rank)
        if pushed is not None:
            return pushed
    dq = view.producer.get(x)
    if dq is not None and dq.op_type == "DequantizeLinear" and dq.domain == "" and _per_tensor_on(edit, dq):
        codes = edit.slice_node(dq.inputs[0], s, e, reader)
        out = edit.fresh(x, s, e)
        edit.replace.setdefault(id(reader), []).append(
            dataclasses.replace(dq, name=f"{dq.name}__{out}", inputs=[codes, *dq.inputs[1:]], outputs=[out]))
        edit.widths[out, edit.axis] = e - s
        return out
    return edit.slice_node(x, s, e, reader)


def _rewritten(edit: _Edit, node: GNode, inputs: list[str], t: str, s: int, e: int) -> str:
    out = edit.fresh(t, s, e)
    new = dataclasses.replace(node, inputs=inputs, outputs=[out, *node.outputs[1:]])
    edit.replace.setdefault(id(node), []).append(new)
    edit.widths[out, edit.axis] = e - s
    return out


def conv_window(s: int, e: int, w_in: int, stride: int, dilation: int, kernel: int, pad_begin: int
                ) -> tuple[int, int, int, int]:
    """(lo, hi, pad_begin', pad_end'): Conv outputs ``[s, e)`` on one axis are the outputs of the same
    Conv on input positions ``[lo, hi)`` padded by ``pad_begin'``/``pad_end'`` (all of them)."""
    ext = (kernel - 1) * dilation + 1
    first, last = s * stride - pad_begin, (e - 1) * stride + ext - pad_begin  # input positions read: [first, last)
    lo, hi = max(0, first), min(w_in, last)
    return lo, hi, lo - first, last - hi


def _conv(edit: _Edit, conv: GNode, t: str, s: int, e: int, rank: int) -> str | None:
    view, a = edit.view, edit.axis
    if str(conv.attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "b'NOTSET'"):
        return None
    x = conv.inputs[0]
    w_in = edit.width(x, rank)
    weights = conv.inputs[1] if len(conv.inputs) > 1 else ""
    wdq = view.producer.get(weights)
    kshape = conv.attrs.get("kernel_shape")
    if kshape is None:
        wconst = view.consts.get(weights)
        if wconst is None and wdq is not None and wdq.op_type == "DequantizeLinear":
            wconst = view.consts.get(wdq.inputs[0])
        if wconst is None:
            return None
        kshape = list(np.asarray(wconst).shape[2:])
    nd = len(kshape)
    if w_in is None or nd != rank - 2:
        return None
    i = a - 2
    strides = list(conv.attrs.get("strides", [1] * nd))
    dilations = list(conv.attrs.get("dilations", [1] * nd))
    pads = list(conv.attrs.get("pads", [0] * (2 * nd)))
    lo, hi, pb, pe = conv_window(s, e, w_in, int(strides[i]), int(dilations[i]), int(kshape[i]), int(pads[i]))
    if hi <= lo:
        return None
    inner = _window_of(edit, x, lo, hi, w_in, rank, conv)
    if inner is None:
        return None
    pads[i], pads[i + nd] = pb, pe
    out = edit.fresh(t, s, e)
    new = dataclasses.replace(conv, inputs=[inner, *conv.inputs[1:]], outputs=[out, *conv.outputs[1:]],
                              attrs={**conv.attrs, "pads": pads})
    edit.replace.setdefault(id(conv), []).append(new)
    edit.widths[out, edit.axis] = e - s
    return out
