"""Causal convolutions: a quantized Conv whose codes only feed a Slice that keeps the first
positions computes only those positions.

Temporal nets pad a convolution on both sides and cut the tail off afterwards (PyTorch
TCNs' ``Chomp1d``: ``Conv(pads=[p, p]) -> x[..., :-p]``; or ``x[..., :T]``): the positions
cut away are computed and dropped, a third to a half of the convolution's work. When the
Conv's output codes are read only by one DequantizeLinear -> Slice that starts at 0 with
step 1 on spatial axes (and none of the tensors in between is a graph output, so nothing
can observe the dropped positions), the Conv computes the kept positions only
(``Correlator(crop=...)``, ``crops[conv] = ends``); ends counted from the end are turned
into counts where the output width is static (else no crop), and the Slice is given those
counts as its ends, which keep the same positions of the full and of the cropped input.
Every visible tensor keeps its codes: the kept positions are computed exactly as before.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np

from qprobe.backends.engine.graph import GNode, GraphView, Unit


def causal_crops(view: GraphView, units: list[Unit], dims: Callable[[], Mapping[str, tuple[int | None, ...]]]
                 ) -> tuple[GraphView, dict[str, tuple[int | None, ...]]]:
    """The view and, per cropped Conv, the number of outputs to compute on each spatial axis (None: all).

    ``dims()`` gives the static shapes (``fold.static_dims``; called only when a Slice counts
    from the end): an end counted from the end becomes a count only where the Conv's output
    width is known, and that Slice is given the count as its end (the same positions on the
    full width as on the cropped one, so a Conv kernel that ignores the crop, a float
    fallback, still gives the same result through it).
    """
    outputs = set(view.outputs)
    crops: dict[str, tuple[int | None, ...]] = {}
    shapes: Mapping[str, tuple[int | None, ...]] | None = None
    consts = dict(view.consts)
    renamed: dict[int, GNode] = {}
    for unit in units:
        node = unit.anchor
        if unit.kind != "group" or node.op_type != "Conv" or len(unit.q) != 1:
            continue
        found = _slice_after(view, unit.q[0].outputs[0], outputs)
        w = view.consts.get(unit.dq[1].inputs[0]) if 1 in unit.dq else None
        if found is None or w is None:
            continue
        ends = _spatial_ends(view, found, w.ndim)
        if ends is None:
            continue
        if any(e is not None and e < 0 for e in ends):
            shapes = dims() if shapes is None else shapes
            counted = _counted(ends, shapes.get(node.outputs[0]))
            if counted is None:
                continue
            renamed[id(found)] = _with_ends(found, counted, consts)
            ends = counted
        if any(e is not None for e in ends):
            crops[node.name] = ends
    if not renamed:
        return view, crops
    nodes = [renamed.get(id(n), n) for n in view.nodes]
    return dataclasses.replace(view, nodes=nodes, consts=consts, producer={}, consumers=defaultdict(list)), crops


def _with_ends(node: GNode, counts: tuple[int | None, ...], consts: dict[str, np.ndarray]) -> GNode:
    """The Slice with its ends as counts from the start (a new constant: other Slices may share the old one)."""
    name = f"{node.inputs[2]}__{node.name}__counted"
    old = np.asarray(consts[node.inputs[2]])
    axes = np.asarray(consts[node.inputs[3]]).reshape(-1).astype(np.int64)
    rank = len(counts) + 2
    new = old.reshape(-1).astype(np.int64).copy()
    for i, a in enumerate(axes.tolist()):
        count = counts[int(a) % rank - 2]
        if count is not None:
            new[i] = count
    consts[name] = new.astype(old.dtype).reshape(old.shape)
    inputs = list(node.inputs)
    inputs[2] = name
    return dataclasses.replace(node, inputs=inputs)


def _counted(ends: tuple[int | None, ...], shape: tuple[int | None, ...] | None) -> tuple[int | None, ...] | None:
    """Ends counted from the end turned into counts, from the Conv output's static shape."""
    if shape is None or len(shape) != len(ends) + 2:
        return None
    out: list[int | None] = []
    for e, size in zip(ends, shape[2:], strict=True):
        if e is not None and e < 0:
            if size is None:
                return None
            e = max(0, size + e)
        out.append(e)
    return tuple(out)


def _slice_after(view: GraphView, codes: str, outputs: set[str]) -> GNode | None:
    """The one Slice reading ``codes`` through one DequantizeLinear, nothing else reading either."""
    readers = view.consumers.get(codes, [])
    if codes in outputs or len(readers) != 1 or readers[0].op_type != "DequantizeLinear":
        return None
    value = readers[0].outputs[0]
    after = view.consumers.get(value, [])
    if value in outputs or len(after) != 1 or after[0].op_type != "Slice" or after[0].inputs[0] != value:
        return None
    return after[0]


def const_ints(view: GraphView, node: GNode, i: int) -> np.ndarray | None:
    """Input ``i`` of ``node`` as a flat int64 array when it is a constant (None otherwise)."""
    name = node.inputs[i] if len(node.inputs) > i else ""
    return np.asarray(view.consts[name]).reshape(-1).astype(np.int64) if name in view.consts else None


def _spatial_ends(view: GraphView, node: GNode, rank: int) -> tuple[int | None, ...] | None:
    """The Slice's end on each spatial axis (None: not sliced), when it starts at 0 with step 1 on
    spatial axes only; None when it does anything else."""
    starts, ends, axes = const_ints(view, node, 1), const_ints(view, node, 2), const_ints(view, node, 3)
    steps = const_ints(view, node, 4) if len(node.inputs) > 4 and node.inputs[4] else None
    if starts is None or ends is None or axes is None or len({starts.size, ends.size, axes.size}) != 1:
        return None
    if steps is not None and (steps.size != axes.size or (steps != 1).any()):
        return None
    norm = [int(a) % rank for a in axes]
    if (starts != 0).any() or any(a < 2 for a in norm) or len(set(norm)) != len(norm):
        return None
    out: list[int | None] = [None] * (rank - 2)
    for a, e in zip(norm, ends.tolist(), strict=True):
        out[a - 2] = int(e)
    return tuple(out)
