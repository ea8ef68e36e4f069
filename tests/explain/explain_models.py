"""Small int8 QDQ models (not the TCN) for explain's tests, built with onnx.helper and quantize_static.

``concat_model(tmp)``: two Conv branches with different output ranges, a Concat, a Conv
head. The Concat's output scale is then set to the wide branch's scale / 2.3 (as a
percentile calibration that clips the rare large values would): a requantizing Concat
whose inputs have scale ratios 2.3 and about 0.3. ``residual_model(tmp)``: the residual
network of tests/models/residual.py (seed 4: its Add has operand ratios 0.95 and 2.04).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from models.residual import qdq_residual_model

N_CAL = 16


class _Reader(CalibrationDataReader):
    def __init__(self, data: np.ndarray) -> None:
        self._it = iter([{"x": data[i : i + 1]} for i in range(len(data))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _float_concat(seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def init(name: str, shape: tuple[int, ...], sd: float) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, sd, shape).astype(np.float32), name)

    inits = [init("wa", (6, 3, 3), 0.9), init("ba", (6,), 0.1), init("wb", (4, 3, 3), 0.15), init("bb", (4,), 0.02),
             init("wc", (5, 10, 1), 0.4), init("bc", (5,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="branch_a", pads=[1, 1]),
        helper.make_node("Conv", ["x", "wb", "bb"], ["b"], name="branch_b", pads=[1, 1]),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="merge", axis=1),
        helper.make_node("Conv", ["cat", "wc", "bc"], ["y"], name="head"),
    ]
    graph = helper.make_graph(nodes, "concat_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 32])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _scale_of(model: onnx.ModelProto, tensor: str) -> str:
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor)
    return q.input[1]


def concat_model(tmp: Path, seed: int = 3) -> Path:
    fp = tmp / "concat_float.onnx"
    onnx.save(_float_concat(seed), fp)
    data = np.random.default_rng(seed + 1).normal(0, 1, (N_CAL, 3, 32)).astype(np.float32)
    q = tmp / "concat_int8.onnx"
    quantize_static(str(fp), str(q), _Reader(data), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    m = onnx.load(q)
    inits = {i.name: i for i in m.graph.initializer}
    wide = float(numpy_helper.to_array(inits[_scale_of(m, "a")]))
    cat = inits[_scale_of(m, "cat")]
    cat.CopyFrom(numpy_helper.from_array(np.array(wide / 2.3, dtype=np.float32), cat.name))
    onnx.save(m, q)
    return q


def residual_model(tmp: Path) -> Path:
    return qdq_residual_model(tmp, seed=4)


def random_inputs(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype(np.float32)
