"""Engine kernels under the ``tflite`` profile on CMSIS-NN vectors: pools, FC, batch matmul, pad, transpose.

Oracle: the vectors' reference outputs (TFLite reference kernels). The kernels are
built from an ``OpSpec`` as the interpreter would; fully connected and batch matmul use
the engine's exact matmul with the raw multipliers of each case.
"""

from __future__ import annotations

import numpy as np
import pytest
from cmsis_vectors import Case, params

from qprobe.backends.engine import get_profile
from qprobe.backends.engine.kernels.base import Operand, OpSpec, QType
from qprobe.backends.engine.kernels.gemm import exact_matmul
from qprobe.backends.engine.kernels.movement import MOVEMENT
from qprobe.backends.engine.kernels.pool import build_avgpool_int, build_maxpool_int
from qprobe.backends.engine.requant import fixed_requantizer


def _pool_spec(case: Case, op: str, dtype: str) -> OpSpec:
    q = QType.make(1.0, 0, dtype)  # same quantization in and out: TFLite pools on raw codes
    attrs = {"kernel_shape": [case.mac("FILTER_H"), case.mac("FILTER_W")],
             "strides": [case.mac("STRIDE_H"), case.mac("STRIDE_W")]}
    h, w = case.mac("INPUT_H"), case.mac("INPUT_W")
    oh, ow = case.mac("OUTPUT_H"), case.mac("OUTPUT_W")
    ph, pw = case.mac("PADDING_H"), case.mac("PADDING_W")
    end_h = max((oh - 1) * attrs["strides"][0] + attrs["kernel_shape"][0] - h - ph, 0)  # type: ignore[index]
    end_w = max((ow - 1) * attrs["strides"][1] + attrs["kernel_shape"][1] - w - pw, 0)  # type: ignore[index]
    attrs["pads"] = [ph, pw, end_h, end_w]
    num = get_profile("tflite").numerics_for("pool" if op == "AveragePool" else "concat", op, "")
    return OpSpec("pool", op, attrs, (Operand("x", None, q),), ("y",), (q,), num)


@pytest.mark.parametrize("case", [*params("avgpool_s8"), *params("avgpool_s16"), *params("maxpool_s8"),
                                  *params("maxpool_s16")])
def test_pools(case: Case) -> None:
    kind = str(case.data["kind"])
    dtype = "int16" if kind.endswith("s16") else "int8"
    op = "AveragePool" if kind.startswith("avg") else "MaxPool"
    spec = _pool_spec(case, op, dtype)
    kernel = (build_avgpool_int if op == "AveragePool" else build_maxpool_int)(spec)
    n, h, w, c = (case.mac(k) for k in ("BATCH_SIZE", "INPUT_H", "INPUT_W", "INPUT_C"))
    x = case.arr("input_tensor").reshape(n, h, w, c).transpose(0, 3, 1, 2)
    y = np.clip(kernel([x])[0], case.mac("ACTIVATION_MIN"), case.mac("ACTIVATION_MAX"))
    ref = case.arr("output").reshape(n, case.mac("OUTPUT_H"), case.mac("OUTPUT_W"), c).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("case", [*params("fully_connected_s8"), *params("fully_connected_per_channel_s8"),
                                  *params("fully_connected_s16")])
def test_fully_connected(case: Case) -> None:
    depth, batches, out_ch = case.mac("ACCUMULATION_DEPTH"), case.mac("INPUT_BATCHES"), case.mac("OUT_CH")
    x = case.arr("input").astype(np.int64).reshape(batches, depth) + case.mac("INPUT_OFFSET")
    w = case.arr("weights").astype(np.int64).reshape(out_ch, depth) + case.mac("FILTER_OFFSET", 0)
    acc = exact_matmul(x, w.T, int(np.abs(x).max()))
    if case.has("biases"):
        acc = acc + case.arr("biases").astype(np.int64)
    s16 = str(case.data["kind"]).endswith("s16")
    if case.has("output_mult"):
        mult, shift = case.arr("output_mult"), case.arr("output_shift")
    else:
        mult, shift = case.mac("OUTPUT_MULTIPLIER"), case.mac("OUTPUT_SHIFT")
    rq = fixed_requantizer(mult, shift, case.mac("OUTPUT_OFFSET"), case.mac("OUT_ACTIVATION_MIN"),
                           case.mac("OUT_ACTIVATION_MAX"), "s64" if s16 else "tflite_double")
    np.testing.assert_array_equal(rq(acc, channel_axis=1), case.arr("output_ref").reshape(batches, out_ch))


def _operand(case: Case, side: str) -> np.ndarray:
    dims = [case.mac(f"{side}_{k}") for k in ("BATCH", "HEIGHT", "ROWS", "COLS")]
    t = case.arr(f"{side.lower()}_input_tensor").astype(np.int64).reshape(dims) + case.mac(f"{side}_OFFSET")
    adj = case.mac("ADJ_X" if side == "LHS" else "ADJ_Y")
    return np.swapaxes(t, -1, -2) if adj else t


@pytest.mark.parametrize("case", [*params("batch_matmul_s8"), *params("batch_matmul_s16")])
def test_batch_matmul(case: Case) -> None:
    lhs, rhs = _operand(case, "LHS"), _operand(case, "RHS")
    acc = exact_matmul(lhs, rhs, int(np.abs(lhs).max()))
    s16 = str(case.data["kind"]).endswith("s16")
    rq = fixed_requantizer(case.mac("OUTPUT_MULTIPLIER"), case.mac("OUTPUT_SHIFT"), case.mac("OUTPUT_OFFSET"),
                           case.mac("ACTIVATION_MIN"), case.mac("ACTIVATION_MAX"), "s64" if s16 else "tflite_double")
    dims = [case.mac(f"OUTPUT_{k}") for k in ("BATCH", "HEIGHT", "ROWS", "COLS")]
    np.testing.assert_array_equal(rq(acc), case.arr("output_ref").reshape(dims))


def _movement(op: str, attrs: dict[str, object], inputs: list[Operand]) -> OpSpec:
    return OpSpec(op, op, attrs, tuple(inputs), ("y",), (None,), get_profile("tflite").classes["concat"])


@pytest.mark.parametrize("case", list(params("transpose_s8")))
def test_transpose(case: Case) -> None:
    n = case.mac("PERM_SIZE")
    perm = [int(v) for v in case.data[f"{case.name.upper()}_PERM"][:n]]
    x = case.arr("input_tensor").reshape([int(v) for v in case.data[f"{case.name.upper()}_IN_DIM"][:n]])
    y = MOVEMENT["Transpose"](_movement("Transpose", {"perm": perm}, [Operand("x")]))([x])[0]
    np.testing.assert_array_equal(y.reshape(-1), case.arr("output"))


@pytest.mark.parametrize("case", list(params("pad_s8")))
def test_pad(case: Case) -> None:
    dims = [case.mac(f"INPUT_{k}") for k in "NHWC"]
    pads = [case.mac(f"PRE_PAD_{k}") for k in "NHWC"] + [case.mac(f"POST_PAD_{k}") for k in "NHWC"]
    spec = _movement("Pad", {}, [Operand("x"), Operand("p", np.array(pads, np.int64)),
                                 Operand("v", np.array(case.mac("PAD_VALUE"), np.int8))])
    y = MOVEMENT["Pad"](spec)([case.arr("input_tensor").reshape(dims), None, None])[0]
    np.testing.assert_array_equal(y.reshape(-1), case.arr("output"))
