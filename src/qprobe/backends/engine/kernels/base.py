"""What every kernel builder receives and returns.

A builder turns one ``OpSpec`` (an op with its quantization and its resolved
``Numerics``) into a ``Kernel``: a function from the op's input arrays (constants
included, in input order; a missing optional input is ``None``) to its output arrays.
Builders do their constant work (weight layout, multipliers, lookup tables) once, at
build time. Integer kernels receive codes and return codes (int64 is fine: the
interpreter casts to the output type); float kernels receive and return float32.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.profiles import Numerics
from qprobe.tensors import INT_RANGES, along_axis

Kernel = Callable[[Sequence[np.ndarray | None]], list[np.ndarray]]



class Ungroupable(Exception):
    """An integer builder cannot express this QDQ group; it runs as float DQ -> op -> Q instead."""


@dataclass(frozen=True)
class QType:
    """Quantization of one tensor: float32 scale(s), zero point(s), integer dtype, axis.

    The engine's array form of ``qprobe.tensors.QuantParams`` (which keeps Python tuples
    for JSON): scales and zero points stay numpy arrays, shaped for broadcasting on the
    hot path.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    axis: int | None = None

    @classmethod
    def make(cls, scale: Any, zero_point: Any, dtype: str, axis: int | None = None) -> QType:
        s = np.asarray(scale, dtype=np.float32).reshape(-1)
        z = np.asarray(0 if zero_point is None else zero_point).astype(np.int64).reshape(-1)
        if z.size == 1 and s.size > 1:
            z = np.repeat(z, s.size)
        if s.size == 1 and z.size > 1:
            s = np.repeat(s, z.size)
        return cls(s, z, dtype, axis if s.size > 1 else None)

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    @property
    def qmin(self) -> int:
        return INT_RANGES[self.dtype][0]

    @property
    def qmax(self) -> int:
        return INT_RANGES[self.dtype][1]

    @property
    def s(self) -> np.float32:
        """The per-tensor scale (float32)."""
        return np.float32(self.scale[0])

    @property
    def z(self) -> int:
        return int(self.zero_point[0])

    def shaped(self, v: np.ndarray, ndim: int) -> np.ndarray:
        return v.reshape(()) if self.per_tensor or self.axis is None else along_axis(v, ndim, self.axis)

    def same_as(self, other: QType) -> bool:
        return (self.dtype == other.dtype and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def dequantize32(self, codes: np.ndarray) -> np.ndarray:
        """onnxruntime's DequantizeLinear: ``fl32(fl32(q - z) * s)``."""
        q = np.asarray(codes).astype(np.int64) - self.shaped(self.zero_point, np.ndim(codes))
        return (q.astype(np.float32) * self.shaped(self.scale, np.ndim(codes))).astype(np.float32)

    def quantize_exact(self, value: float) -> int:
        """``sat(RNE(value / s) + z)`` exactly (per-tensor), used for folded clamp bounds."""
        v = nx.round_fraction(Fraction(float(value)) / Fraction(float(self.s)), "half_even") + self.z
        return int(min(max(v, self.qmin), self.qmax))


@dataclass(frozen=True)
class Operand:
    """One input of an op: the tensor name it reads, its constant value, its quantization."""

    name: str
    const: np.ndarray | None = None
    qtype: QType | None = None


@dataclass(frozen=True)
class OpSpec:
    """One op to build: an ONNX node, a QDQ group or a QOperator node, resolved."""

    node: str
    op_type: str
    attrs: Mapping[str, Any]
    inputs: tuple[Operand, ...]
    outputs: tuple[str, ...]
    out_qtypes: tuple[QType | None, ...]
    numerics: Numerics
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def out_q(self) -> QType:
        q = self.out_qtypes[0]
        assert q is not None, f"{self.node}: integer kernel without output quantization"
        return q

    def q(self, i: int) -> QType:
        op = self.inputs[i]
        assert op.qtype is not None, f"{self.node}: input {i} is not quantized"
        return op.qtype

    def attr(self, name: str, default: Any) -> Any:
        return self.attrs.get(name, default)

    def const(self, i: int) -> np.ndarray | None:
        return self.inputs[i].const if i < len(self.inputs) else None


def require_per_tensor(spec: OpSpec, *idx: int) -> None:
    """Activations must be per-tensor for integer kernels; otherwise run the group in float."""
    for i in idx:
        q = spec.inputs[i].qtype
        if q is not None and not q.per_tensor:
            raise Ungroupable(f"input {i} is quantized per axis")
    for q in spec.out_qtypes:
        if q is not None and not q.per_tensor:
            raise Ungroupable("output is quantized per axis")


def take_in_layout(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table.take(index)`` with the result in ``index``'s memory layout (np.take itself
    returns C order, which would turn a channels-last or batch-inside tensor around)."""
    if index.ndim < 2 or index.flags.c_contiguous:
        return table.take(index)
    perm = tuple(sorted(range(index.ndim), key=lambda i: -index.strides[i]))
    moved = index.transpose(perm)
    if not moved.flags.c_contiguous:
        return table.take(index)
    return table.take(moved).transpose(np.argsort(perm))


class CodeTable:
    """``table[codes - lo]`` over every code of one integer type. 8-bit codes index a 256-entry
    copy of the table by their raw bytes (no widening copy of the input); the result keeps the
    input's memory layout."""

    def __init__(self, table: np.ndarray, dtype: str, lo: int) -> None:
        self.table, self.lo = table, lo
        self.raw: np.ndarray | None = None
        self.dtype: np.dtype[Any] | None = np.dtype(dtype) if dtype in ("int8", "uint8") else None
        if self.dtype is not None:  # codes outside the table (none for valid codes) read its edges
            values = np.arange(256, dtype=np.uint8).view(self.dtype).astype(np.int64)
            self.raw = table[np.clip(values - lo, 0, table.size - 1)]

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        x = np.asarray(codes)
        if self.raw is not None and x.dtype == self.dtype:
            return take_in_layout(self.raw, x.view(np.uint8))
        return self.table[x.astype(np.int64) - self.lo]


def centered(codes: np.ndarray, q: QType) -> np.ndarray:
    """``q - z`` as int64 (the zero point shaped along the quantization axis)."""
    a = np.asarray(codes).astype(np.int64)
    return a - q.shaped(q.zero_point, a.ndim)


Builder = Callable[[OpSpec], Kernel]
