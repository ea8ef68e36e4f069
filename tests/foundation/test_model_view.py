"""QuantIndex, probe plans and inputs on small QDQ models built with onnxruntime's quantizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from qprobe.backends import create_backend
from qprobe.errors import InputError
from qprobe.model.inputs import load_inputs, random_inputs
from qprobe.model.loader import load_model, to_proto
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index

from models.residual import qdq_residual_model


@pytest.fixture(scope="module")
def qdq_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return qdq_residual_model(tmp_path_factory.mktemp("m"))


def test_quant_index_reads_scales_from_the_graph(qdq_path: Path) -> None:
    m = load_model(qdq_path)
    idx = build_quant_index(m)
    proto = onnx.load(str(qdq_path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    q_nodes = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert set(idx.tensors) == {n.output[0] for n in q_nodes if n.input[1] in inits}
    for n in q_nodes:
        p = idx.tensors[n.output[0]]
        assert p.scale[0] == float(inits[n.input[1]])
        assert p.zero_point[0] == int(inits[n.input[2]])
        assert p.dtype == "int8"
    add = idx.op("add")
    ratios = idx.scale_ratios(add)
    assert ratios is not None
    out_s = idx.tensors[add.q_outputs[0]].scale[0]  # type: ignore[index]
    want = [idx.tensors[q].scale[0] / out_s for q in add.q_inputs if q]
    assert ratios == pytest.approx(want)
    assert [o.name for o in idx.ops] == ["conv1", "conv2", "add", "gap", "flatten", "gemm"]


def test_probing_keeps_names_and_final_outputs(qdq_path: Path) -> None:
    m = load_model(qdq_path)
    idx = build_quant_index(m)
    for mode in ("op-outputs", "all"):
        plan = plan_probes(m, idx, mode)
        probed = apply_probe_plan(m, plan)
        before, after = to_proto(m), to_proto(probed)
        assert [n.name for n in before.graph.node] == [n.name for n in after.graph.node]
        assert [list(n.output) for n in before.graph.node] == [list(n.output) for n in after.graph.node]
        assert [o.name for o in after.graph.output][: len(before.graph.output)] == [o.name for o in before.graph.output]
        assert set(plan.added_outputs) <= {o.name for o in after.graph.output}
        inp = random_inputs(m, 4, 0)
        for spec in ("ort", "ort-fused"):
            b = create_backend(spec)
            plain = b.open(m).run(inp.arrays)
            probed_out = b.open(probed).run(inp.arrays)
            for k, v in plain.items():
                np.testing.assert_array_equal(v, probed_out[k])
            for t in plan.added_outputs:
                if t in idx.tensors:
                    assert probed_out[t].dtype == np.int8  # probes of QDQ graphs are int8 codes


def test_explicit_probe_names_are_checked(qdq_path: Path) -> None:
    m = load_model(qdq_path)
    with pytest.raises(InputError, match="did you mean"):
        plan_probes(m, build_quant_index(m), "c1_QuantizeLinear_Outpt")


def test_inputs_from_npz_checked(qdq_path: Path, tmp_path: Path) -> None:
    m = load_model(qdq_path)
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((5, 3, 8, 8), np.float32))
    assert load_inputs(m, good).num_samples == 5
    extra_axis = tmp_path / "extra.npz"
    np.savez(extra_axis, x=np.zeros((5, 1, 3, 8, 8), np.float32))
    assert load_inputs(m, extra_axis).arrays["x"].shape == (5, 3, 8, 8)
    cases = {
        "missing": ({"y": np.zeros((5, 3, 8, 8), np.float32)}, "no array for model input"),
        "shape": ({"x": np.zeros((5, 3, 8, 9), np.float32)}, "dimension 3 is 9"),
        "rank": ({"x": np.zeros((5, 8, 8), np.float32)}, "does not fit"),
        "dtype": ({"x": np.zeros((5, 3, 8, 8), np.int32)}, "dtype int32"),
    }
    for name, (arrays, msg) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrays)
        with pytest.raises(InputError, match=msg):
            load_inputs(m, p)


def test_random_inputs_like_stedgeai(qdq_path: Path) -> None:
    m = load_model(qdq_path)
    a = random_inputs(m)  # 10 samples, seed 42, uniform [0, 1)
    b = random_inputs(m)
    assert a.num_samples == 10
    np.testing.assert_array_equal(a.arrays["x"], b.arrays["x"])
    assert a.arrays["x"].min() >= 0 and a.arrays["x"].max() < 1
    q = random_inputs(m, 50, 1, mode="qrange").arrays["x"]
    s = build_quant_index(m).tensors["x_QuantizeLinear_Output"]
    lo, hi = (s.qmin - s.zero_point[0]) * s.scale[0], (s.qmax - s.zero_point[0]) * s.scale[0]
    assert q.min() >= lo - 1e-6 and q.max() <= hi + 1e-6


def test_models_with_external_data_load(qdq_path: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(qdq_path))
    ext = tmp_path / "ext.onnx"
    onnx.save(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
              size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    m = load_model(ext)
    inp = random_inputs(m, 3, 1)
    got = create_backend("ort").open(m).run(inp.arrays)
    want = create_backend("ort").open(load_model(qdq_path)).run(inp.arrays)
    np.testing.assert_array_equal(got["y"], want["y"])


def test_quant_index_of_a_qoperator_model(tmp_path: Path) -> None:
    from models.residual import qoperator_residual_model

    path = qoperator_residual_model(tmp_path)
    proto = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    idx = build_quant_index(load_model(path))
    add = next(n for n in proto.graph.node if n.op_type == "QLinearAdd")
    view = idx.op(add.name)
    assert view.q_inputs == (add.input[0], add.input[3]) and view.q_outputs == (add.output[0],)
    out = idx.tensors[add.output[0]]
    assert out.scale[0] == float(inits[add.input[6]]) and out.zero_point[0] == int(inits[add.input[7]])
    assert out.dtype == "uint8"
    want = [float(inits[add.input[1]]) / out.scale[0], float(inits[add.input[4]]) / out.scale[0]]
    assert idx.scale_ratios(view) == pytest.approx(want)
    # probing a QOperator model exposes the uint8 outputs of its QLinear ops, unchanged
    plan = plan_probes(load_model(path), idx, "op-outputs")
    assert add.output[0] in plan.tensors


def test_mul_reports_its_one_multiplier_and_float_operand_adds_are_not_int8(tmp_path: Path) -> None:
    """Issue 8 item 8: a Mul's requantization is s_a*s_b/s_out, not per-operand ratios; an Add with a
    float operand is no int8 eltwise op, so no ratio is flagged for it."""
    from onnx import TensorProto, helper, numpy_helper

    c = {n: numpy_helper.from_array(np.asarray(v, d), n) for n, v, d in [
        ("sa", 0.2, np.float32), ("sb", 0.25, np.float32), ("so", 0.01, np.float32), ("z", 0, np.int8),
        ("f", [1.5], np.float32)]}
    nodes = [
        helper.make_node("QuantizeLinear", ["a", "sa", "z"], ["aq"], name="qa"),
        helper.make_node("DequantizeLinear", ["aq", "sa", "z"], ["ad"], name="dqa"),
        helper.make_node("QuantizeLinear", ["b", "sb", "z"], ["bq"], name="qb"),
        helper.make_node("DequantizeLinear", ["bq", "sb", "z"], ["bd"], name="dqb"),
        helper.make_node("Mul", ["ad", "bd"], ["m"], name="mul"),
        helper.make_node("QuantizeLinear", ["m", "so", "z"], ["mq"], name="qm"),
        helper.make_node("DequantizeLinear", ["mq", "so", "z"], ["md"], name="dqm"),
        helper.make_node("Add", ["md", "b"], ["s"], name="float_add"),
        helper.make_node("QuantizeLinear", ["s", "so", "z"], ["sq"], name="qs"),
    ]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ("a", "b")]
    g = helper.make_graph(nodes, "g", vi, [helper.make_tensor_value_info("sq", TensorProto.INT8, ["N", 4])],
                          list(c.values()))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    idx = build_quant_index(load_model(tmp_path / "m.onnx"))
    mul, add = idx.op("mul"), idx.op("float_add")
    assert idx.scale_ratios(mul) is None and idx.multiplier(mul) == pytest.approx(0.2 * 0.25 / 0.01)
    assert add.q_inputs[1] is None and idx.scale_ratios(add) is None and idx.multiplier(add) is None
