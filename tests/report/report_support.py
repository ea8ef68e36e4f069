"""Helpers of the report tests: the CLI in a subprocess, loading a stored report, ONNX facts read
with plain onnx (an oracle independent of qprobe's quantization view)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from qprobe.report.document import Report

TCN_FAILING = "engine:arith16-wrap"
TCN_PASSING = "engine:onnxruntime"


def qprobe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qprobe", *args], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})


def load(folder: Path) -> Report:
    return Report.load(folder / "report.json")


def quantize_params(model_path: Path, tensor: str) -> tuple[float, int]:
    """(scale, zero point) of the QuantizeLinear that writes ``tensor``, read from the file's initializers."""
    m = onnx.load(str(model_path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    node = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.output[0] == tensor)
    return float(np.float32(inits[node.input[1]])), int(inits[node.input[2]])
