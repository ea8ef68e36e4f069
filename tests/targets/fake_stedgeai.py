"""A stand-in for ST's ``stedgeai`` (which cannot run here): writes the documented files.

    python fake_stedgeai.py generate --model M --target stm32n6 --st-neural-art [P] --output O ...
    python fake_stedgeai.py validate --model M ... --mode target --valinput VI [--desc D] ...

``generate`` writes ``O/<name>_generate_report.txt`` and ``O/<name>_c_info.json``.
``validate`` reads the -vi npz (``m_inputs_<i>`` or any keys, in order), runs onnxruntime on
the model for the m side and on a mutated copy for the board side (env
``FAKE_STEDGEAI_MUTATE_NODE``/``FAKE_STEDGEAI_MUTATE_FACTOR``, like mutating_target.py),
and writes ``O/<name>_val_io.npz`` the way real 2.2.0 runs look: int8 c_outputs (the
model's output quantization), 2-D outputs as ``(N, 1, 1, C)``, 4-D ones channel-last,
int8 channel-last c_inputs. It also adds the ``validation`` section (ST's metrics) to
``<name>_c_info.json``. Every call is appended to ``$FAKE_STEDGEAI_LOG`` (JSON lines);
``FAKE_STEDGEAI_FAIL=generate|validate`` makes that step fail like a tool error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
from mutating_target import mutate, run
from targets_support import st_oracle


def _args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(prog="stedgeai")
    ap.add_argument("command", choices=["generate", "validate"])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--target", default="stm32h7")
    ap.add_argument("--st-neural-art", nargs="?", const="default", default=None)
    ap.add_argument("-n", "--name", default="network")
    ap.add_argument("-o", "--output", default="st_ai_output")
    ap.add_argument("-w", "--workspace", default="st_ai_ws")
    ap.add_argument("--mode", default="host")
    ap.add_argument("-vi", "--valinput", nargs="+", default=None)
    ap.add_argument("-d", "--desc", default=None)
    return ap.parse_known_args(argv)


def _output_quant(model: onnx.ModelProto, name: str) -> tuple[float, int] | None:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if name in n.output and n.op_type == "DequantizeLinear":
            return float(inits[n.input[1]]), int(inits[n.input[2]])
        if name in n.output and n.op_type == "QuantizeLinear":
            return float(inits[n.input[1]]), int(inits[n.input[2]])
    return None


def _input_quant(model: onnx.ModelProto, name: str) -> tuple[float, int] | None:
    q = next((n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name), None)
    return None if q is None else _output_quant(model, q.output[0])


def _c_layout(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a.reshape(a.shape[0], 1, 1, a.shape[1])
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def _validate(a: argparse.Namespace, out: Path) -> None:
    model = onnx.load(a.model)
    with np.load(a.valinput[0]) as z:
        keys = sorted((k for k in z.files if k.startswith("m_inputs_")), key=lambda k: int(k.rsplit("_", 1)[1]))
        arrays = [z[k] for k in keys or z.files]
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    feeds = dict(zip(names, arrays, strict=True))
    m_out = run(onnx.load(a.model), feeds)
    node = os.environ.get("FAKE_STEDGEAI_MUTATE_NODE", "")
    board = mutate(model, node, float(os.environ.get("FAKE_STEDGEAI_MUTATE_FACTOR", "0.5")))[0] if node else model
    c_raw = run(board, feeds)
    val: dict[str, np.ndarray] = {}
    metrics = []
    for i, (name, x) in enumerate(feeds.items(), start=1):
        val[f"m_inputs_{i}"] = x
        q_in = _input_quant(model, name)
        codes = np.clip(np.rint(x / q_in[0]) + q_in[1], -128, 127).astype(np.int8) if q_in else x
        val[f"c_inputs_{i}"] = _c_layout(codes)
    for i, o in enumerate(model.graph.output, start=1):
        q = _output_quant(model, o.name)
        c = c_raw[o.name]
        if q is not None and np.issubdtype(c.dtype, np.floating):
            c = np.clip(np.rint(c / q[0]) + q[1], -128, 127).astype(np.int8)
        val[f"m_outputs_{i}"], val[f"c_outputs_{i}"] = m_out[o.name], _c_layout(c)
        if q is not None and np.issubdtype(m_out[o.name].dtype, np.floating):
            metrics.append({"desc": f"X-cross #{i}", "acc": "n.a.", **st_oracle(m_out[o.name], c, *q)})
    np.savez(out / f"{a.name}_val_io.npz", **val)
    info_path = out / f"{a.name}_c_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info["validation"] = {"device": "VALIDATION_TARGET" if a.mode == "target" else "VALIDATION_HOST",
                          "val_error": metrics[0]["rmse"] if metrics else None,
                          "val_error_desc": "x-cross (rmse) #1", "val_metrics": metrics}
    info_path.write_text(json.dumps(info, indent=2))


def main(argv: list[str]) -> int:
    a, extra = _args(argv)
    log = os.environ.get("FAKE_STEDGEAI_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"argv": argv, "extra": extra, "cwd": os.getcwd()}) + "\n")
    print(f"ST Edge AI Core (stand-in) - {a.command}")
    if os.environ.get("FAKE_STEDGEAI_FAIL") == a.command:
        print(f"E103(CliArgumentError): stand-in {a.command} failure requested", file=sys.stderr)
        return 1
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    if a.command == "generate":
        (out / f"{a.name}_generate_report.txt").write_text(f"stand-in generate of {a.model} for {a.target}\n")
        env = {"environment": {"tools": [{"name": "ST.EdgeAI.Core", "version": "stand-in",
                                          "arguments": " ".join(argv)}]}}
        (out / f"{a.name}_c_info.json").write_text(json.dumps({"json_schema_version": "2.0", **env}))
        return 0
    if not (out / f"{a.name}_c_info.json").exists():
        print("E: run generate first", file=sys.stderr)
        return 1
    _validate(a, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
