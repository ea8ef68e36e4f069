"""Einsum in float32 (float islands, and QDQ Einsum: onnxruntime 1.32 fuses no QDQ Einsum,
so it runs as DequantizeLinear -> Einsum -> QuantizeLinear; checked on its optimized graph).

The products are summed in float64 and rounded once to float32; onnxruntime sums in
float32 through its own transposes and SGEMM calls, so results differ by float32
rounding (a few ulp of the sum), and a QuantizeLinear after it may differ by one code
at rounding ties.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec


def build_einsum(spec: OpSpec) -> Kernel:
    equation = spec.attr("equation", "")
    equation = (equation.decode() if isinstance(equation, bytes) else str(equation)).replace(" ", "")

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        ops = [np.asarray(a) for a in args if a is not None]
        if all(o.dtype.kind in "iu" for o in ops):
            return [np.einsum(equation, *ops)]
        wide = [o.astype(np.float64) for o in ops]
        return [np.asarray(np.einsum(equation, *wide, optimize=len(wide) > 2), dtype=np.float32)]

    return run
