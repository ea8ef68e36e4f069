"""Model Explorer overlays: node-data files in the format of ``model_explorer.node_data_builder``.

One file per metric (``accumulated_cos.json``, ``local_cos.json``, ``mean_delta_lsb.json``,
``exact_pct.json``), each a ``ModelNodeData``: ``{graph id: GraphNodeData}`` with ``results``
(node id -> ``{"value": number}``), a display ``name`` and ``thresholds`` that colour failing
nodes red. The values and node ids come from the report's ``overlay`` view (see
``report.overlay``). ``open_model_explorer`` starts Model Explorer (the optional extra
``qprobe[explorer]``) on localhost with the model and the overlays loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from qprobe import serde
from qprobe.errors import InputError
from qprobe.fileio import atomic_write_text
from qprobe.report.document import Report

FOLDER = "model_explorer"
HOST = "localhost"
# the optional fields of GraphNodeData with their defaults, written out as its own serializer writes them
GRAPH_DEFAULTS: dict[str, Any] = {
    "gradient": [], "hideInAggregatedStatsTable": False, "hideInChildrenStatsTable": False,
    "showExpandedSummaryOnGroupNode": False, "showLabelCountColumnsInChildrenStatsTable": False,
}


def node_data(metric: dict[str, Any], graph_id: str) -> dict[str, Any]:
    """One metric as Model Explorer's ``ModelNodeData`` JSON."""
    graph = {"results": {k: {"value": v} for k, v in metric["values"].items()}, "name": metric["name"],
             "thresholds": metric["thresholds"], **GRAPH_DEFAULTS}
    return {graph_id: graph}


def write_overlays(report: Report, out_dir: Path) -> list[Path]:
    """Write one node-data file per metric into ``out_dir``; returns the files."""
    overlay = report.views.get("overlay")
    if not overlay:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for metric in overlay["metrics"]:
        path = out_dir / metric["file"]
        atomic_write_text(path, serde.dumps(node_data(metric, overlay["graph_id"])) + "\n")
        files.append(path)
    return files


def model_file(report: Report, report_dir: Path) -> Path:
    """The model whose node ids the overlays use (a renamed copy in the report folder, else the original)."""
    overlay = report.views.get("overlay") or {}
    name = overlay.get("model_file")
    if not name:
        raise InputError("this report records no model file for Model Explorer; rerun diagnose to write one")
    path = Path(name) if Path(name).is_absolute() else report_dir / name
    if not path.is_file():
        raise InputError(f"the model {str(path)!r} of this report is missing; Model Explorer needs it")
    return path


def open_model_explorer(report: Report, report_dir: Path, overlays: list[Path]) -> None:
    """Start Model Explorer on localhost with the model and the overlays (blocks until it is stopped)."""
    try:
        me = importlib.import_module("model_explorer")
        importlib.import_module("model_explorer_onnx")
    except ImportError as e:
        raise InputError("Model Explorer is not installed: pip install 'qprobe[explorer]' "
                         "(ai-edge-model-explorer and its ONNX adapter model-explorer-onnx)") from e
    model = model_file(report, report_dir)
    node_data_list = [{"name": p.stem.replace("_", " "), "node_data_path": str(p)} for p in overlays]
    me.visualize(model_paths=[str(model)], host=HOST, extensions=["model_explorer_onnx"], node_data=node_data_list)
