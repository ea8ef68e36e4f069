"""What a corpus builder returns: the float model, the int8 model and the samples to feed it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx


@dataclass
class Parts:
    float_model: onnx.ModelProto
    int8_model: onnx.ModelProto
    samples: dict[str, np.ndarray]  # keyed by the int8 model's inputs, in their dtypes
