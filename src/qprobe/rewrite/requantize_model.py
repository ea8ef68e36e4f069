"""Requantize the whole model from its float original, pinning the scale the envelope needs.

The principled fix: ``onnxruntime.quantization.quantize_static`` on the float model and the
calibration data, with ``TensorQuantOverrides`` pinning the op's output (scale =
``max(operand scales) / aim``, the original zero point), so that every other scale is derived
again by calibration. The settings are read from the int8 model (QDQ, 8-bit types of its
activations and weights, per channel when its weights are). Operand scales come out of
calibration, so the pin is checked on the result and raised again (up to three times) until
every operand ratio is inside the envelope. This is the only module of ``rewrite`` that
imports onnxruntime (pyproject's ruff per-file-ignores says why).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from qprobe.model.loader import load_model
from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer
from qprobe.rewrite.requant import eltwise_refusal, ratios_text
from qprobe.rewrite.site import Site, find_site, qdq_params

ATTEMPTS = 3


class RequantizeModel(RewritePass):
    name = "requantize-model"
    summary = "requantize the float model with quantize_static, TensorQuantOverrides pinning the op's output scale"

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        why = eltwise_refusal(ctx, site)
        if why is not None:
            return why
        if ctx.float_model is None or ctx.calibration is None:
            return "needs the float model and calibration data (--float-model F --calibration F)"
        names, inputs = _float_tensors(ctx.float_model)
        if site.float_out().name not in names:
            return f"the float model has no tensor {site.float_out().name!r} (the one {site.q.name} quantizes)"
        with np.load(ctx.calibration) as z:
            missing = sorted(inputs - set(z.files))
        if missing:
            return f"the calibration data has no array for the float model's input(s) {missing}"
        return None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit | str:
        assert ctx.float_model is not None and ctx.calibration is not None
        settings, tensor = _settings(ctx.model, site), site.float_out().name or ""
        scale = max(o.quant.scale[0] for o in site.operands) / ctx.envelope.aim()
        zp = site.out_quant.zero_point[0]
        for _ in range(ATTEMPTS):
            pin = {tensor: [{"scale": np.array(scale, dtype=np.float32),
                             "zero_point": np.array(zp, dtype=site.out_quant.dtype)}]}
            new = _quantize(ctx.float_model, ctx.calibration, settings, pin)
            mine = find_site(new, site.name)
            if isinstance(mine, str):
                return f"after quantize_static: {mine}"
            if all(ctx.envelope.contains(r) for r in mine.ratios):
                return Edit(
                    f"quantize_static with {tensor} pinned to scale {mine.out_quant.scale[0]:.6g} (zero point {zp}): "
                    f"{site.name}'s ratios {ratios_text(site.ratios)} -> {ratios_text(mine.ratios)}; every other scale "
                    "recalibrated", _requantized(ctx.model, new), model=new,
                    notes=[f"settings {settings}; node and tensor names are quantize_static's"],
                )
            scale *= max(mine.ratios) / ctx.envelope.aim() * 1.0001
        return f"pinning {tensor} did not bring {site.name}'s ratios inside the envelope in {ATTEMPTS} attempts"


def _float_tensors(path: Path) -> tuple[set[str], set[str]]:
    """(every tensor name, the graph input names) of the float model."""
    m = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    inputs = {i.name for i in m.graph.input if i.name not in inits}
    return {o for n in m.graph.node for o in n.output} | inputs, inputs


def _settings(model: ir.Model, site: Site) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType

    weights = [w for w in (_weight_codes(n) for n in model.graph if n.op_type in ("Conv", "Gemm", "MatMul")) if w]
    per_channel = any(scale_size > 1 for _dtype, scale_size in weights)
    signed_w = any(dtype == "int8" for dtype, _s in weights) or not weights
    a = QuantType.QInt8 if site.out_quant.dtype == "int8" else QuantType.QUInt8
    return {"activation_type": a, "weight_type": QuantType.QInt8 if signed_w else QuantType.QUInt8,
            "per_channel": per_channel}


def _weight_codes(node: ir.Node) -> tuple[str, int] | None:
    """(dtype of the weight codes, number of weight scales) of a QDQ Conv/Gemm/MatMul, if constant."""
    w = node.inputs[1] if len(node.inputs) > 1 else None
    dq = w.producer() if w is not None else None
    if dq is None or dq.op_type != "DequantizeLinear" or len(dq.inputs) < 2:
        return None
    codes, scale = dq.inputs[0], dq.inputs[1]
    if codes is None or scale is None or codes.const_value is None or scale.const_value is None:
        return None
    return str(codes.const_value.numpy().dtype), int(scale.const_value.size)


class _Reader:
    def __init__(self, arrays: Mapping[str, np.ndarray], batch: int = 32) -> None:
        n = len(next(iter(arrays.values())))
        self._it: Iterator[dict[str, np.ndarray]] = iter(
            [{k: v[i : i + batch] for k, v in arrays.items()} for i in range(0, n, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """quantize_static warns on the root logger."""
    root, level = logging.getLogger(), logging.getLogger().level
    handler = logging.NullHandler()
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _quantize(float_model: Path, calibration: Path, settings: dict[str, Any], pin: dict[str, Any]) -> ir.Model:
    from onnxruntime import quantization as q

    with np.load(calibration) as z:
        arrays = {k: z[k] for k in z.files}
    reader: Any = type("CalibrationReader", (_Reader, q.CalibrationDataReader), {})(arrays)
    with tempfile.TemporaryDirectory(prefix="qprobe-requant-") as tmp, _quiet_root_logger():
        out = Path(tmp) / "requantized.onnx"
        q.quantize_static(
            str(float_model), str(out), reader, quant_format=q.QuantFormat.QDQ,
            calibrate_method=q.CalibrationMethod.MinMax, calibration_providers=["CPUExecutionProvider"],
            extra_options={"TensorQuantOverrides": pin}, **settings,
        )
        return load_model(out)


def _requantized(before: ir.Model, after: ir.Model) -> list[str]:
    """Q/DQ nodes (by name) whose parameters differ between the two models."""
    old = {n.name: qdq_params(n) for n in before.graph if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    return [n.name or "" for n in after.graph
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and old.get(n.name) != qdq_params(n)]
