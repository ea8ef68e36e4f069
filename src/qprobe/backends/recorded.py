"""``recorded:PATH``: tensors captured elsewhere (a board, a vendor tool), replayed as a backend.

Two file formats, told apart by their keys:
  * generic .npz: keys are tensor names of the model (inputs and any subset of
    intermediate or output tensors), each with a leading sample axis, as integer codes or
    floats. An optional sidecar JSON (``PATH`` with suffix ``.json``, or ``sidecar=FILE``)
    gives per-tensor ``scale``, ``zero_point``, ``axis`` and ``layout`` where they differ
    from the model: ``{"layout": "NHWC", "tensors": {"name": {"scale": 0.05, ...}}}``;
  * ST's ``<name>_val_io.npz``: ``c_*`` (C model on the board, the default) or ``m_*``
    (original model, ``side=m``) arrays mapped by index onto the model's graph inputs and
    outputs (``#1`` is the first).

Quantization (a decision, see docs/on-your-board.md): integer codes whose parameters are
the model's (no sidecar entry, or an equal one) are returned as codes, so comparisons
dequantize both sides with the model's parameters. Codes recorded with *other* parameters
are returned as float32 real values dequantized with the recorded ones. ST files follow
ST's rule: integer data are dequantized in float32 with the original model's
quantization of that output (or the sidecar's), exactly as ``stedgeai validate`` does.
Arrays are fitted to the model's shapes (``qprobe.backends.st.fit_shape``: extra unit
dimensions, channel-last).

The session returns only the recorded tensors among the opened model's graph outputs, for
samples ``[first_sample, first_sample + N)``; it checks the feeds against the recorded
inputs when it has them. Options: ``sidecar``, ``layout`` (NHWC|NCHW for every recorded
tensor), ``side`` (c|m, ST files only), ``c_info`` (ST's network_c_info.json; found next
to the npz by default; its reported metrics go into the session info).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import BackendBase, Capabilities
from qprobe.backends.st import (
    StValIo,
    fit_shape,
    is_val_io,
    load_npz,
    read_c_info,
    read_val_io,
    st_real,
)
from qprobe.errors import BackendError, InputError
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import input_specs
from qprobe.model.loader import to_proto
from qprobe.model.quant import build_quant_index
from qprobe.model.shapes import inferred
from qprobe.tensors import QuantParams

KNOWN_OPTIONS = ("sidecar", "layout", "side", "c_info")
_INPUTS_DIFFER = "inputs differ from the recorded ones; pass --inputs <the recorded npz> or omit --inputs"

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorMeta:
    """Sidecar facts about one recorded tensor (None: as in the model)."""

    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    axis: int | None = None
    layout: str | None = None

    def quant(self, dtype: np.dtype) -> QuantParams | None:
        """The recorded codes' parameters (None for float data or when the sidecar has none)."""
        if self.scale is None or not np.issubdtype(dtype, np.integer):
            return None
        zp = self.zero_point if self.zero_point is not None else (0,)
        return QuantParams.from_arrays(self.scale, zp, str(np.dtype(dtype)), self.axis)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorMeta:
        s, z = d.get("scale"), d.get("zero_point")
        return cls(
            None if s is None else tuple(float(v) for v in np.atleast_1d(s)),
            None if z is None else tuple(int(v) for v in np.atleast_1d(z)),
            None if d.get("axis") is None else int(d["axis"]),
            None if d.get("layout") is None else str(d["layout"]).upper(),
        )


def read_sidecar(path: Path) -> tuple[dict[str, TensorMeta], str | None]:
    """Per-tensor metadata and the default layout from a sidecar JSON."""
    try:
        doc = json.loads(path.read_text())
        tensors = {str(k): TensorMeta.from_json(v) for k, v in (doc.get("tensors") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise InputError(
            f"sidecar {path} is not valid ({e}); expected "
            '{"layout": "NHWC", "tensors": {"NAME": {"scale": S, "zero_point": Z, "layout": "NCHW"}}}'
        ) from e
    layout = doc.get("layout")
    return tensors, None if layout is None else str(layout).upper()


def tensor_shapes(model: ir.Model) -> dict[str, Shape]:
    """Shape of every value that has one, after ONNX shape inference (None dims: symbolic)."""
    g = inferred(to_proto(model)).graph
    shapes: dict[str, Shape] = {}
    for vi in (*g.input, *g.value_info, *g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return shapes


@dataclass(frozen=True)
class _Bound:
    """The recording fitted to one model: named arrays in the model's shapes and dtypes."""

    inputs: dict[str, np.ndarray]
    tensors: dict[str, np.ndarray]
    input_quant: dict[str, QuantParams | None]
    num_samples: int


class RecordedBackend(BackendBase):
    def __init__(self, path: Path, options: Mapping[str, str] | None = None) -> None:
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(KNOWN_OPTIONS))
        if unknown:
            raise BackendError(f"unknown option(s) {unknown} for recorded:; known: {', '.join(KNOWN_OPTIONS)}")
        self.path = Path(path)
        self.spec = f"recorded:{path}"
        self.layout = opts.get("layout", "").upper() or None
        data = _load(self.path)
        self.st: StValIo | None = read_val_io(self.path) if is_val_io(data) else None
        self.side = opts.get("side", "c")
        if self.st is not None:
            self.st.side(self.side)  # validates the option
        elif "side" in opts:
            raise BackendError(f"option side= applies to ST val_io files only; {self.path} has keys {sorted(data)}")
        self._arrays = data if self.st is None else {}
        sidecar = Path(opts["sidecar"]) if "sidecar" in opts else self.path.with_suffix(".json")
        if "sidecar" in opts and not sidecar.exists():
            raise InputError(f"sidecar {sidecar} does not exist")
        self.meta, side_layout = read_sidecar(sidecar) if sidecar.exists() else ({}, None)
        self.layout = self.layout or side_layout
        self.info = {"recorded": str(self.path), "format": "st-val-io" if self.st else "npz"}
        self.info.update(self._c_info(opts))
        self._bound: _Bound | None = None
        self._bound_key: tuple[str, ...] | None = None

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, str]) -> RecordedBackend:
        if not arg:
            raise BackendError("recorded: needs a path, e.g. recorded:board.npz or recorded:network_val_io.npz")
        return cls(Path(arg).expanduser(), options)

    # -- what it has ------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(accepts_models=False, available_tensors=self._available(), batch_size=None)

    def _available(self) -> frozenset[str]:
        if self.st is None:
            return frozenset(self._arrays)
        if self._bound is None:
            raise BackendError(
                f"{self.spec}: an ST val_io file is mapped onto a model by index; call bind(model) "
                "before asking which tensors it has"
            )
        return frozenset((*self._bound.inputs, *self._bound.tensors))

    def bind(self, model: ir.Model) -> None:
        """Map the recording onto ``model``'s names, shapes and dtypes (done by ``open`` too)."""
        key = tuple(graph_output_names(model)) + tuple(s.name for s in input_specs(model))
        if self._bound is None or key != self._bound_key:
            self._bound, self._bound_key = self._fit(model), key

    def recorded_inputs(self, model: ir.Model | None = None) -> dict[str, np.ndarray] | None:
        """The recorded model inputs (fitted to ``model`` or to the last bound one), or None."""
        if model is not None:
            self.bind(model)
        if self._bound is not None:
            return dict(self._bound.inputs) or None
        if self.st is not None:
            self._available()  # raises: names are unknown before binding
        return None

    def open(self, model: ir.Model) -> RecordedSession:
        self.bind(model)
        assert self._bound is not None
        outs = {n: self._bound.tensors[n] for n in graph_output_names(model) if n in self._bound.tensors}
        if not outs:
            raise InputError(
                f"{self.spec} holds none of the model's outputs {graph_output_names(model)}; "
                f"it has {sorted(self._available())}"
            )
        return RecordedSession(self.spec, outs, self._bound, dict(self.info))

    # -- fitting ---------------------------------------------------------------------

    def _fit(self, model: ir.Model) -> _Bound:
        shapes = tensor_shapes(model)
        index = build_quant_index(model)
        specs = input_specs(model)
        named = self._named(model, [s.name for s in specs])
        in_quant = {s.name: index.quant_of(_q_of_input(model, s.name)) for s in specs}
        inputs: dict[str, np.ndarray] = {}
        tensors: dict[str, np.ndarray] = {}
        for name, raw in named.items():
            meta = self.meta.get(name, TensorMeta())
            arr = fit_shape(raw, shapes.get(name), layout=meta.layout or self.layout, what=f"{self.spec} {name!r}")
            spec = next((s for s in specs if s.name == name), None)
            if spec is not None:
                inputs[name] = _as_model_input(arr, spec.dtype, meta.quant(arr.dtype) or in_quant[name], name)
            elif self.st is not None:
                tensors[name] = st_real(arr, meta.quant(arr.dtype) or index.quant_of(name), f"{self.spec} {name!r}")
            else:
                tensors[name] = _generic_codes(arr, meta.quant(arr.dtype), index.quant_of(name))
        counts = {k: int(v.shape[0]) for k, v in (*inputs.items(), *tensors.items())}
        if len(set(counts.values())) > 1:
            raise InputError(f"{self.spec}: tensors have different sample counts {counts}; they must match")
        return _Bound(inputs, tensors, in_quant, next(iter(counts.values()), 0))

    def _named(self, model: ir.Model, input_names: list[str]) -> dict[str, np.ndarray]:
        if self.st is None:
            _check_names(model, self._arrays, self.spec)
            return dict(self._arrays)
        ins, outs = self.st.side(self.side)
        out_names = graph_output_names(model)
        if len(outs) > len(out_names) or len(ins) > len(input_names):
            raise InputError(
                f"{self.spec}: the file has {len(ins)} inputs and {len(outs)} outputs, the model "
                f"{len(input_names)} and {len(out_names)}; pass the model that was validated"
            )
        named = dict(zip(input_names, ins, strict=False))
        named.update(zip(out_names, outs, strict=False))
        return named

    def _c_info(self, opts: Mapping[str, str]) -> dict[str, str]:
        if self.st is None:
            return {}
        given = Path(opts["c_info"]) if "c_info" in opts else None
        found = given or next(iter(sorted(self.path.parent.glob("*_c_info.json"))), None)
        if found is None:
            return {}
        info = read_c_info(found)
        rows = [
            f"{m.desc}: rmse={m.rmse:.9g} mae={m.mae:.9g} l2r={m.l2r:.9g} mean={m.mean:.9g} "
            f"std={m.std:.9g} nse={m.nse:.9g} cos={m.cos:.9g}"
            for m in info.val_metrics
        ]
        return {"st.c_info": str(found), "st.reported": "; ".join(rows), "st.version": str(info.tool_version)}


class RecordedSession:
    """Serves recorded samples; checks that the feeds are the recorded inputs."""

    def __init__(self, spec: str, outputs: dict[str, np.ndarray], bound: _Bound, info: dict[str, str]) -> None:
        self.spec = spec
        self.info = info
        self._outputs = outputs
        self._bound = bound

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        total = self._bound.num_samples
        n = int(next(iter(feeds.values())).shape[0]) if feeds else total - first_sample
        if first_sample < 0 or first_sample + n > total:
            raise InputError(
                f"{self.spec} holds {total} samples; samples {first_sample}..{first_sample + n - 1} were asked "
                "for. Use the recorded inputs (omit --inputs) or a subset of them"
            )
        for name, rec in self._bound.inputs.items():
            if name in feeds:
                _check_feed(np.asarray(feeds[name]), rec[first_sample : first_sample + n],
                            self._bound.input_quant.get(name), name, first_sample, self.spec)
        return {k: v[first_sample : first_sample + n] for k, v in self._outputs.items()}

    def close(self) -> None:
        self._outputs = {}


def _load(path: Path) -> dict[str, np.ndarray]:
    if path.suffix.lower() != ".npz":
        raise InputError(f"recorded:{path}: expected an .npz file (generic recording or ST's <name>_val_io.npz)")
    return load_npz(path)


def _check_names(model: ir.Model, arrays: Mapping[str, np.ndarray], spec: str) -> None:
    known = [v.name for v in model.graph.inputs if v.name] + [v.name for n in model.graph for v in n.outputs if v.name]
    for name in arrays:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `qprobe inspect MODEL` lists them"
            raise InputError(f"{spec}: key {name!r} is not a tensor of the model{hint}")


def _q_of_input(model: ir.Model, name: str) -> str:
    """The QuantizeLinear output that quantizes a float graph input (or the input itself)."""
    for v in model.graph.inputs:
        if v.name == name:
            for c in v.consumers():
                if c.op_type == "QuantizeLinear" and c.outputs[0].name:
                    return c.outputs[0].name
    return name


def _as_model_input(arr: np.ndarray, want: np.dtype, q: QuantParams | None, name: str) -> np.ndarray:
    """Recorded inputs in the model's dtype: codes for a float input are dequantized."""
    if np.issubdtype(want, np.floating) and np.issubdtype(arr.dtype, np.integer):
        return st_real(arr, q, f"recorded input {name!r}").astype(want)
    if np.issubdtype(want, np.integer) and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"recorded input {name!r} is {arr.dtype}; the model wants {want} codes")
    return arr.astype(want, copy=False)


def _generic_codes(arr: np.ndarray, recorded: QuantParams | None, model_q: QuantParams | None) -> np.ndarray:
    """Codes stay codes when their parameters are the model's; else real values (float32)."""
    if not np.issubdtype(arr.dtype, np.integer) or recorded is None:
        return arr
    if model_q is not None and _same_quant(recorded, model_q):
        return arr
    return recorded.dequantize_f32(arr)


def _same_quant(a: QuantParams, b: QuantParams) -> bool:
    sa, sb = np.asarray(a.scale, np.float32), np.asarray(b.scale, np.float32)
    return bool(sa.shape == sb.shape and np.all(sa == sb) and a.zero_point == b.zero_point)


def _check_feed(
    feed: np.ndarray, rec: np.ndarray, q: QuantParams | None, name: str, first: int, spec: str
) -> None:
    """Equal codes for integer inputs; for float inputs with a quantizer, codes within one (quantized and
    clipped with the input's parameters, as the board stores them); else within 1e-5 relative."""
    ok = feed.size == rec.size
    diff = 0.0
    if ok:
        a = feed.reshape(rec.shape).astype(np.float64)
        b = rec.astype(np.float64)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        if np.issubdtype(rec.dtype, np.integer):
            ok = diff == 0.0
        elif q is not None:  # a board stores inputs quantized and clipped: compare in the quantized domain
            codes = [np.clip(np.round(v / q.scale_array(v.ndim)) + q.zero_point_array(v.ndim), q.qmin, q.qmax)
                     for v in (a, b)]
            diff = float(np.max(np.abs(codes[0] - codes[1]))) if a.size else 0.0
            ok = diff <= 1.0  # a rounding tie may fall either way
        else:
            ok = bool(np.all(np.abs(a - b) <= 1e-6 + 1e-5 * np.abs(b)))
    if not ok:
        got = f"max |diff| {diff:.3g}{' codes' if q is not None else ''}" if feed.size == rec.size else \
            f"shape {feed.shape} vs {rec.shape}"
        raise InputError(f"{spec}: {_INPUTS_DIFFER} (input {name!r}, samples from {first}: {got})")
