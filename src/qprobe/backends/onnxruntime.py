"""onnxruntime as a backend (the only module of qprobe that imports onnxruntime).

Two named modes (../shared/reference/arithmetic.md §2):
  ``ort``        graph optimizations off (ORT_DISABLE_ALL): every QDQ group runs as float
                 DequantizeLinear -> op -> QuantizeLinear;
  ``ort-fused``  all optimizations on, with ``session.qdqisint8allowed=1``, so QDQ groups
                 run as onnxruntime's integer kernels (QLinearConv, QLinearAdd, ...).

Options (``--ref-opt``/``--target-opt``): ``threads=N`` (intra-op threads, default 1 for
reproducible timing), ``save_optimized=PATH`` (write the optimized graph, to see what fused),
and any ``session.*`` config key, passed through verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_ir as ir
import onnxruntime as ort

from qprobe.backends.base import BackendBase, Capabilities
from qprobe.errors import BackendError
from qprobe.model.loader import model_bytes

_KNOWN_OPTIONS = ("threads", "save_optimized", "session.*")


class OrtBackend(BackendBase):
    def __init__(self, fused: bool, arg: str | None = None, options: Mapping[str, str] | None = None) -> None:
        if arg:
            raise BackendError(f"backend {'ort-fused' if fused else 'ort'} takes no argument (got {arg!r})")
        self.fused = fused
        self.spec = "ort-fused" if fused else "ort"
        self.options = dict(options or {})
        for k in self.options:
            if k not in ("threads", "save_optimized") and not k.startswith("session."):
                raise BackendError(f"unknown option {k!r} for {self.spec}; known: {', '.join(_KNOWN_OPTIONS)}")

    def capabilities(self) -> Capabilities:
        return Capabilities(batch_size=None, cost_per_run_s=0.0)

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
        threads = int(self.options.get("threads", "1"))
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        info["intra_op_num_threads"] = str(threads)
        if "save_optimized" in self.options:
            so.optimized_model_filepath = self.options["save_optimized"]
            info["optimized_model_filepath"] = self.options["save_optimized"]
        for k, v in self.options.items():
            if k.startswith("session."):
                so.add_session_config_entry(k, v)
                info[k] = v
        so.log_severity_level = 3
        return so, info

    def open(self, model: ir.Model) -> OrtSession:
        so, info = self.session_options()
        try:
            sess = ort.InferenceSession(model_bytes(model), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise BackendError(f"onnxruntime ({self.spec}) cannot load the model: {e}") from e
        return OrtSession(sess, info)


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

    def close(self) -> None:
        self._sess = None  # type: ignore[assignment]
