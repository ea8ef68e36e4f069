"""onnxruntime's CPU arena: ``arena=auto`` turns it off for large models (backends/onnxruntime.py).

Oracle: the same model run with the arena on (results must not depend on the allocator).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from qprobe.backends import create_backend
from qprobe.backends.onnxruntime import ARENA_OFF_WEIGHT_BYTES
from qprobe.errors import BackendError


def _matmul(k: int, n: int) -> ir.Model:
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
                          [numpy_helper.from_array(w, "w")])
    return ir.from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_auto_keeps_the_arena_for_small_models_and_drops_it_for_large_ones() -> None:
    small, large = _matmul(8, 4), _matmul(1024, ARENA_OFF_WEIGHT_BYTES // (4 * 1024) + 1)
    assert create_backend("ort").open(small).info["enable_cpu_mem_arena"] == "1"
    off = create_backend("ort-fused").open(large)
    assert off.info["enable_cpu_mem_arena"] == "0"
    on = create_backend("ort-fused", {"arena": "on"}).open(large)
    assert on.info["enable_cpu_mem_arena"] == "1"
    x = {"x": np.random.default_rng(1).standard_normal((3, 1024)).astype(np.float32)}
    assert np.array_equal(off.run(x)["y"], on.run(x)["y"])
    assert create_backend("ort", {"arena": "off"}).open(small).info["enable_cpu_mem_arena"] == "0"


def test_a_bad_arena_value_names_the_choices() -> None:
    with pytest.raises(BackendError, match="arena=on, arena=off or arena=auto"):
        create_backend("ort", {"arena": "maybe"})
