"""Every qprobe command in docs/*.md runs as written (DESIGN rule 8), against fixtures that stand
in for the board: ST's files come from the stand-in stedgeai (tests/targets/fake_stedgeai.py), a
generic recording from onnxruntime on the bundled example."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from qprobe.backends import stedgeai
from qprobe.examples.tcn import packaged_example_dir

ROOT = Path(__file__).resolve().parents[1]
FAKE_STEDGEAI = ROOT / "tests" / "targets" / "fake_stedgeai.py"
MUTATING_TARGET = ROOT / "tests" / "targets" / "mutating_target.py"
# commands that cannot run here, with the test that covers them instead; they are left out of the
# parametrization (not skipped: CI accepts only skips for missing hardware), and
# test_not_run_commands_are_in_the_docs keeps this list from going stale
NOT_RUN = {
    "qprobe report DIR --open-model-explorer": "starts a server until Ctrl-C (tests/report/test_model_explorer.py)",
    "qprobe localize model.onnx --target 'command:./run_on_board.sh {model} {inputs} {outputs}' "
    "--target-opt resource=board --target-opt cache=/shared/qprobe-cache --inputs /shared/val.npz "
    "--cluster tcp://10.0.0.5:8786":
        "needs a lab's scheduler and shared folder (tests/execute/test_board_farm.py runs a farm of fake boards)",
    "qprobe compare model.onnx --target engine:arith16-wrap --inputs /shared/val.npz "
    "--cluster tcp://10.0.0.5:8786 --memory-budget 4GiB --json cmp.json":
        "needs a lab's scheduler and shared folder (tests/execute/test_sharded_compare.py shards on a cluster)",
}


def doc_commands() -> list[tuple[str, str]]:
    """(doc, command) for each qprobe command in a plain or sh block; continued lines (a trailing
    backslash, or an open quote: "one line in a real shell") are joined."""
    out = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for lang, body in re.findall(r"```(\w*)\n(.*?)```", doc.read_text(), flags=re.S):
            if lang not in ("", "sh"):
                continue
            buf = ""
            for line in body.splitlines():
                buf = f"{buf} {line.strip()}" if buf else line.strip()
                if buf.endswith("\\"):
                    buf = buf[:-1].rstrip()
                    continue
                try:
                    shlex.split(buf)
                except ValueError:  # an open quote: the command goes on
                    continue
                if buf.startswith("qprobe "):
                    out.append((doc.name, buf))
                buf = ""
    return out


def _residual_add(folder: Path) -> str:
    """The name of the example's first Add: the node the stand-in board computes wrong."""
    return next(n.name for n in onnx.load(str(folder / "model.onnx")).graph.node if n.op_type == "Add")


def _recording(folder: Path) -> None:
    """The files the docs name: the example model, samples (some beyond the input's range, which a
    board clips), ST's validate output for them, and a generic recording."""
    src = packaged_example_dir()
    shutil.copy(src / "tcn_int8.onnx", folder / "tcn_int8.onnx")
    shutil.copy(src / "tcn_int8.onnx", folder / "model.onnx")
    with np.load(src / "tcn_inputs.npz") as z:
        x = z["window"][:8].copy()
    x[0, :, 0, :4] *= 4.0  # outside the quantized range: the board stores them clipped
    np.savez(folder / "samples.npz", window=x)
    work = folder / "st-run"
    code = stedgeai.main(["--model", str(folder / "tcn_int8.onnx"), "--inputs", str(folder / "samples.npz"),
                          "--outputs", str(work / "outputs.npz"), "--workdir", str(work),
                          "--stedgeai", f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_STEDGEAI))}"])
    assert code == 0
    shutil.copytree(work / "st_ai_output", folder / "st_ai_output")
    shutil.rmtree(work)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    np.savez(folder / "board.npz", window=x, log_conc=sess.run(["log_conc"], {"window": x})[0])
    board_script = folder / "run_on_board.sh"  # the board of docs/cluster.md: onnxruntime, one Add biased
    board_script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(MUTATING_TARGET))} "
                            f'--model "$1" --inputs "$2" --outputs "$3" --node {_residual_add(folder)} --factor 0.5\n')
    board_script.chmod(0o755)
    loader = folder / "core" / "scripts" / "N6_scripts" / "n6_loader.py"
    loader.parent.mkdir(parents=True)
    loader.write_text("print('stand-in n6_loader: nothing to flash')\n")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("board")
    _recording(folder)
    return folder


def test_the_docs_have_commands() -> None:
    docs = {d for d, _ in doc_commands()}
    assert {"on-your-board.md", "runtimes.md"} <= docs


def test_not_run_commands_are_in_the_docs() -> None:
    assert set(NOT_RUN) <= {c for _, c in doc_commands()}


RUN = [(d, c) for d, c in doc_commands() if c not in NOT_RUN]


@pytest.mark.parametrize(("doc", "command"), RUN, ids=[f"{d}:{c[:50]}" for d, c in RUN])
def test_doc_command(doc: str, command: str, board: Path, tmp_path: Path) -> None:
    if "openvino" in command:
        pytest.importorskip("openvino")
    here = tmp_path / "here"
    shutil.copytree(board, here)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "STEDGEAI": f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_STEDGEAI))}",
           "STEDGEAI_CORE_DIR": str(here / "core"), "QPROBE_CACHE_DIR": str(tmp_path / "cache")}
    argv = shlex.split(command)
    res = subprocess.run([sys.executable, "-m", "qprobe", *argv[1:]], cwd=here, capture_output=True, text=True,
                         timeout=1800, env=env)
    assert res.returncode in (0, 1), f"{doc}: {command}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr and "error:" not in res.stderr, res.stderr


def test_st_numbers_are_reproduced_although_the_board_clipped_inputs(board: Path) -> None:
    """The recorded c_inputs are the samples quantized and clipped: the check compares codes, and the
    float m_inputs (beyond the range) are accepted as the same samples."""
    with np.load(board / "st_ai_output" / "network_val_io.npz") as z:
        c_in = z["c_inputs_1"] if "c_inputs_1" in z.files else z[[k for k in z.files if k.startswith("c_inputs")][0]]
    assert np.issubdtype(c_in.dtype, np.integer) and (c_in == np.iinfo(c_in.dtype).max).any()  # clipped codes
