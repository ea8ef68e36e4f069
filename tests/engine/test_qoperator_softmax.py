"""QOperator attention (QLinearMatMul, QLinearSoftmax, QLinearAdd/Mul): the engine reads the one
QOperator table (qprobe.model.qoperator) and matches onnxruntime code for code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from qprobe.backends import create_backend
from qprobe.compare import compare_backends
from qprobe.model.inputs import InputSet
from qprobe.model.loader import load_model

from models.corpus import CORPUS


class _Reader(CalibrationDataReader):
    def __init__(self, samples: dict[str, np.ndarray]) -> None:
        self._it = iter([{k: v[i : i + 1] for k, v in samples.items()} for i in range(8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def test_qoperator_attention_is_bit_exact(tmp_path: Path) -> None:
    built = CORPUS["attention"].build(tmp_path)
    samples = built.samples()
    quantize_static(str(built.float), str(tmp_path / "qop.onnx"), _Reader(samples), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8)
    m = load_model(tmp_path / "qop.onnx")
    assert {"QLinearSoftmax", "QLinearMatMul"} <= {n.op_type for n in m.graph}
    x = InputSet({k: v[:8] for k, v in samples.items()}, "attention samples")
    for ref in ("ort", "ort-fused"):
        cmp = compare_backends(m, create_backend(ref), create_backend("engine:onnxruntime"), x, probe="all")
        assert all(r.verdict == "exact" for r in cmp.rows), [(r.name,
                                                              r.reason) for r in cmp.rows if r.verdict != "exact"]
