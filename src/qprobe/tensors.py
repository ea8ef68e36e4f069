"""The data that flows between stages: quantization parameters, tensor records, traces.

A *Trace* is what one backend produced for one batch of samples: a mapping from tensor
name to ``TensorRecord``. Every array carries a leading sample axis, which is the model's
batch axis (samples are stacked along axis 0). Quantized tensors hold their integer
codes; ``TensorRecord.quant`` says how to read them. Traces record the probe plan they
were made with (DESIGN rule 7).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qprobe import serde
from qprobe.errors import InputError
from qprobe.fileio import atomic_save_npz

TRACE_SCHEMA = "qprobe.trace/1"

# ONNX TensorProto element types of the integer types qprobe reads (the one dtype map)
ONNX_INT_TYPES: dict[int, str] = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32"}

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
}


def along_axis(v: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """The one broadcast helper: a per-tensor value as a scalar array, a per-axis vector shaped
    ``[1, .., n, .., 1]`` to broadcast against a rank-``ndim`` tensor along ``axis`` (negative
    axes count from the end)."""
    if v.size == 1:
        return v.reshape(())
    if axis is None:
        return v
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


@dataclass(frozen=True)
class QuantParams:
    """Scale, zero point, integer type and axis of one quantized tensor.

    ``scale`` and ``zero_point`` hold one value (per tensor) or one per slice along
    ``axis`` (per axis). Scales are float32 values stored exactly as Python floats.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    dtype: str
    axis: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in INT_RANGES:
            raise InputError(f"unsupported quantized dtype {self.dtype!r}; known: {sorted(INT_RANGES)}")
        if len(self.scale) != len(self.zero_point):
            raise InputError(
                f"{len(self.scale)} scales but {len(self.zero_point)} zero points; they must match"
            )

    @classmethod
    def from_arrays(
        cls, scale: Any, zero_point: Any, dtype: str, axis: int | None = None
    ) -> QuantParams:
        s = np.asarray(scale, dtype=np.float32).reshape(-1)
        z = np.asarray(zero_point if zero_point is not None else 0).reshape(-1)
        if z.size == 1 and s.size > 1:
            z = np.repeat(z, s.size)
        per_axis = s.size > 1
        return cls(
            scale=tuple(float(v) for v in s),
            zero_point=tuple(int(v) for v in z),
            dtype=dtype,
            axis=axis if per_axis else None,
        )

    @property
    def per_tensor(self) -> bool:
        return len(self.scale) == 1

    @property
    def qmin(self) -> int:
        return INT_RANGES[self.dtype][0]

    @property
    def qmax(self) -> int:
        return INT_RANGES[self.dtype][1]

    def scale_array(self, ndim: int) -> np.ndarray:
        """Scale as float32, shaped to broadcast against a tensor of rank ``ndim``."""
        return self._shaped(np.asarray(self.scale, dtype=np.float32), ndim)

    def zero_point_array(self, ndim: int) -> np.ndarray:
        return self._shaped(np.asarray(self.zero_point, dtype=np.int64), ndim)

    def _shaped(self, v: np.ndarray, ndim: int) -> np.ndarray:
        return v.reshape(()) if self.per_tensor or self.axis is None else along_axis(v, ndim, self.axis)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """``(q - z) * s`` in float64 (exact for 8/16-bit codes and float32 scales)."""
        q = np.asarray(codes).astype(np.int64)
        z = self.zero_point_array(q.ndim)
        s = self.scale_array(q.ndim).astype(np.float64)
        return (q - z).astype(np.float64) * s

    def dequantize_f32(self, codes: np.ndarray) -> np.ndarray:
        """``float32(q - z) * float32(s)`` in float32, the way ST dequantizes for its metrics.

        ``q - z`` of 8/16-bit codes is exact in float32, so the subtraction is done there.
        """
        q = np.asarray(codes)
        diff = q.astype(np.float32) - self.zero_point_array(q.ndim).astype(np.float32)
        diff *= self.scale_array(q.ndim)
        return diff

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> QuantParams:
        return cls(
            scale=tuple(float(v) for v in d["scale"]),
            zero_point=tuple(int(v) for v in d["zero_point"]),
            dtype=str(d["dtype"]),
            axis=None if d.get("axis") is None else int(d["axis"]),
        )


@dataclass(frozen=True)
class TensorRecord:
    """One tensor over a batch of samples (axis 0 = samples).

    ``data`` holds integer codes when the tensor is quantized, floats otherwise. ``quant``
    is set for integer codes and also for float tensors that are the dequantized view of a
    quantized tensor (so that errors can be expressed in LSB).
    """

    name: str
    data: np.ndarray
    quant: QuantParams | None = None

    @property
    def is_codes(self) -> bool:
        return self.quant is not None and np.issubdtype(self.data.dtype, np.integer)

    def real(self, quant: QuantParams | None = None) -> np.ndarray:
        """Real values in float64; codes are dequantized with ``quant`` or their own params."""
        q = quant or self.quant
        if q is not None and np.issubdtype(self.data.dtype, np.integer):
            return q.dequantize(self.data)
        return np.asarray(self.data, dtype=np.float64)


@dataclass(frozen=True)
class ProbePlan:
    """Which tensors a run exposes, and whether exposing them changed the graph.

    ``mode`` is how the set was chosen (``outputs``, ``op-outputs``, ``all`` or
    ``explicit``); ``tensors`` are in topological order; ``added_outputs`` are the
    tensors that were not graph outputs before and had to be exposed.
    """

    mode: str
    tensors: tuple[str, ...]
    added_outputs: tuple[str, ...] = ()

    @property
    def changes_graph(self) -> bool:
        return bool(self.added_outputs)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "tensors": list(self.tensors), "added_outputs": list(self.added_outputs)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProbePlan:
        return cls(str(d["mode"]), tuple(d["tensors"]), tuple(d.get("added_outputs", ())))


@dataclass(frozen=True)
class Trace:
    """What one backend produced for one batch: tensor name -> record, plus provenance."""

    backend: str
    plan: ProbePlan
    records: dict[str, TensorRecord]
    session_info: dict[str, str] = field(default_factory=dict)
    first_sample: int = 0

    @property
    def num_samples(self) -> int:
        for r in self.records.values():
            return int(r.data.shape[0])
        return 0

    def save(self, path: Path) -> None:
        """Write ``path`` (JSON metadata) and ``path.with_suffix('.npz')`` (arrays)."""
        meta = {
            "schema": TRACE_SCHEMA,
            "backend": self.backend,
            "plan": self.plan.to_json(),
            "session_info": self.session_info,
            "first_sample": self.first_sample,
            "tensors": {
                n: {"quant": None if r.quant is None else r.quant.to_json(), "dtype": str(r.data.dtype)}
                for n, r in self.records.items()
            },
        }
        arrays = {f"t{i}": r.data for i, r in enumerate(self.records.values())}
        meta["keys"] = {n: f"t{i}" for i, n in enumerate(self.records)}
        atomic_save_npz(path.with_suffix(".npz"), arrays)
        serde.save(path, meta)

    @classmethod
    def load(cls, path: Path) -> Trace:
        meta = serde.load(path, TRACE_SCHEMA)
        with np.load(Path(path).with_suffix(".npz")) as z:
            records = {
                n: TensorRecord(
                    n,
                    z[meta["keys"][n]],
                    None if t["quant"] is None else QuantParams.from_json(t["quant"]),
                )
                for n, t in meta["tensors"].items()
            }
        return cls(
            backend=meta["backend"],
            plan=ProbePlan.from_json(meta["plan"]),
            records=records,
            session_info=dict(meta["session_info"]),
            first_sample=int(meta["first_sample"]),
        )


TRACE_ROLES = ("ref", "target", "ref.plain", "target.plain")


class TraceFolder:
    """Saved Traces of one comparison: ``<role>-<first sample>.json`` (+ ``.npz``) per batch, for
    the roles ``ref``, ``target`` (probed runs) and ``ref.plain``, ``target.plain`` (unprobed runs,
    when made). ``save`` is a comparison's ``on_traces`` sink; ``read(role)`` replays a role."""

    def __init__(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder} exists and is not a folder; pick another path to save traces in")
        self.folder = folder

    def __call__(self, ref: Trace, target: Trace) -> None:
        self.save("ref", ref)
        self.save("target", target)

    def save(self, role: str, trace: Trace) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        trace.save(self.folder / f"{role}-{trace.first_sample:06d}.json")

    def files(self, role: str) -> list[Path]:
        if role not in TRACE_ROLES:
            raise InputError(f"unknown trace role {role!r}; known: {', '.join(TRACE_ROLES)}")
        found = [p for p in self.folder.glob(f"{role}-*.json") if p.stem[len(role) + 1:].isdigit()]
        return sorted(found, key=lambda p: int(p.stem[len(role) + 1:]))

    def read(self, role: str) -> Iterator[Trace]:
        """The saved Traces of ``role`` in sample order (loaded one at a time)."""
        files = self.files(role)
        if not files and role in ("ref", "target"):
            raise InputError(
                f"{self.folder} holds no saved {role!r} traces ({role}-*.json); save them with "
                "`qprobe compare ... --save-traces DIR`"
            )
        for p in files:
            yield Trace.load(p)
