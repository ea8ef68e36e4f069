"""The Model Explorer overlays load in Model Explorer's own data classes, cover every node its ONNX
adapter shows, and their thresholds colour exactly the failing nodes; ``--open-model-explorer``
starts it on localhost with the model and the overlays."""

from __future__ import annotations

import json
from pathlib import Path

import model_explorer as me  # the dev extra installs Model Explorer and its ONNX adapter
import model_explorer.node_data_builder as ndb
import model_explorer_onnx.main as adapter
import onnx
import pytest
from report_support import TCN_PASSING, load, qprobe

from qprobe.cli.common import example_paths

METRICS = ("accumulated_cos", "local_cos", "mean_delta_lsb", "exact_pct")


def adapter_ids(model: Path) -> tuple[str, set[str]]:
    """(graph id, node ids) as Model Explorer's ONNX adapter shows the model: the oracle of coverage."""
    graph = adapter.ONNXAdapter().convert(str(model), {})["graphs"][0]
    return graph.id, {n.id for n in graph.nodes}


def as_classes(doc: dict) -> object:  # type: ignore[type-arg]
    return ndb.ModelNodeData(graphsData={gid: ndb.GraphNodeData(
        results={k: ndb.NodeDataResult(**v) for k, v in g["results"].items()}, name=g["name"],
        thresholds=[ndb.ThresholdItem(**t) for t in g["thresholds"]]) for gid, g in doc.items()})


def colour(value: float, thresholds: list[dict]) -> str | None:  # type: ignore[type-arg]
    """Model Explorer's rule (node_data_builder): the first threshold the value is <= to."""
    return next((t["bgColor"] for t in thresholds if value <= t["value"]), None)


@pytest.mark.parametrize("metric", METRICS)
def test_each_overlay_loads_in_model_explorers_classes_and_covers_every_node(tcn_dir: Path, metric: str) -> None:
    doc = json.loads((tcn_dir / "model_explorer" / f"{metric}.json").read_text())
    again = json.loads(as_classes(doc).to_json_string())  # type: ignore[attr-defined]
    assert again == doc
    gid, ids = adapter_ids(example_paths("tcn")[0])
    assert list(doc) == [gid]
    assert set(doc[gid]["results"]) == ids


def test_thresholds_colour_exactly_the_failing_nodes(tcn_dir: Path) -> None:
    r = load(tcn_dir)
    rows = {row["producer"]: row for row in r.comparison["rows"]}  # type: ignore[index]
    doc = json.loads((tcn_dir / "model_explorer" / "accumulated_cos.json").read_text())
    g = next(iter(doc.values()))
    for op, row in rows.items():
        if op in g["results"] and row["st"]["cos"] is not None:
            red = colour(g["results"][op]["value"], g["thresholds"]) == g["thresholds"][0]["bgColor"]
            assert red == (row["st"]["cos"] < 0.99), op
    assert colour(g["results"][r.verdict["culprit"]]["value"], g["thresholds"]) == g["thresholds"][0]["bgColor"]
    delta = next(iter(json.loads((tcn_dir / "model_explorer" / "mean_delta_lsb.json").read_text()).values()))
    for op, row in rows.items():
        if op in delta["results"] and row["lsb"]:
            green = colour(delta["results"][op]["value"], delta["thresholds"]) == delta["thresholds"][1]["bgColor"]
            assert green == (abs(row["lsb"]["mean_delta_lsb"]) <= 0.5), op


def test_a_model_with_unnamed_nodes_gets_a_named_copy_whose_ids_the_overlays_use(tmp_path: Path) -> None:
    proto = onnx.load(str(example_paths("tcn")[0]))
    for n in proto.graph.node:
        n.name = ""
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    out = tmp_path / "report"
    done = qprobe("diagnose", str(bare), "--target", TCN_PASSING, "--random", "4", "-o", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "model.onnx").is_file()
    gid, ids = adapter_ids(out / "model.onnx")
    for metric in METRICS:
        doc = json.loads((out / "model_explorer" / f"{metric}.json").read_text())
        assert set(doc[gid]["results"]) == ids


def test_open_model_explorer_serves_the_model_and_overlays_on_localhost(tcn_dir: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from qprobe.cli.report import report

    folder = tmp_path / "copy"
    shutil.copytree(tcn_dir, folder)
    calls: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(me, "visualize", lambda **kw: calls.append(kw))
    report(folder, html=False, md=False, model_explorer=False, open_explorer=True)
    (kw,) = calls
    assert kw["host"] == "localhost"
    assert kw["model_paths"] == [str(example_paths("tcn")[0].resolve())]
    assert "model_explorer_onnx" in kw["extensions"]
    assert sorted(Path(d["node_data_path"]).name for d in kw["node_data"]) == sorted(f"{m}.json" for m in METRICS)
