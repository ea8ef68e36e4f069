"""Data movement in QDQ groups (Squeeze, Unsqueeze, Split, Gather, Resize, Pad, Slice) on codes.

Oracle: onnxruntime (fused and unfused agree: moving elements is exact).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import mismatch, run_engine, run_ort


def _chain(steps: list[tuple[str, list[str], dict[str, object]]], consts: dict[str, np.ndarray],
           requant: bool) -> onnx.ModelProto:
    """x (int8 codes) -> [DQ -> op -> Q]* ; every op output is a graph output."""
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    inits += [numpy_helper.from_array(np.float32(0.05), "s0"), numpy_helper.from_array(np.int8(3), "z0"),
              numpy_helper.from_array(np.float32(0.05 if not requant else 0.0625), "s1"),
              numpy_helper.from_array(np.int8(3 if not requant else -5), "z1")]
    nodes, outs, cur, k = [], [], "x", 0
    for i, (op, extra, attrs) in enumerate(steps):
        s_in, z_in = ("s0", "z0") if k == 0 else ("s1", "z1")
        nodes.append(helper.make_node("DequantizeLinear", [cur, s_in, z_in], [f"d{i}"]))
        n_out = int(attrs.pop("_outputs", 1))  # type: ignore[call-overload]
        ys = [f"y{i}_{j}" for j in range(n_out)]
        nodes.append(helper.make_node(op, [f"d{i}", *extra], ys, name=f"{op.lower()}_{i}", **attrs))
        for j, y in enumerate(ys):
            nodes.append(helper.make_node("QuantizeLinear", [y, "s1", "z1"], [f"q{i}_{j}"]))
            outs.append(helper.make_tensor_value_info(f"q{i}_{j}", TensorProto.INT8, None))
        cur, k = f"q{i}_0", 1
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 4, 6, 6])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


STEPS: list[tuple[str, list[str], dict[str, object]]] = [
    ("Unsqueeze", ["ax_u"], {}),
    ("Squeeze", ["ax_u"], {}),
    ("Split", ["split"], {"axis": 1, "_outputs": 2}),
    ("Gather", ["idx"], {"axis": 2}),
    ("Resize", ["", "scales"], {"mode": "nearest"}),
    ("Pad", ["pads"], {}),
    ("Slice", ["st", "en", "ax_s"], {}),
    ("Transpose", [], {"perm": [0, 1, 3, 2]}),
]
CONSTS = {"ax_u": np.array([2], np.int64), "split": np.array([1, 3], np.int64), "idx": np.array([0, 2, 2, 5], np.int64),
          "scales": np.array([1, 1, 2, 2], np.float32), "pads": np.array([0, 0, 1, 1, 0, 0, 2, 0], np.int64),
          "st": np.array([1], np.int64), "en": np.array([100], np.int64), "ax_s": np.array([3], np.int64)}


@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("profile", ["onnxruntime", "exact"])
def test_movement_chain_matches_onnxruntime(requant: bool, profile: str) -> None:
    model = _chain([(op, list(extra), dict(attrs)) for op, extra, attrs in STEPS], CONSTS, requant)
    feeds = {"x": np.random.default_rng(0).integers(-128, 128, (5, 4, 6, 6)).astype(np.int8)}
    got = run_engine(model, feeds, profile)
    for fused in (True, False):
        diff = mismatch(got, run_ort(model, feeds, fused=fused))
        if requant and profile == "exact":  # the requantizations round exactly, onnxruntime in float32
            assert all(v < 0.01 for v in diff.values()), diff
        else:
            assert diff == {}, (fused, diff)
