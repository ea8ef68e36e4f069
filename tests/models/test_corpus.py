"""The test-model corpus itself: enough patterns, deterministic builds, runnable models, and
``integer_reference`` flags that say the truth about onnxruntime's optimized graph.

Oracle for the flags: the graph onnxruntime itself writes with ``optimized_model_filepath``
(ORT_ENABLE_ALL, ``session.qdqisint8allowed=1``): a model is integer-reference when every
op left in it is an integer kernel or moves codes, apart from the QuantizeLinear of a float
graph input, the DequantizeLinear of a float graph output, and DequantizeLinear ->
data movement -> QuantizeLinear (moving dequantized values and quantizing them again is
exact: onnxruntime has no integer DepthToSpace, so it runs that way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.corpus import CORPUS, Built

INTEGER_KERNELS = {"QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat",
                   "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu",
                   "QLinearSoftmax", "NhwcMaxPool", "MaxPool", "Transpose", "Reshape", "Flatten", "Slice", "Split",
                   "Squeeze", "Unsqueeze", "Gather", "Concat", "DepthToSpace", "SpaceToDepth", "Identity"}
MOVES = {"DepthToSpace", "SpaceToDepth", "Transpose", "Reshape"}


def test_the_corpus_covers_the_export_patterns() -> None:
    assert len(CORPUS) >= 14
    assert all(e.pattern for e in CORPUS.values())
    wanted = {"flatten_view", "reducemean_pool", "qoperator_constant", "oe_uint8_io", "silu_yolo", "attention",
              "tcn_dilated", "depthwise_separable", "mobilenetv2_block", "einsum", "depth_space", "norm_islands",
              "float_math", "fixed_batch_one"}
    assert wanted <= set(CORPUS)


def test_builds_are_deterministic(tmp_path: Path) -> None:
    for name in ("oe_float_io", "qoperator_constant"):
        a, b = CORPUS[name].build(tmp_path / "a"), CORPUS[name].build(tmp_path / "b")
        assert a.int8.read_bytes() == b.int8.read_bytes()
        assert a.calibration.read_bytes() == b.calibration.read_bytes()


def _session(model: onnx.ModelProto, fused: bool, save: str | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    if save:
        so.optimized_model_filepath = save
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ops(path: Path) -> list[onnx.NodeProto]:
    return list(onnx.load(path).graph.node)


def _float_compute(model_path: Path, optimized: Path) -> list[str]:
    """Ops of onnxruntime's optimized graph that compute in float (see the module docstring)."""
    model = onnx.load(model_path)
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    nodes = _ops(optimized)
    producer = {o: n for n in nodes for o in n.output}
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            users.setdefault(i, []).append(n)
    bad = []
    for n in nodes:
        if n.op_type in INTEGER_KERNELS:
            continue
        if n.op_type == "QuantizeLinear" and (n.input[0] in inputs or producer[n.input[0]].op_type in MOVES):
            continue
        if n.op_type == "DequantizeLinear" and (n.output[0] in outputs or all(
                u.op_type in MOVES for u in users.get(n.output[0], []))):
            continue
        bad.append(n.op_type)
    return bad


@pytest.mark.parametrize("name", list(CORPUS))
def test_integer_reference_flag_matches_onnxruntime_optimized_graph(name: str, corpus: dict[str, Built],
                                                                    tmp_path: Path) -> None:
    built = corpus[name]
    optimized = tmp_path / "optimized.onnx"
    _session(onnx.load(built.int8), fused=True, save=str(optimized))
    float_ops = _float_compute(built.int8, optimized)
    assert built.integer_reference == (not float_ops), float_ops


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_model_runs_in_both_onnxruntime_modes(name: str, corpus: dict[str, Built]) -> None:
    built = corpus[name]
    model = onnx.load(built.int8)
    samples = built.samples()
    assert {i.name for i in model.graph.input} == set(samples)
    fixed = any(i.type.tensor_type.shape.dim[0].dim_value == 1 for i in model.graph.input)
    feeds = {k: v[:1] for k, v in samples.items()} if fixed else samples
    for fused in (False, True):
        out = _session(model, fused).run(None, feeds)
        assert all(np.all(np.isfinite(np.asarray(v, np.float64))) for v in out)
    assert ort.InferenceSession(built.float.read_bytes(), providers=["CPUExecutionProvider"]) is not None
