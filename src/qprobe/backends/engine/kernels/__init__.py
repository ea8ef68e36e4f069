"""The engine's kernels, one op family per module, and the one registry that lists them.

``KERNELS`` maps an ONNX op type to its ``KernelEntry``: the numerics class the op reads
its knobs from, its float32 builder (float islands and float-computed groups), its
integer builder (QDQ groups and QOperator nodes; None when the op has no integer form)
and which inputs must come from DequantizeLinear for a QDQ group to form (None: every
present input). An op type missing here is an ``UnsupportedOpError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from qprobe.backends.engine.kernels import (
    activation,
    concat,
    conv,
    einsum,
    eltwise,
    float_math,
    gemm,
    logic,
    math,
    movement,
    norm,
    pool,
    reduce,
    shape,
    softmax,
)
from qprobe.backends.engine.kernels.base import Builder


@dataclass(frozen=True)
class KernelEntry:
    op_class: str
    build_float: Builder
    build_int: Builder | None
    quantized_inputs: tuple[int, ...] | None = (0,)
    folds_activation: bool = False  # a following Relu/Clip may be folded into its output clamp


_MOVE = {op: KernelEntry("concat", b, movement.build_movement_int) for op, b in movement.MOVEMENT.items()}
_UNARY = {op: KernelEntry("activation", activation.build_unary_float, activation.build_unary_int)
          for op in ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish")}

KERNELS: dict[str, KernelEntry] = {
    "Conv": KernelEntry("conv", conv.build_conv_float, conv.build_conv_int, None, True),
    "Gemm": KernelEntry("gemm", gemm.build_gemm_float, gemm.build_gemm_int, None, True),
    "MatMul": KernelEntry("gemm", gemm.build_matmul_float, gemm.build_matmul_int, None, True),
    "Add": KernelEntry("eltwise", eltwise.build_binary_float, eltwise.build_add_int, None, True),
    "Sub": KernelEntry("eltwise", eltwise.build_binary_float, eltwise.build_add_int, None, True),
    "Mul": KernelEntry("mul", eltwise.build_binary_float, eltwise.build_mul_int, None, True),
    "Concat": KernelEntry("concat", concat.build_concat_float, concat.build_concat_int, None),
    "MaxPool": KernelEntry("concat", pool.build_maxpool_float, pool.build_maxpool_int),
    "AveragePool": KernelEntry("pool", pool.build_avgpool_float, pool.build_avgpool_int, (0,), True),
    "GlobalAveragePool": KernelEntry("pool", pool.build_avgpool_float, pool.build_avgpool_int, (0,), True),
    "PRelu": KernelEntry("activation", activation.build_prelu_float, activation.build_prelu_int, None),
    "Softmax": KernelEntry("activation", softmax.build_softmax_float, softmax.build_softmax_int),
    **_UNARY,
    **_MOVE,
    **{op: KernelEntry("quantize", b, None) for op, b in math.MATH.items()},
    # float-only ops (float islands; in a QDQ graph DequantizeLinear -> op -> QuantizeLinear, as onnxruntime)
    **{op: KernelEntry("quantize", b, None) for op, b in float_math.FLOAT_MATH.items()},
    **{op: KernelEntry("quantize", b, None) for op, b in logic.LOGIC.items()},
    **{op: KernelEntry("quantize", b, None) for op, b in reduce.REDUCE.items()},
    **{op: KernelEntry("quantize", b, None) for op, b in norm.NORMS.items()},
    **{op: KernelEntry("quantize", b, None) for op, b in shape.SHAPE.items()},
    "Einsum": KernelEntry("quantize", einsum.build_einsum, None),
}

# ops whose float output may be clamped by a following Relu/Clip folded into the group
FOLDABLE_ACTIVATIONS = ("Relu", "Clip")
