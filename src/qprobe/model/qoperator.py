"""QOperator signatures: the one table of how each quantized operator's inputs are laid out.

``SIGNATURES[op]`` gives, for a QOperator node (ONNX QLinearConv/QLinearMatMul/MatMulInteger/
ConvInteger and the com.microsoft QLinear* ops), the float op whose arithmetic it implements,
each operand of that float op as (tensor, scale, zero point) input indices (-1: absent), and
the output's (scale, zero point) indices (None: an int32 output). ``QLinearConcat`` is
variadic: (y_scale, y_zero_point) first, then one (tensor, scale, zero point) triple per
input. The quantization view and the engine both read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class QopSignature:
    float_op: str
    operands: tuple[Triple, ...]
    output: tuple[int, int] | None

    def triples(self, n_inputs: int) -> tuple[Triple, ...]:
        """The operand triples of a node with ``n_inputs`` inputs (variadic for QLinearConcat)."""
        if self.float_op == "Concat":
            return tuple((t, t + 1, t + 2) for t in range(2, n_inputs, 3))
        return self.operands


SIGNATURES: dict[str, QopSignature] = {
    "QLinearConv": QopSignature("Conv", ((0, 1, 2), (3, 4, 5), (8, -1, -1)), (6, 7)),
    "QLinearMatMul": QopSignature("MatMul", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QGemm": QopSignature("Gemm", ((0, 1, 2), (3, 4, 5), (6, -1, -1)), (7, 8)),
    "MatMulInteger": QopSignature("MatMulInteger", ((0, -1, 2), (1, -1, 3)), None),
    "ConvInteger": QopSignature("ConvInteger", ((0, -1, 2), (1, -1, 3)), None),
    "QLinearAdd": QopSignature("Add", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearMul": QopSignature("Mul", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearConcat": QopSignature("Concat", (), (0, 1)),
    "QLinearAveragePool": QopSignature("AveragePool", ((0, 1, 2),), (3, 4)),
    "QLinearGlobalAveragePool": QopSignature("GlobalAveragePool", ((0, 1, 2),), (3, 4)),
    "QLinearLeakyRelu": QopSignature("LeakyRelu", ((0, 1, 2),), (3, 4)),
    "QLinearSigmoid": QopSignature("Sigmoid", ((0, 1, 2),), (3, 4)),
    "QLinearSoftmax": QopSignature("Softmax", ((0, 1, 2),), (3, 4)),
}
