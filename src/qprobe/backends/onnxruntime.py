"""onnxruntime as a backend (the only module of qprobe that imports onnxruntime).

Two named modes of the CPU provider (docs/arithmetic.md, onnxruntime), and any provider:
  ``ort``        graph optimizations off (ORT_DISABLE_ALL): every QDQ group runs as float
                 DequantizeLinear -> op -> QuantizeLinear;
  ``ort-fused``  all optimizations on, with ``session.qdqisint8allowed=1``, so QDQ groups
                 run as onnxruntime's integer kernels (QLinearConv, QLinearAdd, ...);
  ``ort-ep:PROVIDER`` one execution provider (``QNNExecutionProvider``, ``OpenVINOExecutionProvider``,
                 ``CoreMLExecutionProvider``, ``XnnpackExecutionProvider``, ``CPUExecutionProvider``;
                 the ``ExecutionProvider`` suffix may be left out) with onnxruntime's default
                 optimizations (ORT_ENABLE_ALL) and the CPU provider as fallback for nodes it
                 does not take. Which nodes each provider took is recorded from onnxruntime's
                 graph-assignment report (``session.record_ep_graph_assignment_info=1``,
                 ``InferenceSession.get_provider_graph_assignment_info()``) in
                 ``info["fusion_map"]``: one entry per partition; a partition of several compute
                 nodes compiled by one provider is a fusion group.

Options (``--ref-opt``/``--target-opt``): ``arena=on|off|auto`` (onnxruntime's CPU memory
arena; auto: off for models with 4 MB of weights or more, whose probed runs it would hold at
their peak), ``threads=N`` (intra-op threads; default: the cores
qprobe may use, ``qprobe.threads``), ``save_optimized=PATH`` (write the optimized graph, to see what fused),
and any ``session.*`` config key, passed through verbatim. For ``ort-ep`` every other
``key=value`` is a provider option (``backend_type=htp``, ``device_type=NPU``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from qprobe.backends.base import BackendBase, Capabilities
from qprobe.backends.fusion import FusionMap, RawKernel, build_fusion_map
from qprobe.errors import BackendError
from qprobe.model.loader import model_bytes, weight_bytes
from qprobe.threads import settings

_KNOWN_OPTIONS = ("threads", "save_optimized", "arena", "session.*")
# auto arena: off for models with at least this many bytes of weights. onnxruntime's CPU arena
# keeps every probed output of a run and never shrinks; off, a ResNet-18-sized comparison peaked
# at 1 291 MB instead of 2 194 MB (58.6 s vs 53.0 s); small nets keep it (TCN: 5-10 % faster)
ARENA_OFF_WEIGHT_BYTES = 4 << 20
_SESSION_KEYS = ("threads", "save_optimized")
# onnxruntime's type strings ("tensor(float)") -> ONNX element types
_ELEM_TYPES = {f"tensor({name.lower()})": int(value) for name, value in onnx.TensorProto.DataType.items()
               if name != "UNDEFINED"}
_ASSIGNMENT_KEY = "session.record_ep_graph_assignment_info"
# where a provider missing from the installed wheel comes from
_WHEELS = {
    "QNNExecutionProvider": "onnxruntime-qnn (Windows on Snapdragon, Android)",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "CoreMLExecutionProvider": "the macOS onnxruntime wheel",
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "DmlExecutionProvider": "onnxruntime-directml",
    "XnnpackExecutionProvider": "an onnxruntime build with --use_xnnpack (the Android/iOS packages have it)",
}


class OrtBackend(BackendBase):
    def __init__(self, fused: bool, arg: str | None = None, options: Mapping[str, str] | None = None) -> None:
        if arg:
            raise BackendError(f"backend {'ort-fused' if fused else 'ort'} takes no argument (got {arg!r})")
        self.fused = fused
        self.spec = "ort-fused" if fused else "ort"
        self.options = dict(options or {})
        for k in self.options:
            if k not in ("threads", "save_optimized", "arena") and not k.startswith("session."):
                raise BackendError(f"unknown option {k!r} for {self.spec}; known: {', '.join(_KNOWN_OPTIONS)}")
        if self.options.get("arena", "auto") not in ("auto", "on", "off"):
            raise BackendError(f"arena={self.options['arena']!r}: use arena=on, arena=off or arena=auto")

    def capabilities(self) -> Capabilities:
        return Capabilities(batch_size=None, cost_per_run_s=0.0, types_outputs=True)

    def session_options(self) -> tuple[ort.SessionOptions, dict[str, str]]:
        so = ort.SessionOptions()
        info: dict[str, str] = {"onnxruntime": ort.__version__}
        if self.fused:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.add_session_config_entry("session.qdqisint8allowed", "1")
            info["graph_optimization_level"] = "ORT_ENABLE_ALL"
            info["session.qdqisint8allowed"] = "1"
        else:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            info["graph_optimization_level"] = "ORT_DISABLE_ALL"
        _apply_common(so, self.options, info)
        return so, info

    def open(self, model: ir.Model) -> OrtSession:
        so, info = self.session_options()
        so.enable_cpu_mem_arena = _arena_on(self.options.get("arena", "auto"), model)
        info["enable_cpu_mem_arena"] = str(int(so.enable_cpu_mem_arena))
        try:
            sess = ort.InferenceSession(model_bytes(model), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise BackendError(f"onnxruntime ({self.spec}) cannot load the model: {e}") from e
        return OrtSession(sess, info)


def _arena_on(choice: str, model: ir.Model) -> bool:
    """onnxruntime's CPU memory arena: ``on``/``off``, or ``auto`` (off for models with
    ``ARENA_OFF_WEIGHT_BYTES`` of weights or more)."""
    if choice != "auto":
        return choice == "on"
    return weight_bytes(model) < ARENA_OFF_WEIGHT_BYTES


def _apply_common(so: ort.SessionOptions, options: Mapping[str, str], info: dict[str, str]) -> None:
    """threads, save_optimized and session.* keys (shared by every onnxruntime mode)."""
    try:
        threads = int(options.get("threads", str(settings().ort_intra_op)))
    except ValueError as e:
        raise BackendError(f"threads={options['threads']!r} is not an integer; e.g. threads=2") from e
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    info["intra_op_num_threads"] = str(threads)
    if threads > 1 and "session.intra_op.allow_spinning" not in options:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        info["session.intra_op.allow_spinning"] = "0"
    if "save_optimized" in options:
        so.optimized_model_filepath = options["save_optimized"]
        info["optimized_model_filepath"] = options["save_optimized"]
    for k, v in options.items():
        if k.startswith("session."):
            so.add_session_config_entry(k, v)
            info[k] = v
    so.log_severity_level = 3


class OrtEpBackend(BackendBase):
    """``ort-ep:PROVIDER``: onnxruntime with one execution provider (CPU provider as fallback)."""

    def __init__(self, provider: str, options: Mapping[str, str] | None = None) -> None:
        available = ort.get_available_providers()
        name = provider.strip()
        if name not in available and f"{name}ExecutionProvider" in available:
            name = f"{name}ExecutionProvider"
        if name not in available:
            where = f"; {name} comes with {_WHEELS[name]}" if name in _WHEELS else ""
            raise BackendError(
                f"execution provider {provider!r} is not available in this onnxruntime ({ort.__version__}); "
                f"available: {', '.join(available)}{where}"
            )
        self.provider = name
        self.spec = f"ort-ep:{name}"
        opts = dict(options or {})
        self.session_opts = {k: v for k, v in opts.items() if k in _SESSION_KEYS or k.startswith("session.")}
        self.provider_opts = {k: v for k, v in opts.items() if k not in self.session_opts}

    def capabilities(self) -> Capabilities:
        # exposing a tensor moves partition boundaries and breaks the provider's fusions
        return Capabilities(batch_size=None, cost_per_run_s=0.0, probe_sensitive=True)

    def open(self, model: ir.Model) -> OrtSession:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        info: dict[str, str] = {
            "onnxruntime": ort.__version__, "provider": self.provider, "graph_optimization_level": "ORT_ENABLE_ALL",
            "provider_options": json.dumps(self.provider_opts, sort_keys=True),
        }
        so.add_session_config_entry(_ASSIGNMENT_KEY, "1")
        _apply_common(so, self.session_opts, info)
        providers: list[str | tuple[str, dict[str, str]]] = [(self.provider, dict(self.provider_opts))]
        if self.provider != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")
        try:
            sess = ort.InferenceSession(model_bytes(model), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime ({self.spec}) cannot load the model: {_one_line(e)}") from e
        info["providers"] = ",".join(sess.get_providers())
        fmap = assignment_map(sess, self.spec, model)
        info["fusion_map"] = fmap.dumps() if fmap is not None else ""
        if fmap is None:
            info["fusion_map_note"] = f"onnxruntime {ort.__version__} does not report the graph assignment"
        return OrtSession(sess, info)

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None:
        session = self.open(model)
        text = session.info.get("fusion_map", "")
        session.close()
        return FusionMap.loads(text).groups(model) if text else None


def assignment_map(sess: ort.InferenceSession, spec: str, model: ir.Model) -> FusionMap | None:
    """The providers' partitions as a fusion map (None when onnxruntime cannot report them)."""
    report = getattr(sess, "get_provider_graph_assignment_info", None)
    if report is None:
        return None
    raw = [
        RawKernel(f"{sg.ep_name}#{i}", sg.ep_name, "", "", tuple(n.name for n in sg.get_nodes()))
        for i, sg in enumerate(report())
    ]
    origin = {n.name or "": n.name or "" for n in model.graph}
    return build_fusion_map(spec, raw, origin, model)


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines) if len(lines) < 3 else lines[0]


class OrtSession:
    def __init__(self, sess: ort.InferenceSession, info: dict[str, str]) -> None:
        self._sess = sess
        self.info = info
        self._outputs = [o.name for o in sess.get_outputs()]
        self._fixed_batch = any(
            isinstance(i.shape[0], int) for i in sess.get_inputs() if i.shape
        )

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0] if feeds else 1
        try:
            if not self._fixed_batch or n == 1:
                res = self._sess.run(self._outputs, dict(feeds))
                return dict(zip(self._outputs, res, strict=True))
            parts = [self._sess.run(self._outputs, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime failed to run the model: {e}") from e
        return {name: np.concatenate([p[j] for p in parts], axis=0) for j, name in enumerate(self._outputs)}

    def value_types(self) -> dict[str, onnx.ValueInfoProto]:
        """The inputs' and outputs' types as onnxruntime inferred them when it loaded the model
        (its shape inference, the contrib operators' included)."""
        out = {}
        for arg in [*self._sess.get_inputs(), *self._sess.get_outputs()]:
            elem = _ELEM_TYPES.get(arg.type)
            if elem is None:
                continue
            # a per-sample tensor has the sample axis: onnxruntime reports an unknown shape as []
            dims = [d if isinstance(d, int | str) else None for d in arg.shape] if arg.shape else None
            out[arg.name] = onnx.helper.make_tensor_value_info(arg.name, elem, dims)
        return out

    def close(self) -> None:
        self._sess = None  # type: ignore[assignment,unused-ignore]
