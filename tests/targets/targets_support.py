"""Paths and template builders shared by the real-target tests (fixtures are in conftest.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import mutating_target
import numpy as np
import onnx
from onnx import numpy_helper

HERE = Path(__file__).parent
MUTATING = HERE / "mutating_target.py"
FAULTY = HERE / "faulty_target.py"
FAKE_STEDGEAI = HERE / "fake_stedgeai.py"
IO = "--model {model} --inputs {inputs} --outputs {outputs}"


def py(script: Path, *args: str) -> str:
    """A command template running ``script`` with this interpreter."""
    return " ".join([shlex.quote(sys.executable), shlex.quote(str(script)), *args])


def initializer(model_path: Path, name: str) -> np.ndarray:
    """An initializer read with plain onnx (independent of qprobe's quantization view)."""
    m = onnx.load(str(model_path))
    return next(numpy_helper.to_array(t) for t in m.graph.initializer if t.name == name)


def ort_outputs(model_path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return mutating_target.run(onnx.load(str(model_path)), feeds)


def make_val_io(model_path: Path, x: np.ndarray, path: Path, *, bias: int = 0, noise: int = 0, seed: int = 0) -> Path:
    """A ``<name>_val_io.npz`` laid out as ST writes it for the residual model (input x, output y).

    m_* is onnxruntime on the model (float in, float out); c_* is what a C model on a board
    gives: int8 input codes in NHWC, int8 output codes of shape (N, 1, 1, 3), lowered by
    ``bias`` codes and jittered by up to ``noise`` codes.
    """
    xs, xz = initializer(model_path, "x_scale"), initializer(model_path, "x_zero_point")
    ys, yz = initializer(model_path, "y_scale"), initializer(model_path, "y_zero_point")
    y = ort_outputs(model_path, {"x": x})["y"]
    codes = np.rint(y / ys).astype(np.int32) + int(yz)
    rng = np.random.default_rng(seed)
    codes = codes - bias + rng.integers(-noise, noise + 1, size=codes.shape)
    c_y = np.clip(codes, -128, 127).astype(np.int8).reshape(y.shape[0], 1, 1, y.shape[1])
    c_x = np.clip(np.rint(x / xs) + int(xz), -128, 127).astype(np.int8).transpose(0, 2, 3, 1)
    np.savez(path, m_inputs_1=x, m_outputs_1=y, c_inputs_1=c_x, c_outputs_1=c_y)
    return path


def st_oracle(ref: np.ndarray, c_codes: np.ndarray, scale: float, zp: int) -> dict[str, float]:
    """ST's X-cross metrics in plain numpy: st-edge-ai.md §1.2, with what real 2.2.0 reports
    show (ddof=1 for std and for nse's var(ref); int8 dequantized in float32)."""
    eps = float(np.finfo(np.float32).eps)
    r = np.asarray(ref, np.float64).reshape(-1)
    p = ((c_codes.astype(np.float32) - np.float32(zp)) * np.float32(scale)).astype(np.float64).reshape(-1)
    d = r - p
    return {
        "rmse": float(np.sqrt(np.mean(d**2))),
        "mae": float(np.mean(np.abs(d))),
        "l2r": float(np.linalg.norm(d) / (np.linalg.norm(p) + eps)),
        "mean": float(np.mean(d)),
        "std": float(np.std(d, ddof=1)),
        "nse": float(1 - np.mean(d**2) / (np.var(r, ddof=1) + eps)),
        "cos": float(np.dot(r, p) / (np.linalg.norm(r) * np.linalg.norm(p))),
    }


def same_6_digits(a: float, b: float) -> bool:
    return f"{a:.6g}" == f"{b:.6g}" or abs(a - b) <= 5e-7 * max(abs(a), abs(b))
