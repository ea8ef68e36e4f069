"""Tensors without a sample axis (issue 8 item 2): PyTorch's ``x.view(x.size(0), -1)`` exports a
Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain whose tensors hold one value per batch.
Probe plans leave them out, and compare and localize work on such a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from defect_target import DefectTarget
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from qprobe.backends import create_backend
from qprobe.compare import compare_backends
from qprobe.errors import InputError
from qprobe.localize import localize
from qprobe.model.graph import sample_tensors
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model
from qprobe.model.probe import plan_probes
from qprobe.model.quant import build_quant_index

SHAPE_TENSORS = {"shape", "batch", "batch1", "target_shape"}


class _Reader(CalibrationDataReader):
    def __init__(self) -> None:
        data = np.random.default_rng(1).uniform(0, 1, (8, 2, 4, 4)).astype(np.float32)
        self._it = iter([{"x": data[i : i + 1]} for i in range(8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _flatten_model(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(0, 0.5, (3, 2, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.zeros(3, np.float32), "b"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
            numpy_helper.from_array(rng.normal(0, 0.3, (48, 5)).astype(np.float32), "wg")]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Shape", ["r"], ["shape"], name="shape_of"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="batch_dim", axis=0),
        helper.make_node("Identity", ["batch"], ["batch1"], name="batch_copy"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target_shape"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["r", "target_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "wg"], ["y"], name="head"),
    ]
    g = helper.make_graph(nodes, "view_flatten",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], init)
    fp, qp = tmp / "float.onnx", tmp / "int8.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), fp)
    quantize_static(str(fp), str(qp), _Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return qp


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(_flatten_model(tmp_path_factory.mktemp("flatten")))


def test_shape_computations_are_not_per_sample_and_not_probed(model: ir.Model) -> None:
    live = sample_tensors(model)
    assert not SHAPE_TENSORS & live
    assert any(t.startswith("flat") for t in live)  # the reshaped data itself is per sample
    for mode in ("all", "op-outputs"):
        assert not SHAPE_TENSORS & set(plan_probes(model, build_quant_index(model), mode).tensors)
    with pytest.raises(InputError, match="carries no per-sample data"):
        plan_probes(model, build_quant_index(model), ["target_shape"])


def test_compare_and_localize_run_on_the_flatten_model(model: ir.Model) -> None:
    inputs = random_inputs(model, 6, seed=2)
    cmp = compare_backends(model, create_backend("ort"), create_backend("ort-fused"), inputs, probe="all")
    assert cmp.passed and cmp.num_samples == 6
    for strategy in ("probe-all", "isolate", "bisect"):
        loc = localize(model, create_backend("ort"), DefectTarget(["head"], 0.8), inputs, strategy=strategy)
        assert loc.divergence.culprit is not None and loc.divergence.culprit.op == "head", strategy
