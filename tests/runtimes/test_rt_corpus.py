"""OpenVINO on the whole test corpus (issue 14): compare with every tensor probed (the probe effect
is always measured for OpenVINO) and localize, on each export pattern."""

from __future__ import annotations

import pytest

from qprobe.backends import create_backend
from qprobe.compare import compare_backends
from qprobe.errors import BackendError
from qprobe.localize import localize
from qprobe.model.inputs import InputSet
from qprobe.model.loader import load_model

from models.corpus import CORPUS, Built

pytest.importorskip("openvino", reason="openvino is not installed (pip install qprobe[openvino])")


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_openvino_compares_and_localizes_every_corpus_model(name: str, corpus: dict[str, Built]) -> None:
    built = corpus[name]
    m = load_model(built.int8)
    x = InputSet({k: v[:8] for k, v in built.samples().items()}, "corpus")
    ov = create_backend("openvino")
    if any(n.domain == "com.microsoft" for n in m.graph):  # onnxruntime's contrib ops: a clear refusal
        with pytest.raises(BackendError, match="has no conversion for com.microsoft.Q"):
            compare_backends(m, create_backend("ort"), ov, x)
        return
    cmp = compare_backends(m, create_backend("ort"), ov, x, probe="all")
    effect = next(e for e in cmp.probe_effects if e.backend.startswith("openvino"))
    assert effect.checked or not cmp.plan.changes_graph  # probe-sensitive: the unprobed run is always made
    assert cmp.deployed or not cmp.plan.changes_graph
    div = localize(m, create_backend("ort"), ov, x).divergence
    assert div.target_runs >= 1 and div.verdict()
