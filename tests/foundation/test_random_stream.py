"""Streamed random inputs: made block by block, the same samples whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import qprobe.model.inputs as inputs_mod
from qprobe.model.inputs import InputSet, random_inputs
from qprobe.model.loader import model_from_proto


def _model():
    nodes = [helper.make_node("Add", ["x", "k"], ["y"], name="add")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5]),
                                       helper.make_tensor_value_info("k", TensorProto.INT8, ["N", 3, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 5])])
    return model_from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _joined(s: InputSet, batch: int) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    starts = []
    for start, feeds in s.batches(batch):
        starts.append(start)
        assert all(v.shape[0] == min(batch, s.num_samples - start) for v in feeds.values())
        for k, v in feeds.items():
            parts.setdefault(k, []).append(v)
    assert starts == list(range(0, s.num_samples, batch))
    return {k: np.concatenate(v) for k, v in parts.items()}


@pytest.mark.parametrize("batch", [1, 3, 7, 8, 64, 1000])
def test_streamed_samples_do_not_depend_on_the_batch_size(monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    # 120 bytes per sample (60 float32 + 15 int8 -> 75; bound 8 blocks of 600 bytes): blocks of 8
    monkeypatch.setattr(inputs_mod, "RANDOM_BLOCK_BYTES", 8 * 75)
    s = random_inputs(_model(), 45, seed=3)
    assert s.is_lazy and s.num_samples == 45
    got = _joined(s, batch)
    # oracle: the documented recipe, drawn here with numpy directly
    want: dict[str, list[np.ndarray]] = {"x": [], "k": []}
    for k in range(6):
        rng = np.random.default_rng(3 if k == 0 else [3, k])
        count = min(8, 45 - 8 * k)
        want["x"].append(rng.uniform(0.0, 1.0, size=(count, 3, 5)).astype(np.float32))
        want["k"].append(rng.integers(-128, 128, size=(count, 3, 5)).astype(np.int8))
    for name in ("x", "k"):
        np.testing.assert_array_equal(got[name], np.concatenate(want[name]))
        np.testing.assert_array_equal(s.arrays[name], got[name])


def test_one_block_is_one_generator_as_before() -> None:
    s = random_inputs(_model(), 10, seed=42)
    rng = np.random.default_rng(42)
    np.testing.assert_array_equal(s.arrays["x"], rng.uniform(0.0, 1.0, size=(10, 3, 5)).astype(np.float32))
    np.testing.assert_array_equal(s.arrays["k"], rng.integers(-128, 128, size=(10, 3, 5)).astype(np.int8))


def test_eager_sets_batch_as_before() -> None:
    a = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    s = InputSet({"x": a}, "t")
    assert not s.is_lazy and s.num_samples == 10
    np.testing.assert_array_equal(_joined(s, 4)["x"], a)
