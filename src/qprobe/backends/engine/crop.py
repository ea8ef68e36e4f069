"""Causal convolutions: a quantized Conv whose codes only feed a Slice that keeps the first
positions computes only those positions.

Temporal nets pad a convolution on both sides and cut the tail off afterwards (PyTorch
TCNs' ``Chomp1d``: ``Conv(pads=[p, p]) -> x[..., :-p]``; or ``x[..., :T]``): the positions
cut away are computed and dropped, a third to a half of the convolution's work. When the
Conv's output codes are read only by one DequantizeLinear -> Slice that starts at 0 with
step 1 on spatial axes (and none of the tensors in between is a graph output, so nothing
can observe the dropped positions), the Conv computes the kept positions only
(``Correlator(crop=...)``, ``crops[conv] = ends``) and the Slice, when its ends count from
the end, is given ends that keep its (now cropped) input whole. Every visible tensor keeps
its codes: the kept positions are computed exactly as before.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from qprobe.backends.engine.graph import GNode, GraphView, Unit

KEEP_ALL = np.iinfo(np.int64).max


def causal_crops(view: GraphView, units: list[Unit]) -> tuple[GraphView, dict[str, tuple[int | None, ...]]]:
    """The view (Slices rewritten where needed) and, per cropped Conv, the end of each spatial axis."""
    outputs = set(view.outputs)
    crops: dict[str, tuple[int | None, ...]] = {}
    renamed: dict[int, GNode] = {}
    consts = dict(view.consts)
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
        crops[node.name] = ends
        if any(e is not None and e < 0 for e in ends):  # relative ends: the cropped input is kept whole
            renamed[id(found)] = _keep_whole(found, ends, consts)
    if not renamed:
        return view, crops
    nodes = [renamed.get(id(n), n) for n in view.nodes]
    return dataclasses.replace(view, nodes=nodes, consts=consts, producer={}, consumers=defaultdict(list)), crops


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


def _const(view: GraphView, node: GNode, i: int) -> np.ndarray | None:
    name = node.inputs[i] if len(node.inputs) > i else ""
    return np.asarray(view.consts[name]).reshape(-1).astype(np.int64) if name in view.consts else None


def _spatial_ends(view: GraphView, node: GNode, rank: int) -> tuple[int | None, ...] | None:
    """The Slice's end on each spatial axis (None: not sliced), when it starts at 0 with step 1 on
    spatial axes only; None when it does anything else."""
    starts, ends, axes = _const(view, node, 1), _const(view, node, 2), _const(view, node, 3)
    steps = _const(view, node, 4) if len(node.inputs) > 4 and node.inputs[4] else None
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


def _keep_whole(node: GNode, ends: tuple[int | None, ...], consts: dict[str, np.ndarray]) -> GNode:
    """The Slice with ends that keep everything on the cropped axes (a new constant: others may share it)."""
    name = f"{node.inputs[2]}__{node.name}__cropped"
    old = np.asarray(consts[node.inputs[2]])
    axes = np.asarray(consts[node.inputs[3]]).reshape(-1).astype(np.int64)
    rank = len(ends) + 2
    new = old.reshape(-1).astype(np.int64).copy()
    for i, a in enumerate(axes.tolist()):
        if ends[int(a) % rank - 2] is not None and new[i] < 0:
            new[i] = np.iinfo(old.dtype).max if old.dtype.kind == "i" else KEEP_ALL
    consts[name] = new.astype(old.dtype).reshape(old.shape)
    inputs = list(node.inputs)
    inputs[2] = name
    return dataclasses.replace(node, inputs=inputs)
