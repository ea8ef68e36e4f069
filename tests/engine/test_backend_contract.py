"""The engine honours the Backend contract: spec, capabilities, outputs, errors, overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import mismatch, run_engine, run_ort, with_q_outputs

from qprobe.backends.base import Backend, Session, backend_label, describe_backend
from qprobe.backends.engine import EngineBackend, get_profile
from qprobe.backends.registry import create_backend
from qprobe.errors import ProfileError, UnsupportedOpError

from models.generated import ALL_OPS, random_inputs, random_qdq_model


def test_registry_builds_the_engine_with_overrides() -> None:
    b = create_backend("engine:tflite", {"conv.rounding": "half_up"})
    assert isinstance(b, Backend) and b.spec == "engine:tflite"  # parseable: spec + options rebuild it
    assert backend_label(b) == "engine:tflite (set conv.rounding=half_up)"
    assert describe_backend(b) == {"spec": "engine:tflite", "options": {"conv.rounding": "half_up"}}
    assert isinstance(b, EngineBackend) and b.profile.classes["conv"].rounding == "half_up"
    caps = b.capabilities()
    assert caps.deterministic and caps.max_outputs_per_run is None and caps.cost_per_run_s == 0


def test_unknown_profile_or_knob_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match="built-in profiles"):
        create_backend("engine:nope")
    with pytest.raises(ProfileError, match="known knobs"):
        create_backend("engine:exact", {"conv.wobble": "1"})


def test_session_returns_every_output_with_onnxruntime_dtypes() -> None:
    model = with_q_outputs(random_qdq_model(5, num_ops=4))
    feeds = random_inputs(model, 3, 0)
    session = EngineBackend(get_profile("exact")).open(ir.from_proto(model))
    assert isinstance(session, Session)
    got = session.run(feeds)
    ref = run_ort(model, feeds, fused=True)
    assert set(got) == set(ref)
    assert {k: v.dtype for k, v in got.items()} == {k: v.dtype for k, v in ref.items()}
    session.close()


def test_unsupported_op_names_op_and_node() -> None:
    node = helper.make_node("Hardmax", ["x"], ["y"], name="my_hardmax")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(UnsupportedOpError, match="'Hardmax'.*'my_hardmax'") as err:
        EngineBackend(get_profile("exact")).open(ir.from_proto(helper.make_model(graph)))
    assert "\n" not in str(err.value)


def test_node_override_changes_that_node_only() -> None:
    model = with_q_outputs(random_qdq_model(3, ops=("Conv", "Add"), num_ops=4, pow2_share=1.0))
    feeds = random_inputs(model, 8, 3)
    add = next(n.name for n in model.graph.node if n.op_type == "Add")
    base = run_engine(model, feeds, "onnxruntime")
    hit = run_engine(model, feeds, "onnxruntime", {f"nodes.{add}.eltwise.structure": "affine",
                                                    f"nodes.{add}.coeff_bits": "6"})
    changed = set(mismatch(hit, base))
    assert f"{add}_quant_out" in changed
    producers = {n.output[0]: n.name for n in model.graph.node}
    order = [n.output[0] for n in model.graph.node]
    first = min(order.index(t) for t in changed)
    assert producers[order[first]] == f"{add}_quant"
    with pytest.raises(ProfileError, match="not in the model"):
        run_engine(model, feeds, "onnxruntime", {"nodes.no_such_node.rounding": "floor"})
    with pytest.raises(ProfileError, match="reads the 'eltwise' class"):
        run_engine(model, feeds, "onnxruntime", {f"nodes.{add}.conv.rounding": "floor"})


def test_int16_activations_match_unfused_onnxruntime() -> None:
    """onnxruntime runs 16-bit QDQ unfused; only float summation order can differ."""
    diff = total = 0
    for seed in range(12):
        model = with_q_outputs(random_qdq_model(seed, ops=ALL_OPS, num_ops=4, activation_type="int16"))
        feeds = random_inputs(model, 4, seed)
        ref, got = run_ort(model, feeds, fused=False), run_engine(model, feeds)
        for k, v in ref.items():
            if v.dtype.kind in "iu":
                diff += int(np.sum(got[k] != v))
                total += v.size
    assert diff / total < 5e-4, f"{diff}/{total}"


def test_fixed_batch_of_one_still_runs_vectorized() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3])
    shape = numpy_helper.from_array(np.array([1, 12], np.int64), "shape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="flat")
    graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])],
                              [shape])
    feeds = {"x": np.arange(5 * 12, dtype=np.float32).reshape(5, 4, 3)}
    y = run_engine(helper.make_model(graph), feeds, "exact")["y"]
    np.testing.assert_array_equal(y, feeds["x"].reshape(5, 12))


def test_qoperator_model_from_quantize_static(tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_model = tmp_path / "f.onnx"
    onnx.save(_float_net(), float_model)
    data = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": data[i : i + 1]} for i in range(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    out = tmp_path / "q.onnx"
    quantize_static(str(float_model), str(out), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False)
    model = onnx.load(out)
    ops = {n.op_type for n in model.graph.node}
    assert {"QLinearConv", "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearAveragePool", "QLinearLeakyRelu",
            "QLinearSigmoid", "QLinearGlobalAveragePool", "QLinearMatMul", "QGemm"} <= ops, ops
    feeds = {"x": np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)}
    assert mismatch(run_engine(model, feeds, "onnxruntime"), run_ort(model, feeds, fused=False)) == {}


def _float_net() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.4, (4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32), "w2")
    b = numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "b")
    wg = numpy_helper.from_array(rng.normal(0, 0.5, (4, 5)).astype(np.float32), "wg")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2", "b"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c1", "c2"], ["s"], name="add"),
        helper.make_node("Mul", ["s", "c1"], ["m"], name="mul"),
        helper.make_node("Concat", ["m", "s"], ["cat"], name="cat", axis=1),
        helper.make_node("AveragePool", ["cat"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("LeakyRelu", ["ap"], ["lr"], name="leaky", alpha=0.1),
        helper.make_node("Sigmoid", ["lr"], ["sg"], name="sigmoid"),
        helper.make_node("GlobalAveragePool", ["sg"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Slice", ["f", "st", "en", "ax"], ["fs"], name="slice"),
        helper.make_node("MatMul", ["fs", "wg"], ["mm"], name="matmul"),
        helper.make_node("Gemm", ["mm", "wh", "bh"], ["y"], name="gemm", transB=1),
    ]
    wh = numpy_helper.from_array(rng.normal(0, 0.5, (5, 5)).astype(np.float32), "wh")
    bh = numpy_helper.from_array(rng.normal(0, 0.1, (5,)).astype(np.float32), "bh")
    inits = [w1, w2, b, wg, wh, bh, numpy_helper.from_array(np.array([0], np.int64), "st"),
             numpy_helper.from_array(np.array([4], np.int64), "en"),
             numpy_helper.from_array(np.array([1], np.int64), "ax")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model
