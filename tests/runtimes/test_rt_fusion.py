"""Fusion maps without a runtime: resolving runtime names, absorbing renamed fusions, merging groups.

The oracle is the hand-built graph itself: which nodes exist, which are Q/DQ, which feed which.
"""

from __future__ import annotations

import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from qprobe.backends.fusion import FusionMap, RawKernel, build_fusion_map, merged_groups, resolve
from qprobe.errors import BackendError
from qprobe.model.loader import model_from_proto


def _silu_qdq() -> ir.Model:
    """x -> Q -> DQ -> Conv -> Sigmoid -> Mul(conv, sig) -> Q -> DQ -> Relu -> y."""
    one = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zp = helper.make_tensor("z", TensorProto.INT8, [], [0])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2, 1, 1], [1.0, 0.0, 0.0, 1.0])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="x_q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="x_dq"),
        helper.make_node("Conv", ["xd", "w"], ["c"], name="conv"),
        helper.make_node("Sigmoid", ["c"], ["g"], name="sig"),
        helper.make_node("Mul", ["c", "g"], ["m"], name="mul"),
        helper.make_node("QuantizeLinear", ["m", "s", "z"], ["mq"], name="m_q"),
        helper.make_node("DequantizeLinear", ["mq", "s", "z"], ["md"], name="m_dq"),
        helper.make_node("Relu", ["md"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])], [one, zp, w],
    )
    return model_from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


ORIGIN = {n: n for n in ("x_q", "x_dq", "conv", "sig", "mul", "m_q", "m_dq", "relu")} | {
    "conv/WithoutBiases": "conv", "Subtract_7": "m_dq",
}


@pytest.mark.parametrize(("name", "node"), [
    ("conv", "conv"), ("conv/WithoutBiases", "conv"), ("Subtract_7_0", "m_dq"), ("m_dq/duplicated", "m_dq"),
    ("conv/WithoutBiases/DequantizationSubtract", "conv"), ("Multiply_4429", None), ("", None),
])
def test_runtime_names_resolve_to_the_node_they_were_derived_from(name: str, node: str | None) -> None:
    assert resolve(name, ORIGIN) == node


def test_a_fusion_that_dropped_a_name_is_attributed_to_the_kernel_around_it() -> None:
    model = _silu_qdq()
    raw = [
        RawKernel("q", "Subgraph", "f32", "i8", ("x_q", "x_dq")),
        # Swish fusion: the kernel names conv and mul, not sig
        RawKernel("conv/WithoutBiases", "Convolution", "i8", "i8", ("conv/WithoutBiases", "mul", "m_q", "Subtract_7")),
        RawKernel("relu", "Eltwise", "f32", "f32", ("relu", "Made_by_runtime_3")),
    ]
    fmap = build_fusion_map("openvino", raw, ORIGIN, model)
    conv = fmap.kernels[1]
    assert conv.nodes == ("conv", "mul", "m_q", "m_dq")
    assert conv.absorbed == ("sig",)
    assert fmap.absent == ()
    assert fmap.unresolved == ("Made_by_runtime_3",)
    assert fmap.groups(model) == [("conv", "sig", "mul", "m_q", "m_dq")]
    assert FusionMap.loads(fmap.dumps()) == fmap


def test_groups_need_two_compute_nodes_and_merge_through_shared_compute_nodes_only() -> None:
    model = _silu_qdq()
    # Q/DQ-only overlap (m_dq) does not merge; a shared compute node (mul) does
    assert merged_groups([("conv", "m_q"), ("m_dq", "relu")], model) == []
    assert merged_groups([("sig", "mul", "m_q"), ("m_q", "m_dq", "relu")], model) == [("sig", "mul", "m_q")]
    assert merged_groups([("conv", "sig"), ("mul", "relu"), ("sig", "mul")], model) == [
        ("conv", "sig", "mul", "relu")
    ]


def test_a_node_no_kernel_covers_and_no_kernel_surrounds_is_reported_absent() -> None:
    model = _silu_qdq()
    fmap = build_fusion_map("x", [RawKernel("k", "Eltwise", "f32", "f32", ("relu",))], ORIGIN, model)
    assert fmap.absent == ("conv", "sig", "mul")


def test_a_document_of_another_kind_is_refused() -> None:
    with pytest.raises(BackendError, match="not a fusion map"):
        FusionMap.from_json({"schema": "qprobe.comparison/1"})
