"""ST Edge AI Core (``stedgeai``) files, and its X-cross metrics reproduced digit for digit.

Owns:
  * ``read_val_io``: ``<name>_val_io.npz`` written by ``stedgeai validate`` (keys
    ``m_inputs_<i>``, ``m_outputs_<i>``, ``c_inputs_<i>``, ``c_outputs_<i>``, i from 1);
  * ``read_c_info``: the ``validation`` section of ``network_c_info.json``;
  * ``write_validate_inputs``: an npz (and optionally csv) that ``stedgeai validate -vi``
    accepts, so that the board and the reference see the same samples;
  * ``st_xcross_metrics``: the "X-cross #i" metrics from a val_io file;
  * ``fit_shape``: fitting an array recorded elsewhere (ST's c-shapes carry extra unit
    dimensions and may be channel-last) onto a model tensor's shape. It lives here because
    ST's files motivated it; the recorded and command backends use it too.

Two conventions of real ``stedgeai validate`` runs that its documentation does not state,
measured on published ST Edge AI Core 2.2.0 N6 target reports (Magnus3327/
stm32n6-edge-ai-benchmarks, three runs, 10 samples x 32 values each), are those of
``qprobe.metrics.st``: ``std`` and nse's ``var(ref)`` use ``ddof=1`` (std^2 / (rmse^2 -
mean^2) = 320/319 to 1.5e-7; nse then matches to 1e-12), and int8 data are dequantized in
float32 (``QuantParams.dequantize_f32``; the reported rmse/mae differ from an exact
dequantization by ~2e-6 relative, which float32 rounding explains [INF]).
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qprobe.errors import InputError
from qprobe.fileio import atomic_save_npz, atomic_write_text
from qprobe.metrics.st import StMetrics, looks_like_probabilities, st_metrics
from qprobe.tensors import QuantParams

_VAL_IO_KEY = re.compile(r"^(m|c)_(inputs|outputs)_(\d+)$")
SIDES = ("c", "m")
LAYOUTS = ("NCHW", "NHWC")


# --------------------------------------------------------------------------- val_io.npz


@dataclass(frozen=True)
class StValIo:
    """The arrays of one ``<name>_val_io.npz``, index ``i`` of each tuple is ST's ``#i+1``.

    Arrays are kept exactly as ST saved them (dtype and shape, samples on axis 0).
    """

    path: str
    m_inputs: tuple[np.ndarray, ...]
    m_outputs: tuple[np.ndarray, ...]
    c_inputs: tuple[np.ndarray, ...]
    c_outputs: tuple[np.ndarray, ...]

    def side(self, side: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """(inputs, outputs) of the C model (``c``) or of the original model (``m``)."""
        if side not in SIDES:
            raise InputError(f"unknown ST side {side!r}; known: c (the C model / board), m (the original model)")
        if side == "c":
            return self.c_inputs, self.c_outputs
        return self.m_inputs, self.m_outputs

    @property
    def num_samples(self) -> int:
        for group in (self.c_outputs, self.m_outputs, self.c_inputs, self.m_inputs):
            if group:
                return int(group[0].shape[0])
        return 0


def is_val_io(keys: Iterable[str]) -> bool:
    """True when the npz keys are those of a ``stedgeai validate`` val_io file."""
    return any((m := _VAL_IO_KEY.match(k)) is not None and m.group(2) == "outputs" for k in keys)


def read_val_io(path: str | Path) -> StValIo:
    p = Path(path)
    data = load_npz(p)
    groups: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for key, arr in data.items():
        m = _VAL_IO_KEY.match(key)
        if m is not None:
            groups.setdefault((m.group(1), m.group(2)), {})[int(m.group(3))] = arr
    if not any(kind == "outputs" for _s, kind in groups):
        raise InputError(
            f"{p}: no m_outputs_<i>/c_outputs_<i> arrays (keys: {sorted(data)}); "
            "pass the <name>_val_io.npz that `stedgeai validate` writes in its output directory"
        )
    seq = {g: _indexed(p, g, groups.get(g, {})) for g in [(s, k) for s in SIDES for k in ("inputs", "outputs")]}
    return StValIo(str(p), seq[("m", "inputs")], seq[("m", "outputs")], seq[("c", "inputs")], seq[("c", "outputs")])


def _indexed(p: Path, group: tuple[str, str], by_idx: dict[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    idx = sorted(by_idx)
    if idx and idx != list(range(1, len(idx) + 1)):
        raise InputError(f"{p}: {group[0]}_{group[1]}_<i> indices are {idx}; expected 1..{len(idx)} without gaps")
    return tuple(by_idx[i] for i in idx)


def load_npz(p: Path) -> dict[str, np.ndarray]:
    if not p.exists():
        raise InputError(f"{p} does not exist; check the path")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"{p} is not a readable .npz file ({e})") from e


# --------------------------------------------------------------------------- c_info.json


@dataclass(frozen=True)
class StValMetric:
    """One row of ``validation.val_metrics`` (``desc`` is e.g. ``X-cross #1``)."""

    desc: str
    rmse: float
    mae: float
    l2r: float
    mean: float
    std: float
    nse: float
    cos: float
    acc: float | None = None
    ts_name: str | None = None

    @property
    def output_index(self) -> int | None:
        """ST's 1-based output number, from ``desc``."""
        m = re.search(r"#\s*(\d+)", self.desc)
        return int(m.group(1)) if m else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StValMetric:
        acc = d.get("acc")
        num = {k: _float(d.get(k)) for k in ("rmse", "mae", "l2r", "mean", "std", "nse", "cos")}
        ts = d.get("ts_name")
        return cls(str(d.get("desc", "")), acc=_float(acc) if _is_number(acc) else None,
                   ts_name=None if ts is None else str(ts), **num)


@dataclass(frozen=True)
class StCInfo:
    """What qprobe reads from ``network_c_info.json``: the validation results and provenance."""

    path: str
    device: str | None
    val_error: float | None
    val_error_desc: str | None
    val_metrics: tuple[StValMetric, ...]
    tool_version: str | None = None
    arguments: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["val_metrics"] = [m.to_json() for m in self.val_metrics]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StCInfo:
        return cls(
            str(d["path"]), d.get("device"), d.get("val_error"), d.get("val_error_desc"),
            tuple(StValMetric.from_json(m) for m in d.get("val_metrics", ())),
            d.get("tool_version"), d.get("arguments"),
        )


def read_c_info(path: str | Path) -> StCInfo:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{p} is not a readable JSON file ({e}); pass network_c_info.json") from e
    val = doc.get("validation") or {}
    tools = (doc.get("environment") or {}).get("tools") or [{}]
    err = val.get("val_error")
    return StCInfo(
        path=str(p),
        device=val.get("device") or (doc.get("environment") or {}).get("device"),
        val_error=_float(err) if _is_number(err) else None,
        val_error_desc=val.get("val_error_desc"),
        val_metrics=tuple(StValMetric.from_json(m) for m in val.get("val_metrics") or ()),
        tool_version=tools[0].get("version"),
        arguments=tools[0].get("arguments"),
    )


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or v is None:
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _float(v: Any) -> float:
    return float(v) if _is_number(v) else math.nan  # ST writes "n.a." where it has no value


# --------------------------------------------------------------------------- metrics


def st_real(arr: np.ndarray, q: QuantParams | None, what: str) -> np.ndarray:
    """Real values as ST computes them: integer data dequantized in float32, floats as they are."""
    a = np.asarray(arr)
    if not np.issubdtype(a.dtype, np.integer):
        return a
    if q is None:
        raise InputError(
            f"{what} holds {a.dtype} codes but no scale/zero point is known for it; give them in a "
            "sidecar JSON (see docs/on-your-board.md) or use the QDQ model that was validated"
        )
    return q.dequantize_f32(a)


def st_xcross_metrics(
    val_io: StValIo, output_quant: Sequence[QuantParams | None], classifier: bool | None = None
) -> list[StMetrics]:
    """ST's "X-cross #i" metrics: m_outputs (R') against c_outputs (P), one row per output.

    ``output_quant[i]`` is the original model's output quantization for output ``#i+1``; as
    in ST, it dequantizes integer data of both sides. ``classifier=None`` computes accuracy
    only when the reference looks like probabilities.
    """
    if len(val_io.m_outputs) != len(val_io.c_outputs):
        raise InputError(
            f"{val_io.path}: {len(val_io.m_outputs)} m_outputs but {len(val_io.c_outputs)} c_outputs; "
            "X-cross needs both sides (was validate run with --no-exec-model?)"
        )
    rows = []
    for i, (m, c) in enumerate(zip(val_io.m_outputs, val_io.c_outputs, strict=True)):
        q = output_quant[i] if i < len(output_quant) else None
        ref = st_real(m, q, f"m_outputs_{i + 1}")
        pred = fit_shape(st_real(c, q, f"c_outputs_{i + 1}"), (None, *m.shape[1:]), what=f"c_outputs_{i + 1}")
        cls = looks_like_probabilities(ref) if classifier is None else classifier
        rows.append(st_metrics(ref, pred, classifier=cls))
    return rows


# --------------------------------------------------------------------------- shapes


def fit_shape(
    arr: np.ndarray, want: Sequence[int | None] | None, *, layout: str | None = None, what: str = "tensor"
) -> np.ndarray:
    """Fit ``arr`` (samples on axis 0) to a tensor of shape ``want`` (its batch dim is ignored).

    Accepted, in this order: the same per-sample shape; the same dimensions apart from
    unit ones (ST's ``(N, 1, 1, 32)`` for ``[1, 32]``, or ``[N, 1, ...]`` for a batch-1
    model); a channel-last array of a channel-first tensor (moved to channel-first). An
    explicit ``layout`` (``NHWC`` or ``NCHW``) says how ``arr`` is laid out instead of
    guessing; a square shape is ambiguous, so the first rule wins unless it is given.
    """
    if layout is not None and layout.upper() not in LAYOUTS:
        raise InputError(f"{what}: unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    a = np.asarray(arr)
    if a.ndim == 0:
        raise InputError(f"{what}: a scalar; expected samples on axis 0")
    nhwc = layout is not None and layout.upper() == "NHWC"
    if want is None:
        return np.moveaxis(a, -1, 1) if nhwc and a.ndim >= 3 else a
    per = tuple(want[1:])
    if nhwc and a.ndim == len(want) and a.ndim >= 3:
        a = np.moveaxis(a, -1, 1)
    fitted = _fit_per_sample(a, per)
    if fitted is not None:
        return fitted
    if layout is None and len(per) >= 2:
        channel_last = (*per[1:], per[0])
        fitted = _fit_per_sample(a, channel_last)
        if fitted is not None:
            return np.moveaxis(fitted, -1, 1)
    allowed = "extra unit dimensions" + (" and channel-last" if layout is None else "")
    raise InputError(
        f"{what}: shape {a.shape} does not fit the model's {_fmt(want)} (samples on axis 0, "
        f"{allowed} allowed); check that the data belongs to this model"
    )


def _fit_per_sample(a: np.ndarray, per: tuple[int | None, ...]) -> np.ndarray | None:
    got = a.shape[1:]
    if len(got) == len(per) and all(w is None or w == g for g, w in zip(got, per, strict=True)):
        return a
    if any(w is None for w in per):
        return None
    dims = [int(w) for w in per if w is not None]
    if [g for g in got if g != 1] == [w for w in dims if w != 1]:
        return a.reshape((a.shape[0], *dims))
    return None


def _fmt(shape: Sequence[int | None]) -> str:
    dims = ["N" if d is None and i == 0 else "?" if d is None else str(d) for i, d in enumerate(shape)]
    return "[" + ", ".join(dims) + "]"


# --------------------------------------------------------------------------- -vi inputs


def write_validate_inputs(inputs: Mapping[str, np.ndarray], path: str | Path, *, csv: bool = False) -> list[Path]:
    """Write ``inputs`` (model input order, samples on axis 0) for ``stedgeai validate -vi``.

    The npz has keys ``m_inputs_1``, ``m_inputs_2``, ... (one of the key families ST
    documents for -vi) holding the arrays unchanged: the model's own layout and dtype.
    With ``csv=True``, also ``<stem>_<i>.csv`` per input: one flattened sample per line, and
    a ``# dtype=int8``/``uint8`` tag line for integer data. Returns the files written.
    """
    p = Path(path)
    if not inputs:
        raise InputError("no inputs to write for stedgeai validate -vi")
    arrays = {f"m_inputs_{i}": np.asarray(a) for i, a in enumerate(inputs.values(), start=1)}
    atomic_save_npz(p, arrays)
    written = [p]
    if csv:
        for i, a in enumerate(arrays.values(), start=1):
            q = p.with_name(f"{p.stem}_{i}.csv")
            atomic_write_text(q, _csv_text(a))
            written.append(q)
    return written


def _csv_text(a: np.ndarray) -> str:
    flat = a.reshape(a.shape[0], -1)
    lines = []
    if a.dtype in (np.int8, np.uint8):
        lines.append(f"# dtype={a.dtype}")
    fmt = "%d" if np.issubdtype(a.dtype, np.integer) else "%.9g"
    lines.extend(",".join(fmt % v for v in row) for row in flat)
    return "\n".join(lines) + "\n"
