"""Per-node values for Google's Model Explorer: one metric per file, every node of the graph.

Node ids are the ones Model Explorer's ONNX adapter (``model-explorer-onnx``) shows: a node's
name, and ``[value] NAME`` for graph inputs, graph outputs and initializers; the graph id is
the graph's name (``<main>`` when it has none). A node's value is the metric of the tensor
it puts out: a compute node and its QuantizeLinear show the op's output codes, a
DequantizeLinear shows the codes it reads (it only rescales them), a graph output shows its
row. Constants (initializers, Constant nodes, DequantizeLinear of weights) and graph inputs
are the same on both backends by construction: cos 1, Δ 0, 100 % identical. *Accumulated*
values come from the whole model on the target, *local* ones from the op run alone
(measured, or inferred where the op's inputs are identical, see ``report.series``). Nodes with
no value for a metric are listed under ``uncovered``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import onnx_ir as ir

from qprobe.model.graph import DQ_OPS, Q_OPS, const_array, is_constant, name_of
from qprobe.model.quant import QuantIndex

RED, GREEN, AMBER = "#e53935", "#a5d6a7", "#ffcc80"
CONSTANT = {"cos": 1.0, "mean_delta_lsb": 0.0, "exact_pct": 100.0}
METRICS: tuple[tuple[str, str, str, str], ...] = (
    # file key, side, metric, display name
    ("accumulated_cos", "acc", "cos", "qprobe: accumulated cos (whole model on the target)"),
    ("local_cos", "local", "cos", "qprobe: local cos (the op alone, reference inputs)"),
    ("mean_delta_lsb", "acc", "mean_delta_lsb", "qprobe: accumulated mean Δ LSB (reference − target)"),
    ("exact_pct", "acc", "exact_pct", "qprobe: accumulated identical codes %"),
)


def value_id(name: str) -> str:
    """The id the ONNX adapter gives the node it draws for a graph input, output or initializer."""
    return f"[value] {name}"


def _thresholds(metric: str, policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Model Explorer colours a value with the first threshold it is <= to (ascending)."""
    tol = (policy or {}).get("default") or {}
    if metric == "cos":
        return [{"value": math.nextafter(float(tol.get("min_cos", 0.99)), -math.inf), "bgColor": RED},
                {"value": 2.0, "bgColor": GREEN}]
    if metric == "mean_delta_lsb":
        bias = float(tol.get("max_abs_bias_lsb", 0.5))
        return [{"value": math.nextafter(-bias, -math.inf), "bgColor": RED}, {"value": bias, "bgColor": GREEN},
                {"value": 1e12, "bgColor": RED}]
    return [{"value": 90.0, "bgColor": RED}, {"value": math.nextafter(100.0, -math.inf), "bgColor": AMBER},
            {"value": 100.0, "bgColor": GREEN}]


def _source(node: ir.Node, index: QuantIndex) -> str | None:
    """The tensor whose metric a node shows, '' for a constant, None when unknown."""
    if node.op_type == "Constant":
        return ""
    if node.op_type in DQ_OPS:
        src = node.inputs[0]
        return "" if src is None or const_array(src) is not None else name_of(src)
    if node.op_type in Q_OPS:
        return name_of(node.outputs[0])
    if all(is_constant(v) for v in node.inputs):
        return ""
    view = next((o for o in index.ops if o.name == node.name), None)
    if view is not None and view.observed_outputs:
        return view.observed_outputs[0]
    return name_of(node.outputs[0]) if node.outputs else None


def node_sources(model: ir.Model, index: QuantIndex) -> dict[str, str | None]:
    """Every node id the ONNX adapter shows -> the tensor it shows ('' constant, None unknown)."""
    out: dict[str, str | None] = {}
    for v in model.graph.inputs:
        out[value_id(name_of(v))] = ""
    for node in model.graph:
        out[node.name or ""] = _source(node, index)
    for name in model.graph.initializers:
        out.setdefault(value_id(name), "")
    for v in model.graph.outputs:
        producer = v.producer()
        out[value_id(name_of(v))] = _source(producer, index) if producer is not None else ""
    return out


def build_overlay(model: ir.Model, index: QuantIndex, points: Mapping[str, Mapping[str, Any]],
                  policy: Mapping[str, Any]) -> dict[str, Any]:
    """The overlay view: for each metric, node id -> value, the thresholds, and the uncovered nodes."""
    sources = node_sources(model, index)
    files = []
    for key, side, metric, title in METRICS:
        values: dict[str, float] = {}
        uncovered = []
        for node_id, tensor in sources.items():
            if tensor == "":
                values[node_id] = CONSTANT[metric]
                continue
            m = (points.get(tensor or "") or {}).get(side) or {}
            v = m.get(metric)
            if v is None:
                uncovered.append(node_id)
            else:
                values[node_id] = float(v)
        files.append({"key": key, "file": f"{key}.json", "name": title, "metric": metric, "side": side,
                      "values": values, "uncovered": uncovered, "thresholds": _thresholds(metric, policy)})
    return {"graph_id": model.graph.name or "<main>", "nodes": len(sources), "metrics": files}
