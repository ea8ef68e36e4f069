"""``openvino[:DEVICE]``: OpenVINO as a target (the only module of qprobe that imports openvino).

The model is read by OpenVINO's ONNX frontend and compiled for ``DEVICE`` (``CPU`` by default;
``GPU``, ``NPU`` where ``Core().available_devices`` lists them; ``AUTO``/``HETERO:...``/
``MULTI:...`` are passed through). Outputs are looked up by their ONNX tensor names (every
output port carries the names of the ONNX tensor it computes, extra probe outputs included).

Batching follows the model: a dynamic batch dimension is reshaped to each run's sample count
(one compile per distinct input shape, as an NPU needs static shapes); a fixed batch is run
in chunks of that size (per sample when it is 1).

Options (``--target-opt key=value``):
  precision=f32|bf16|f16|default (f32: ``INFERENCE_PRECISION_HINT``, so that a bf16 default of
    the host CPU does not turn the float islands of an int8 model into bf16; ``default`` leaves
    the device's choice)  threads=N (1; ``INFERENCE_NUM_THREADS``, 0: the device's choice)
  hint=LATENCY|THROUGHPUT|CUMULATIVE_THROUGHPUT (LATENCY)  cache_dir=DIR (``CACHE_DIR``)
  and any upper-case OpenVINO property, passed verbatim (``NUM_STREAMS=1``).
Each session records them, the precision the compiled model reports, and the fusion map
(``info["fusion_map"]``, see ``qprobe.backends.fusion``) of its first compile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir
import openvino as ov

from qprobe.backends.base import BackendBase, Capabilities
from qprobe.backends.fusion import FusionMap, RawKernel, build_fusion_map
from qprobe.errors import BackendError
from qprobe.model.graph import graph_output_names
from qprobe.model.loader import model_bytes

KNOWN_OPTIONS = ("precision", "threads", "hint", "cache_dir")
PRECISIONS = ("f32", "bf16", "f16", "default")
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_VIRTUAL = ("AUTO", "HETERO", "MULTI", "BATCH")
_NOT_KERNELS = frozenset({"Input", "Output", "Const", "Parameter", "Result", "Constant"})


def one_line(e: BaseException) -> str:
    """OpenVINO's exceptions span many lines: the unsupported operations when it names them (its
    conversion summary), else the last non-empty line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    missing = [ln.split(":", 1)[1].strip() for ln in lines if "No conversion rule found for operations" in ln]
    if missing:
        return (f"OpenVINO has no conversion for {missing[0]} (com.microsoft QOperator ops are onnxruntime's; "
                "export the model as QDQ for OpenVINO)")
    return lines[-1] if lines else type(e).__name__


@dataclass(frozen=True)
class OvOptions:
    precision: str = "f32"
    threads: int = 1
    hint: str = "LATENCY"
    cache_dir: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> OvOptions:
        raw = {k: v for k, v in options.items() if k.isupper()}
        unknown = sorted(k for k in options if k not in raw and k not in KNOWN_OPTIONS)
        if unknown:
            raise BackendError(
                f"unknown option(s) {unknown} for openvino; known: {', '.join(KNOWN_OPTIONS)}, "
                "or an upper-case OpenVINO property such as NUM_STREAMS=1"
            )
        precision = options.get("precision", "f32").lower()
        hint = options.get("hint", "LATENCY").upper()
        if precision not in PRECISIONS:
            raise BackendError(f"openvino precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
        if hint not in HINTS:
            raise BackendError(f"openvino hint={hint!r}; expected one of {', '.join(HINTS)}")
        try:
            threads = int(options.get("threads", "1"))
        except ValueError as e:
            raise BackendError(f"openvino threads={options['threads']!r} is not an integer; e.g. threads=2") from e
        return cls(precision, max(0, threads), hint, options.get("cache_dir") or None, raw)

    def properties(self, supported: frozenset[str]) -> dict[str, Any]:
        """The compile properties, restricted to what the device supports (``supported``)."""
        props: dict[str, Any] = {"PERFORMANCE_HINT": self.hint}
        if self.precision != "default" and "INFERENCE_PRECISION_HINT" in supported:
            props["INFERENCE_PRECISION_HINT"] = self.precision
        if self.threads and "INFERENCE_NUM_THREADS" in supported:
            props["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir:
            props["CACHE_DIR"] = self.cache_dir
        props.update(self.raw)
        return props


class OpenVinoBackend(BackendBase):
    def __init__(self, device: str | None, options: Mapping[str, str] | None = None) -> None:
        self.device = (device or "CPU").strip() or "CPU"
        self.spec = f"openvino:{self.device}" if device else "openvino"
        self.options = OvOptions.parse(dict(options or {}))
        self.core = ov.Core()
        self._check_device()

    def _check_device(self) -> None:
        available = list(self.core.available_devices)
        base = self.device.split(":")[0].split(".")[0]
        if base in _VIRTUAL or self.device in available or base in {d.split(".")[0] for d in available}:
            return
        raise BackendError(
            f"OpenVINO device {self.device!r} is not available here; available devices: "
            f"{', '.join(available) or 'none'} (use openvino:CPU, or install the device's driver)"
        )

    def capabilities(self) -> Capabilities:
        cpu = self.device.split(".")[0] == "CPU"
        threads = self.options.threads or (os.cpu_count() or 1)
        return Capabilities(
            batch_size=None, cost_per_run_s=0.0, probe_sensitive=True, deterministic=cpu,
            concurrency=max(1, (os.cpu_count() or 1) // threads) if cpu else 1,
        )

    def open(self, model: ir.Model) -> OvSession:
        try:
            ov_model = self.core.read_model(model_bytes(model))
        except Exception as e:  # OpenVINO raises RuntimeError with a multi-line text
            raise BackendError(f"OpenVINO cannot read the model: {one_line(e)}") from e
        return OvSession(self, model, ov_model)

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None:
        session = self.open(model)
        try:
            fmap = session.fusion_map()
        finally:
            session.close()
        return fmap.groups(model) if fmap is not None else None

    def supported_properties(self) -> frozenset[str]:
        try:
            return frozenset(self.core.get_property(self.device, "SUPPORTED_PROPERTIES"))
        except Exception:  # virtual devices answer only once compiled
            return frozenset()

    def base_info(self) -> dict[str, str]:
        info = {
            "openvino": ov.get_version(), "device": self.device,
            "inference_precision_requested": self.options.precision, "threads": str(self.options.threads),
            "performance_hint": self.options.hint,
        }
        if self.options.cache_dir:
            info["cache_dir"] = self.options.cache_dir
        info.update({f"property.{k}": v for k, v in self.options.raw.items()})
        try:
            info["full_device_name"] = str(self.core.get_property(self.device, "FULL_DEVICE_NAME"))
        except Exception:
            pass
        return info


class OvSession:
    """One ONNX model on one OpenVINO device; compiled once per distinct input shape."""

    def __init__(self, backend: OpenVinoBackend, model: ir.Model, ov_model: ov.Model) -> None:
        self.backend = backend
        self.model = model
        self.ov_model = ov_model
        self.info = backend.base_info()
        self.origin = origin_map(ov_model, model)
        self.outputs = graph_output_names(model)
        self.inputs = [p.get_any_name() for p in ov_model.inputs]
        self.fixed_batch = _fixed_batch(ov_model)
        self._compiled: dict[tuple[tuple[int, ...], ...], tuple[ov.CompiledModel, dict[str, ov.ConstOutput]]] = {}
        self.info["batch"] = (
            f"fixed {self.fixed_batch}: run in chunks of {self.fixed_batch}" if self.fixed_batch
            else "dynamic: reshaped to each run's sample count"
        )

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0] if feeds else 1
        b = self.fixed_batch or n
        if n % b:
            raise BackendError(f"the model's batch is fixed to {b}; {n} samples do not split into batches of {b}")
        parts = [self._infer({k: v[i : i + b] for k, v in feeds.items()}) for i in range(0, n, b)]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in self.outputs}

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        compiled, ports = self._compile(tuple(tuple(feeds[k].shape) for k in self.inputs if k in feeds))
        try:
            res = compiled.create_infer_request().infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        except Exception as e:
            raise BackendError(f"OpenVINO ({self.backend.spec}) failed to run the model: {one_line(e)}") from e
        return {name: np.array(res[port], copy=True) for name, port in ports.items()}

    def _compile(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[ov.CompiledModel, dict[str, ov.ConstOutput]]:
        key = () if self.fixed_batch else shapes
        if key not in self._compiled:
            if key:
                self._reshape(shapes)
            props = self.backend.options.properties(self.backend.supported_properties())
            try:
                compiled = self.backend.core.compile_model(self.ov_model, self.backend.device, props)
            except Exception as e:
                hint = "; try precision=f32" if self.backend.options.precision in ("bf16", "f16", "default") else ""
                raise BackendError(
                    f"OpenVINO cannot compile the model for {self.backend.device}: {one_line(e)}{hint}"
                ) from e
            self._compiled[key] = (compiled, output_ports(compiled, self.outputs))
            if len(self._compiled) == 1:
                self._record(compiled, shapes)
        return self._compiled[key]

    def _reshape(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        try:
            self.ov_model.reshape({k: ov.PartialShape(list(s)) for k, s in zip(self.inputs, shapes, strict=True)})
        except Exception as e:
            raise BackendError(
                f"OpenVINO cannot reshape the model's inputs to {list(shapes)}: {one_line(e)}; "
                "export the model with a fixed batch of 1 to run it per sample"
            ) from e

    def _record(self, compiled: ov.CompiledModel, shapes: tuple[tuple[int, ...], ...]) -> None:
        for key, prop in (("inference_precision", "INFERENCE_PRECISION_HINT"),
                          ("execution_devices", "EXECUTION_DEVICES")):
            try:
                value = compiled.get_property(prop)
            except Exception:
                continue
            self.info[key] = value.to_string() if isinstance(value, ov.Type) else str(value)
        fmap = build_fusion_map(self.backend.spec, runtime_kernels(compiled), self.origin, self.model)
        self.info["fusion_map"] = fmap.dumps()
        self.info["fusion_map_input_shapes"] = str([list(s) for s in shapes])

    def fusion_map(self) -> FusionMap | None:
        """The fusion map of the first compile (compiling for one sample if nothing ran yet)."""
        if "fusion_map" not in self.info:
            one = tuple(_one_sample_shape(p) for p in self.ov_model.inputs)
            self._compile(one if all(d > 0 for s in one for d in s) else ())
        text = self.info.get("fusion_map")
        return FusionMap.loads(text) if text else None

    def close(self) -> None:
        self._compiled.clear()


def output_ports(compiled: ov.CompiledModel, names: list[str]) -> dict[str, ov.ConstOutput]:
    """Each ONNX output name -> the compiled output port that carries it among its names."""
    ports: dict[str, ov.ConstOutput] = {}
    for name in names:
        port = next((p for p in compiled.outputs if name in p.get_names()), None)
        if port is None:
            known = sorted(n for p in compiled.outputs for n in p.get_names())
            raise BackendError(f"OpenVINO lost the name of output {name!r}; its outputs are named {known}")
        ports[name] = port
    return ports


def origin_map(ov_model: ov.Model, model: ir.Model) -> dict[str, str]:
    """OpenVINO op friendly name -> the ONNX node it was made from.

    An op whose output carries an ONNX tensor name belongs to that tensor's producer; the
    unnamed ops of a node's decomposition (``Convert``, ``Subtract`` of a DequantizeLinear,
    ``conv/WithoutBiases`` of a Conv with bias) belong to the node of their first named
    consumer. Friendly names made unique first (the frontend may repeat one).
    """
    producers = {v.name: n.name or "" for n in model.graph for v in n.outputs if v.name}
    ops = list(ov_model.get_ordered_ops())
    seen: set[str] = set()
    for op in ops:
        name = op.get_friendly_name()
        if name in seen:
            op.set_friendly_name(f"{name}__qprobe{len(seen)}")
        seen.add(op.get_friendly_name())
    origin: dict[str, str] = {}
    for op in reversed(ops):
        if op.get_type_name() in ("Parameter", "Result", "Constant"):
            continue
        named = [producers[t] for o in op.outputs() for t in sorted(o.get_names()) if t in producers]
        consumers = [c.get_node().get_friendly_name() for o in op.outputs() for c in o.get_target_inputs()]
        node = named[0] if named else next((origin[c] for c in consumers if c in origin), None)
        if node is not None:
            origin[op.get_friendly_name()] = node
    return origin


def runtime_kernels(compiled: ov.CompiledModel) -> list[RawKernel]:
    """The executed kernels of the runtime model, with the op names each one fused."""
    out: list[RawKernel] = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = _rt_info(op)
        if info.get("layerType", "") in _NOT_KERNELS or "originalLayersNames" not in info:
            continue
        names = tuple(n for n in info["originalLayersNames"].split(",") if n)
        out.append(RawKernel(
            op.get_friendly_name(), info.get("layerType", ""), info.get("runtimePrecision", ""),
            info.get("outputPrecisions", ""), names,
        ))
    return out


def _rt_info(op: ov.Node) -> dict[str, str]:
    rt = op.get_rt_info()
    keys = ("layerType", "originalLayersNames", "runtimePrecision", "outputPrecisions")
    present = set(rt.keys())
    return {k: str(rt[k].astype(str)) for k in keys if k in present}


def _fixed_batch(ov_model: ov.Model) -> int:
    """The batch (first dimension) when every input fixes it to one number, else 0 (dynamic)."""
    shapes = [p.get_partial_shape() for p in ov_model.inputs]
    if not all(ps.rank.is_static for ps in shapes):
        return 0
    dims = [ps[0] for ps in shapes if ps.rank.get_length() > 0]
    if dims and all(d.is_static for d in dims):
        sizes = {d.get_length() for d in dims}
        if len(sizes) == 1:
            return sizes.pop()
    return 0


def _one_sample_shape(port: ov.Output) -> tuple[int, ...]:
    ps = port.get_partial_shape()
    dims = [ps[i] for i in range(ps.rank.get_length())]
    return tuple(1 if i == 0 else (d.get_length() if d.is_static else -1) for i, d in enumerate(dims))
