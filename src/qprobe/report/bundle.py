"""Repro bundles: a folder that shows one defect to someone who has never seen the model.

Files: ``model.onnx`` (the cut: int8 codes in, the original DequantizeLinear, the op(s),
int8 codes out; names as in the original), ``inputs.npz`` (the reference's values at the
cut inputs), ``expected.npz`` (the reference's outputs), ``observed.npz`` (the target's
outputs), ``metrics.json``, ``repro.py`` (plain onnxruntime, no qprobe needed),
``README.md`` (the op, its quantization parameters with operand-to-output scale ratios,
the metrics, the commands) and, from ``localize``, ``divergence.json``. Attached to a
vendor forum post, this folder is the full evidence package. The writer computes
nothing but the quantization table of the cut; everything else comes in ``Repro``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx_ir as ir

from qprobe import serde
from qprobe.compare.cut import CutRun
from qprobe.compare.result import TensorComparison
from qprobe.errors import InputError
from qprobe.fileio import atomic_save_npz, atomic_write_text, staged_dir
from qprobe.localize.divergence import Divergence
from qprobe.model.graph import DQ_OPS, const_array, int_attr
from qprobe.model.loader import save_model
from qprobe.model.quant import build_quant_index
from qprobe.tensors import QuantParams

SCHEMA = "qprobe.repro/1"


@dataclass(frozen=True)
class Repro:
    title: str
    cut: CutRun
    ref: str
    target: str | None
    source: str
    command: str = ""
    target_options: tuple[str, ...] = ()
    divergence: Divergence | None = None


def write_bundle(out_dir: Path, repro: Repro) -> list[Path]:
    """Write the bundle as the folder ``out_dir`` (replaced whole when it exists); return the files.

    Everything is written into a staging folder beside ``out_dir`` first, which replaces it at
    the end: a failure leaves no partial bundle, and no stale file of an earlier bundle stays
    beside the new ones (the CLI refuses an existing folder without ``--force``).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory; pick another bundle path")
    with staged_dir(out) as stage:
        names = _write_files(stage, repro)
    return [out / n for n in names]


def _write_files(stage: Path, repro: Repro) -> list[str]:
    c = repro.cut
    save_model(c.model, stage / "model.onnx")
    atomic_save_npz(stage / "inputs.npz", c.inputs)
    atomic_save_npz(stage / "expected.npz", c.expected)
    names = ["model.onnx", "inputs.npz", "expected.npz"]
    if c.observed is not None:
        atomic_save_npz(stage / "observed.npz", c.observed)
        names.append("observed.npz")
    quant = quant_table(repro)
    texts = {
        "metrics.json": serde.dumps(_metrics(repro, quant)),
        "repro.py": repro_script(repro.ref),
        "README.md": readme(repro, quant),
    }
    if repro.divergence is not None:
        texts["divergence.json"] = serde.dumps(repro.divergence.to_json())
    for name, text in texts.items():
        atomic_write_text(stage / name, text)
        names.append(name)
    return names


def quant_table(repro: Repro) -> list[dict[str, Any]]:
    """One entry per compute op of the cut: its quantized operands and outputs, and scale ratios.

    The cut's inputs are graph inputs read by DequantizeLinear, so their parameters are read
    from those DequantizeLinear nodes."""
    model = repro.cut.model
    index = build_quant_index(model)
    dq_params = _graph_input_dq_params(model)
    table = []
    for op in index.ops:
        rows = []
        for role, names, floats in (("input", op.q_inputs, op.inputs), ("output", op.q_outputs, op.outputs)):
            for q, f in zip(names, floats, strict=True):
                name, p = (q, index.tensors.get(q)) if q else dq_params.get(f, (f, None))
                if p is not None:
                    rows.append({"tensor": name, "role": role, "scale": list(p.scale),
                                 "zero_point": list(p.zero_point), "dtype": p.dtype, "axis": p.axis})
        table.append({"op": op.name, "op_type": op.op_type, "tensors": rows, "scale_ratios": _ratios(rows)})
    return table


def _graph_input_dq_params(model: ir.Model) -> dict[str, tuple[str, QuantParams]]:
    """DequantizeLinear output -> (graph input it reads, the params it dequantizes those codes with)."""
    out = {}
    inputs = {str(v.name) for v in model.graph.inputs}
    for node in model.graph:
        if node.op_type in DQ_OPS and node.inputs[0] is not None and node.inputs[0].name in inputs:
            s = const_array(node.inputs[1])
            z = const_array(node.inputs[2]) if len(node.inputs) > 2 else None
            if s is not None:
                dtype = str(z.dtype) if z is not None else "uint8"
                axis = int_attr(node, "axis", 1) if s.size > 1 else None
                params = QuantParams.from_arrays(s, z if z is not None else 0, dtype, axis)
                out[str(node.outputs[0].name)] = (str(node.inputs[0].name), params)
    return out


def _ratios(rows: list[dict[str, Any]]) -> list[float] | None:
    out = [r for r in rows if r["role"] == "output" and len(r["scale"]) == 1]
    ins = [r for r in rows if r["role"] == "input" and len(r["scale"]) == 1]
    if len(out) != 1 or not ins:
        return None
    return [r["scale"][0] / out[0]["scale"][0] for r in ins]


def _metrics(repro: Repro, quant: list[dict[str, Any]]) -> dict[str, Any]:
    c = repro.cut
    return {
        "schema": SCHEMA, "title": repro.title, "ref": repro.ref, "target": repro.target, "source": repro.source,
        "num_samples": _samples(c), "quantization": quant,
        "isolated": [r.to_json() for r in c.rows],
        "accumulated_inputs": [r.to_json() for r in c.accumulated_inputs],
        "accumulated_outputs": [r.to_json() for r in c.accumulated_outputs],
    }


def _samples(c: CutRun) -> int:
    return int(next(iter(c.expected.values())).shape[0]) if c.expected else 0


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None or v != v else format(v, spec)


def _metric_lines(rows: tuple[TensorComparison, ...]) -> list[str]:
    lines = ["| tensor | cos | rmse | mean Δ (LSB) | max abs Δ (LSB) | exact % | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lsb = r.lsb
        lines.append(
            f"| `{r.name}` | {_fmt(r.st.cos, '.5f')} | {_fmt(r.st.rmse, '.4g')} | "
            f"{_fmt(lsb.mean_delta_lsb if lsb else None, '+.3f')} | {_fmt(lsb.max_abs_lsb if lsb else None, '.0f')} | "
            f"{_fmt(100 * lsb.exact_share if lsb else None, '.1f')} | {r.verdict}: {r.reason} |"
        )
    return lines


def _quant_lines(quant: list[dict[str, Any]]) -> list[str]:
    lines = []
    for op in quant:
        lines += [f"**{op['op']}** ({op['op_type']})", "",
                  "| tensor | role | scale | zero point | dtype | scale / output scale |", "|---|---|---|---|---|---|"]
        out = next((t for t in op["tensors"] if t["role"] == "output" and len(t["scale"]) == 1), None)
        for t in op["tensors"]:
            per_tensor = len(t["scale"]) == 1
            scale = f"{t['scale'][0]:.8g}" if per_tensor else f"per-axis {t['axis']} ({len(t['scale'])})"
            zp = str(t["zero_point"][0]) if per_tensor else "per-axis"
            ratio = f"{t['scale'][0] / out['scale'][0]:.4f}" if out and per_tensor else "-"
            lines.append(f"| `{t['tensor']}` | {t['role']} | {scale} | {zp} | {t['dtype']} | {ratio} |")
        if op["scale_ratios"]:
            lines += ["", "Operand-to-output scale ratios: " + ", ".join(f"{r:.4f}" for r in op["scale_ratios"])]
        lines.append("")
    return lines


def readme(repro: Repro, quant: list[dict[str, Any]]) -> str:
    c = repro.cut
    ins = [str(v.name) for v in c.model.graph.inputs]
    outs = [str(v.name) for v in c.model.graph.outputs]
    target = repro.target or "(none)"
    lines = [
        f"# qprobe repro: {repro.title}", "",
        f"Reference `{repro.ref}`, target `{target}`, {_samples(c)} samples, from `{repro.source}`.", "",
        f"`model.onnx` computes `{', '.join(outs)}` from `{', '.join(ins)}`: a cut of the original model with "
        "its node and tensor names; quantized boundaries are int8 codes, followed by the original "
        "DequantizeLinear.", "",
        "## Quantization parameters", "", *_quant_lines(quant),
    ]
    if c.rows:
        lines += ["## Metrics: the cut alone, fed the reference's inputs", "",
                  "mean Δ is reference − target in LSB of the tensor's scale (> 0: the target is low).", "",
                  *_metric_lines(c.rows), ""]
    if c.accumulated_inputs or c.accumulated_outputs:
        lines += ["## Metrics: the same tensors in the whole model on the target (accumulated)", "",
                  *_metric_lines(c.accumulated_inputs + c.accumulated_outputs), ""]
    if repro.divergence is not None:
        lines += [f"Localization: {repro.divergence.verdict()}. Strategy {repro.divergence.strategy}, "
                  f"{repro.divergence.target_runs} target runs (`divergence.json`).", ""]
    lines += _files_and_commands(repro)
    return "\n".join(lines) + "\n"


def _files_and_commands(repro: Repro) -> list[str]:
    opts = "".join(f" --target-opt {shlex.quote(o)}" for o in repro.target_options)
    target = shlex.quote(repro.target) if repro.target else "TARGET"
    qcmd = (f"qprobe compare model.onnx --inputs inputs.npz --ref {shlex.quote(repro.ref)} --target {target}{opts} "
            f"--probe outputs")
    lines = [
        "## Files", "",
        "- `model.onnx`: the cut (runs in onnxruntime as is).",
        "- `inputs.npz`: the reference's values at the cut inputs, one key per model input, samples on axis 0.",
        "- `expected.npz`: the reference's outputs of the cut.",
    ]
    if repro.cut.observed is not None:
        lines.append("- `observed.npz`: the target's outputs of the cut.")
    lines += ["- `metrics.json`: the numbers above; `repro.py`: the plain onnxruntime check.", "",
              "## Reproduce", "", "With qprobe (in this folder):", "", "```sh", qcmd, "```", "",
              "With plain onnxruntime (checks `expected.npz` bit for bit and prints the target's error from "
              "`observed.npz`):", "", "```sh", "python repro.py", "```", ""]
    if repro.command:
        lines += ["This bundle was written by:", "", "```sh", repro.command, "```", ""]
    lines += ["On an STM32N6 board, through qprobe's stedgeai adapter (see its module docstring):", "", "```sh",
              "qprobe compare model.onnx --inputs inputs.npz --ref ort-fused --probe outputs \\",
              "  --target 'command:python -m qprobe.backends.stedgeai --model {model} --inputs {inputs} "
              "--outputs {outputs} --workdir {workdir} --desc serial:921600'", "```", ""]
    return lines


def repro_script(ref: str) -> str:
    fused = ref == "ort-fused"
    return f'''"""Reproduce this bundle with plain onnxruntime: python repro.py (numpy + onnxruntime only)."""

from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
FUSED = {fused!r}  # the reference was {ref}; True: QDQ fused to integer kernels, False: float DQ -> op -> Q

so = ort.SessionOptions()
if FUSED:
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.qdqisint8allowed", "1")
else:
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(str(HERE / "model.onnx"), so, providers=["CPUExecutionProvider"])
inputs = dict(np.load(HERE / "inputs.npz"))
expected = dict(np.load(HERE / "expected.npz"))
observed = dict(np.load(HERE / "observed.npz")) if (HERE / "observed.npz").exists() else {{}}
names = [o.name for o in sess.get_outputs()]
n = len(next(iter(inputs.values())))
runs = [sess.run(names, {{k: v[i : i + 1] for k, v in inputs.items()}}) for i in range(n)]
got = {{name: np.concatenate([r[j] for r in runs]) for j, name in enumerate(names)}}
ok = True
for name in names:
    same = np.array_equal(got[name], expected[name])
    ok = ok and same
    print(f"{{name}}: onnxruntime {{'matches' if same else 'DIFFERS from'}} expected.npz")
    if name in observed and np.issubdtype(expected[name].dtype, np.integer):
        d = expected[name].astype(np.int64) - observed[name].astype(np.int64).reshape(expected[name].shape)
        print(f"  target vs reference: mean delta {{d.mean():+.3f}} LSB, max |delta| {{np.abs(d).max()}} LSB, "
              f"{{100 * np.mean(d == 0):.1f}}% exact")
raise SystemExit(0 if ok else 1)
'''
