"""QuantParams, TensorRecord and Trace: dequantization and save/load round trips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from qprobe.errors import InputError
from qprobe.tensors import ProbePlan, QuantParams, TensorRecord, Trace


def test_dequantize_is_exact_per_axis() -> None:
    q = QuantParams.from_arrays(np.array([0.1, 0.03], np.float32), np.array([3, -7], np.int8), "int8", axis=1)
    codes = np.array([[[-128], [127]], [[5], [-7]]], dtype=np.int8)  # shape (2, 2, 1), axis 1
    got = q.dequantize(codes)
    for (i, c, k), v in np.ndenumerate(codes):
        s = Fraction(float(np.float32(q.scale[c])))
        assert Fraction(got[i, c, k]) == (int(v) - q.zero_point[c]) * s


def test_invalid_params_are_user_errors() -> None:
    with pytest.raises(InputError, match="unsupported quantized dtype"):
        QuantParams((0.1,), (0,), "int4")
    with pytest.raises(InputError, match="must match"):
        QuantParams((0.1, 0.2), (0,), "int8")


def test_trace_save_load_round_trip(tmp_path: Path) -> None:
    q = QuantParams.from_arrays(0.25, 1, "uint8")
    t = Trace(
        backend="ort",
        plan=ProbePlan("explicit", ("a", "b"), ("a",)),
        records={
            "a": TensorRecord("a", np.arange(6, dtype=np.uint8).reshape(2, 3), q),
            "b": TensorRecord("b", np.linspace(0, 1, 4, dtype=np.float32).reshape(2, 2)),
        },
        session_info={"graph_optimization_level": "ORT_DISABLE_ALL"},
        first_sample=8,
    )
    path = tmp_path / "trace.json"
    t.save(path)
    back = Trace.load(path)
    assert back.backend == "ort" and back.plan == t.plan and back.first_sample == 8
    assert back.session_info == t.session_info
    for k, r in t.records.items():
        np.testing.assert_array_equal(back.records[k].data, r.data)
        assert back.records[k].data.dtype == r.data.dtype
        assert back.records[k].quant == r.quant
    assert not list(tmp_path.glob("*.part*"))  # atomic writes leave nothing behind
