"""The ST Edge AI adapter as a command target, against a stand-in `stedgeai` (fake_stedgeai.py)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from targets_support import FAKE_STEDGEAI, same_6_digits

from qprobe.backends import create_backend
from qprobe.backends.command import CommandBackend, CommandRunError
from qprobe.backends.st import read_c_info, read_val_io
from qprobe.backends.stedgeai import StRunConfig, parse_args, st_commands
from qprobe.compare import compare_backends
from qprobe.model.inputs import InputSet


def _adapter(tmp: Path, *extra: str) -> CommandBackend:
    tool = shlex.quote(f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_STEDGEAI))}")
    template = (f"{shlex.quote(sys.executable)} -m qprobe.backends.stedgeai --model {{model}} --inputs {{inputs}} "
                f"--outputs {{outputs}} --workdir {{workdir}} --stedgeai {tool} --desc serial:921600 {' '.join(extra)}")
    b = create_backend(f"command:{template}", {"cache": str(tmp / "cache"), "workdir": str(tmp / "runs"), "keep": "1"})
    assert isinstance(b, CommandBackend)
    return b


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "stedgeai.jsonl"
    monkeypatch.setenv("FAKE_STEDGEAI_LOG", str(log))
    monkeypatch.setenv("FAKE_STEDGEAI_MUTATE_NODE", "add")
    monkeypatch.setenv("FAKE_STEDGEAI_MUTATE_FACTOR", "0.5")
    return log


def test_the_board_outputs_come_back_and_match_st_numbers(
    tmp_path: Path, fake_env: Path, model: ir.Model, inputs: InputSet
) -> None:
    b = _adapter(tmp_path)
    cmp = compare_backends(model, create_backend("ort"), b, inputs, probe="outputs")
    row = cmp.row("y")
    assert row.failed and b.runs_executed == 1
    calls = [json.loads(line)["argv"] for line in fake_env.read_text().splitlines()]
    gen, val = calls
    assert gen[:1] == ["generate"] and {"--target", "stm32n6", "--st-neural-art"} <= set(gen)
    assert val[:1] == ["validate"] and ["--mode", "target"] == val[val.index("--mode"):val.index("--mode") + 2]
    assert ["--desc", "serial:921600"] == val[val.index("--desc"):val.index("--desc") + 2]
    (wd,) = list((tmp_path / "runs").iterdir())
    with np.load(val[val.index("--valinput") + 1]) as z:
        assert z.files == ["m_inputs_1"] and np.array_equal(z["m_inputs_1"], inputs.arrays["x"])
    v = read_val_io(wd / "st_ai_output" / "network_val_io.npz")
    assert v.c_outputs[0].shape == (6, 1, 1, 3)
    with np.load(wd / "outputs.npz") as z:
        assert np.array_equal(z["y"], v.c_outputs[0].reshape(6, 3))  # codes kept, unit dims undone
    (st,) = read_c_info(wd / "st_ai_output" / "network_c_info.json").val_metrics
    for k in ("rmse", "mae", "mean", "cos", "l2r"):
        assert same_6_digits(getattr(row.st, k), getattr(st, k)), k


def test_probed_tensors_come_back_from_the_board_and_localize_the_add(
    tmp_path: Path, fake_env: Path, model: ir.Model, inputs: InputSet
) -> None:
    b = _adapter(tmp_path)
    cmp = compare_backends(model, create_backend("ort"), b, inputs, probe="op-outputs")
    first = cmp.first_failing
    assert first is not None and first.producer == "add"
    assert cmp.row("c2_QuantizeLinear_Output").verdict == "exact"  # [N, 4, 8, 8]: NHWC on the board, undone
    assert b.runs_executed == 2  # probed model + unprobed model (the probe-effect check)


def test_a_tool_failure_keeps_its_log(tmp_path: Path, fake_env: Path, model: ir.Model, inputs: InputSet,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_STEDGEAI_FAIL", "validate")
    with pytest.raises(CommandRunError) as info:
        _adapter(tmp_path).open(model).run(inputs.arrays)
    text = str(info.value)
    assert "exited with code 2" in text and "stedgeai validate failed with exit code 1" in text
    assert "E103(CliArgumentError): stand-in validate failure requested" in text
    (wd,) = info.value.workdirs
    assert {"generate.log", "validate.log", "validate_inputs.npz", "model.onnx"} <= {p.name for p in wd.iterdir()}


def test_commands_follow_the_options() -> None:
    base = ["--model", "m.onnx", "--inputs", "i.npz", "--outputs", "/w/outputs.npz"]
    cfg = parse_args([*base, "--neural-art", "n6-allmems-O3@user_neuralart.json", "--loader",
                      "python n6_loader.py --c {output_dir}/network.c", "--extra-validate", "-b 5", "--stedgeai",
                      "/opt/st/stedgeai"])
    assert cfg.workdir == Path("/w")
    steps = st_commands(cfg)
    assert [s for s, _ in steps] == ["generate", "loader", "validate"]
    gen, val = steps[0][1], steps[2][1]
    assert gen[:2] == ["/opt/st/stedgeai", "generate"]
    assert gen[gen.index("--st-neural-art") + 1] == "n6-allmems-O3@user_neuralart.json"
    assert val[-2:] == ["-b", "5"] and "--desc" not in val
    assert steps[1][1] == ["python", "n6_loader.py", "--c", "/w/st_ai_output/network.c"]
    cpu = st_commands(StRunConfig(Path("m"), Path("i"), Path("o"), Path("w"), neural_art=None, mode="host"))
    assert all("--st-neural-art" not in argv for _s, argv in cpu) and "host" in cpu[-1][1]
