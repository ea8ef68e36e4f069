"""The memory budget: per-sample bytes from static shapes, the batch chosen from a budget, --memory-budget."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qprobe.cli.common import parse_bytes
from qprobe.compare.budget import (
    STREAMS,
    SYMBOLIC_DIM,
    WORKING_COPIES,
    choose_batch_size,
    fixed_bytes,
    sample_bytes,
    working_bytes,
)
from qprobe.errors import InputError
from qprobe.model.loader import model_from_proto
from qprobe.tensors import ProbePlan


def _model(time: int | str = 16):
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 1, time])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, time])], [w])
    return model_from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_sample_bytes_counts_inputs_and_probed_tensors_by_hand() -> None:
    m = _model(16)
    # outputs only: y [4,1,16] float32 + x [3,1,16] float32
    assert sample_bytes(m, None) == (4 * 16 + 3 * 16) * 4
    plan = ProbePlan("all", ("c", "y"), ("c",))
    assert sample_bytes(m, plan) == (4 * 16 * 2 + 3 * 16) * 4


def test_symbolic_dims_use_the_stated_assumption() -> None:
    m = _model("T")
    assert sample_bytes(m, None) == (4 + 3) * SYMBOLIC_DIM * 4


def test_working_set_is_float_copies_of_the_largest_value_by_hand() -> None:
    m = _model(16)  # largest value per sample: c and y, 4 x 1 x 16 elements (not the weights)
    assert working_bytes(m) == WORKING_COPIES * 4 * (4 * 16)


def test_batch_fits_the_budget_and_is_bounded() -> None:
    m = _model(16)
    plan = ProbePlan("all", ("c", "y"), ("c",))
    per = STREAMS * sample_bytes(m, plan) + working_bytes(m)
    budget = fixed_bytes(m) + per * 10 + 3
    assert choose_batch_size(m, plan, budget) == 10
    assert choose_batch_size(m, plan, fixed_bytes(m) // 2) == 1
    assert choose_batch_size(m, plan, 1 << 40, maximum=77) == 77
    with pytest.raises(InputError):
        choose_batch_size(m, plan, 0)


@pytest.mark.parametrize(("text", "value"), [("1GiB", 1 << 30), ("512MiB", 512 << 20), ("2e9", 2 * 10**9),
                                             ("1.5GB", 1_500_000_000), ("4096", 4096), ("64 kib", 65536)])
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1XB", "-1GiB", "0", "nan", "inf", "1e999"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(InputError, match="memory-budget"):
        parse_bytes(text)


def test_bad_memory_budget_is_a_one_line_user_error() -> None:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "qprobe", "compare", "--example", "tcn", "--memory-budget", "lots"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0
    assert "--memory-budget 'lots'" in res.stderr


def test_working_set_leaves_out_values_computed_from_constants() -> None:
    """A value made from constants only (here a 1 x 4096 Expand, as float_math's) is one tensor for
    the whole batch: not counted per sample; the per-sample Add output is."""
    shape = numpy_helper.from_array(np.array([1, 4096], np.int64), "shape")
    one = numpy_helper.from_array(np.ones((1, 1), np.float32), "one")
    nodes = [helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"),
             helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=1),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], [shape, one])
    m = model_from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    assert working_bytes(m) == WORKING_COPIES * 4 * 8
