"""The bad-input and fault corpus: every case a newcomer met in the first hour, and more.

A ``Case`` is an argv run in a folder that holds the files of ``make_world`` (cwd), the exit code
it must give, a piece of the one error line (``needle``) and the files it may create (``creates``;
nothing else in the folder may appear or change). Paths in argv are relative to that folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from models.residual import float_residual_model, qdq_residual_model

ENGINE = "engine:arith16-wrap"
UNWRITABLE = "/proc"  # creating a file there fails even for root


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int = 2
    needle: str = ""
    creates: tuple[str, ...] = ()


def make_world(root: Path) -> Path:
    """The folder every case runs in: a small int8 model, a float one, good and bad sample files."""
    qdq_residual_model(root)  # model_int8.onnx
    (root / "model_int8.onnx").rename(root / "model.onnx")
    for p in root.glob("*float*"):
        p.unlink()
    onnx.save(float_residual_model(), root / "float.onnx")
    rng = np.random.default_rng(0)
    good = rng.uniform(0, 1, (4, 3, 8, 8)).astype(np.float32)
    np.savez(root / "good.npz", x=good)
    np.savez(root / "zero.npz", x=good[:0])
    np.save(root / "single.npy", good)
    (root / "single.npy").rename(root / "npy.npz")
    (root / "text.npz").write_text("hello, not an archive\n")
    for name, bad in (("nan", np.nan), ("inf", np.inf), ("neginf", -np.inf)):
        a = good.copy()
        a[1, 0, 0, 0] = bad
        np.savez(root / f"{name}.npz", x=a)
    np.savez(root / "wrongkey.npz", foo=good)
    np.savez(root / "wrongshape.npz", x=good[:, :, :4, :4])
    np.savez(root / "rank.npz", x=good[:, 0])
    np.savez(root / "strings.npz", x=np.full((4, 3, 8, 8), "a"))
    np.savez(root / "objects.npz", x=np.array([{"a": 1}, None], dtype=object))
    np.savez(root / "ints.npz", x=(good * 100).astype(np.int64))
    (root / "npzdir.npz").mkdir()
    (root / "empty.npz").write_bytes(b"")
    (root / "not_onnx.onnx").write_text("hello")
    (root / "empty.onnx").write_bytes(b"")
    (root / "afile").write_text("a file\n")
    (root / "adir").mkdir()
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("the user's file\n")
    (root / "badreport").mkdir()
    (root / "badreport" / "report.json").write_text("{not json")
    (root / "otherreport").mkdir()
    (root / "otherreport" / "report.json").write_text('{"schema": "someone.else/9"}')
    return root


# -- outputs ------------------------------------------------------------------------------------

FILE_FAULTS = (
    ("missing-parent", "nodir/out.x", "does not exist"),
    ("is-a-folder", "adir", "is a folder"),
    ("parent-is-file", "afile/out.x", "is a file, not a folder"),
    ("unwritable", f"{UNWRITABLE}/out.x", "cannot write into"),
    ("overwrites-input", "model.onnx", "is also an input"),
)
DIR_FAULTS = (
    ("is-a-file", "afile", "is a file"),
    ("not-empty", "full", "is not empty"),
    ("parent-is-file", "afile/sub", "is a file, not a folder"),
    ("unwritable", f"{UNWRITABLE}/sub", "cannot write into"),
)
BASE = {
    "compare": ("compare", "model.onnx", "--random", "2"),
    "localize": ("localize", "model.onnx", "--target", ENGINE, "--random", "2"),
    "extract": ("extract", "model.onnx", "--inputs", "c1", "--outputs", "r"),
    "explain": ("explain", "model.onnx", "--target", ENGINE, "--random", "2"),
    "fix": ("fix", "model.onnx", "--target", ENGINE, "--random", "2"),
    "diagnose": ("diagnose", "model.onnx", "--target", ENGINE, "--random", "2"),
    "example": ("example", "tcn"),
}
FILE_OPTIONS = (("compare", "--json"), ("compare", "--html"), ("localize", "--json"), ("extract", "-o"),
                ("explain", "--json"), ("explain", "--profile-out"), ("fix", "-o"), ("fix", "--json"))
DIR_OPTIONS = (("compare", "--save-traces"), ("localize", "--bundle"), ("extract", "--bundle"),
               ("fix", "--keep-candidates"), ("diagnose", "-o"), ("example", "-o"))


def output_cases() -> list[Case]:
    cases = [Case(f"{cmd}{opt}-{fid}", (*BASE[cmd], opt, path), needle=needle)
             for cmd, opt in FILE_OPTIONS for fid, path, needle in FILE_FAULTS]
    cases += [Case(f"{cmd}{opt}-{fid}", (*BASE[cmd], opt, path), needle=needle)
              for cmd, opt in DIR_OPTIONS for fid, path, needle in DIR_FAULTS]
    cases += [
        Case("compare-json-and-html-same", (*BASE["compare"], "--json", "o.x", "--html", "o.x"), needle="same path"),
        Case("compare-json-is-inputs", (*BASE["compare"][:2], "--inputs", "good.npz", "--json", "good.npz"),
             needle="is also an input"),
        Case("stedgeai-outputs-missing-folder", ("stedgeai-run", "--model", "model.onnx", "--inputs", "good.npz",
                                                 "--outputs", "nodir/o.npz", "--workdir", "adir"),
             needle="does not exist"),
        Case("stedgeai-outputs-is-folder", ("stedgeai-run", "--model", "model.onnx", "--inputs", "good.npz",
                                            "--outputs", "adir", "--workdir", "adir"), needle="is a folder"),
        Case("stedgeai-workdir-is-file", ("stedgeai-run", "--model", "model.onnx", "--inputs", "good.npz",
                                          "--outputs", "o.npz", "--workdir", "afile"), needle="is a file"),
    ]
    return cases


# -- inputs -------------------------------------------------------------------------------------

SAMPLE_FAULTS = (
    ("zero-samples", "zero.npz", "0 samples"),
    ("npy-renamed", "npy.npz", "single .npy array"),
    ("text", "text.npz", "not a readable .npz"),
    ("empty-file", "empty.npz", "not a readable .npz"),
    ("missing", "absent.npz", "does not exist"),
    ("folder", "npzdir.npz", "is a folder"),
    ("nan", "nan.npz", "NaN or Inf"),
    ("inf", "inf.npz", "NaN or Inf"),
    ("neginf", "neginf.npz", "NaN or Inf"),
    ("wrong-key", "wrongkey.npz", "no array for model input"),
    ("wrong-shape", "wrongshape.npz", "dimension 2 is 4"),
    ("wrong-rank", "rank.npz", "does not fit the model's"),
    ("strings", "strings.npz", "the model wants float32"),
    ("pickled-objects", "objects.npz", "not a readable .npz"),
    ("integers", "ints.npz", "the model wants float32"),
)
SAMPLE_COMMANDS = {
    "compare": ("compare", "model.onnx", "--inputs"),
    "localize": ("localize", "model.onnx", "--target", ENGINE, "--inputs"),
    "explain": ("explain", "model.onnx", "--target", ENGINE, "--inputs"),
    "fix": ("fix", "model.onnx", "--target", ENGINE, "--inputs"),
    "diagnose": ("diagnose", "model.onnx", "--target", ENGINE, "--inputs"),
    "extract": ("extract", "model.onnx", "--inputs", "c1", "--outputs", "r", "--bundle", "b", "--samples"),
}


def input_cases() -> list[Case]:
    return [Case(f"{cmd}-inputs-{fid}", (*argv, path), needle=needle)
            for cmd, argv in SAMPLE_COMMANDS.items() for fid, path, needle in SAMPLE_FAULTS]


MODEL_FAULTS = (
    ("missing", "absent.onnx", "does not exist"),
    ("text", "not_onnx.onnx", "not a readable ONNX model"),
    ("empty", "empty.onnx", ""),
    ("folder", "adir", ""),
)
MODEL_COMMANDS = {
    "compare": ("compare",), "localize": ("localize", "--target", ENGINE), "inspect": ("inspect",),
    "extract": ("extract", "--inputs", "c1", "--outputs", "r", "-o", "cut.onnx"),
    "explain": ("explain", "--target", ENGINE), "fix": ("fix", "--target", ENGINE),
    "diagnose": ("diagnose", "--target", ENGINE),
}


def model_cases() -> list[Case]:
    cases = [Case(f"{cmd}-model-{fid}", (argv[0], path, *argv[1:]), needle=needle)
             for cmd, argv in MODEL_COMMANDS.items() for fid, path, needle in MODEL_FAULTS]
    cases += [Case(f"{cmd}-model-and-example", (argv[0], "model.onnx", "--example", "tcn", *argv[1:]),
                   needle="not both") for cmd, argv in MODEL_COMMANDS.items()]
    cases += [Case(f"{cmd}-no-model", argv, needle="missing MODEL") for cmd, argv in MODEL_COMMANDS.items()]
    return cases


# -- options --------------------------------------------------------------------------------------

def option_cases() -> list[Case]:
    c, loc = BASE["compare"], BASE["localize"]
    st = ("stedgeai-run", "--model", "model.onnx", "--inputs", "good.npz", "--outputs", "o.npz")
    return [
        Case("compare-tol-tensor-unknown", (*c, "--tol-tensor", "nope:cos=0.9"), needle="no tensor of the model"),
        Case("compare-tol-tensor-typo", (*c, "--tol-tensor", "c1_QuantizeLinear_Outpt:cos=0.9"), needle="did you mean"),
        Case("compare-tol-tensor-no-colon", (*c, "--tol-tensor", "cos=0.9"), needle="bad per-tensor tolerance"),
        Case("compare-tol-bad-key", (*c, "--tol", "cosine=0.9"), needle=""),
        Case("compare-tol-bad-value", (*c, "--tol", "cos=high"), needle=""),
        Case("compare-tol-local-bad", (*c, "--tol", "local=2"), needle="local=0"),
        Case("compare-unknown-target", (*c, "--target", "npu9000"), needle="unknown backend 'npu9000'"),
        Case("compare-unknown-ref", (*c, "--ref", "nothing:at-all"), needle="unknown backend"),
        Case("compare-unknown-profile", (*c, "--target", "engine:nope"), needle="unknown numerics profile"),
        Case("compare-ref-opt-not-kv", (*c, "--ref-opt", "threads"), needle="is not KEY=VALUE"),
        Case("compare-set-not-kv", (*c, "--target", ENGINE, "--set", "=1"), needle="is not KEY=VALUE"),
        Case("compare-set-unknown-knob", (*c, "--target", ENGINE, "--set", "bogus=1"), needle="unknown knob"),
        Case("compare-set-unknown-op-type", (*c, "--target", ENGINE, "--set", "ops.add.rounding=half_even"),
             needle="did you mean 'Add'"),
        Case("compare-probe-unknown", (*c, "--probe", "nope"), needle="is not in the model"),
        Case("compare-random-zero", ("compare", "model.onnx", "--random", "0"), needle="at least 1 sample"),
        Case("compare-random-negative", ("compare", "model.onnx", "--random", "-3"), needle="at least 1 sample"),
        Case("compare-random-mode", (*c, "--random-mode", "gauss"), needle="unknown random mode"),
        Case("compare-random-and-inputs", (*c, "--inputs", "good.npz"), needle="not both"),
        Case("compare-batch-zero", (*c, "--batch-size", "0"), needle=""),
        Case("compare-batch-text", (*c, "--batch-size", "many"), needle=""),
        Case("compare-unknown-option", (*c, "--colour"), needle="No such option"),
        Case("compare-traces-one-side", ("compare", "--ref", "traces:adir", "--target", "ort"), needle="needs both"),
        Case("compare-traces-not-folder", ("compare", "--ref", "traces:nodir", "--target", "traces:nodir"),
             needle="not a folder of saved traces"),
        Case("compare-traces-empty", ("compare", "--ref", "traces:adir", "--target", "traces:adir"),
             needle="holds no saved"),
        Case("compare-example-unknown", ("compare", "--example", "resnet"), needle="unknown example"),
        Case("localize-no-target", ("localize", "model.onnx"), needle="missing --target"),
        Case("localize-strategy", (*loc, "--strategy", "guess"), needle="unknown strategy"),
        Case("localize-ops-with-bisect", (*loc, "--ops", "add", "--strategy", "bisect"), needle="--ops"),
        Case("localize-tol-tensor-unknown", (*loc, "--tol-tensor", "nope:cos=0.9"), needle="no tensor of the model"),
        Case("diagnose-no-target", ("diagnose", "model.onnx"), needle="missing --target"),
        Case("diagnose-tol-tensor-unknown", (*BASE["diagnose"], "--tol-tensor", "nope:cos=0.9"),
             needle="no tensor of the model"),
        Case("explain-no-target", ("explain", "model.onnx"), needle="missing --target"),
        Case("explain-divergence-missing", (*BASE["explain"], "--divergence", "absent.json"), needle=""),
        Case("explain-bundle-missing", (*BASE["explain"], "--bundle", "nodir"), needle=""),
        Case("fix-no-target", ("fix", "model.onnx"), needle="missing --target"),
        Case("fix-profile-and-emulate", (*BASE["fix"], "--profile", "afile", "--emulate", "exact"), needle="not both"),
        Case("fix-float-model-missing", (*BASE["fix"], "--float-model", "absent.onnx"), needle="does not exist"),
        Case("fix-truth-missing", (*BASE["fix"], "--truth", "absent.npz"), needle="does not exist"),
        Case("extract-nothing-to-write", ("extract", "model.onnx", "--inputs", "c1", "--outputs", "r"),
             needle="nothing to write"),
        Case("extract-target-without-bundle", (*BASE["extract"], "-o", "cut.onnx", "--target", ENGINE),
             needle="add --bundle"),
        Case("extract-unknown-tensor", ("extract", "model.onnx", "--inputs", "zzz", "--outputs", "r", "-o", "cut.onnx"),
             needle=""),
        Case("extract-no-outputs", ("extract", "model.onnx", "--inputs", "c1", "-o", "cut.onnx"), needle=""),
        Case("example-unknown", ("example", "resnet", "-o", "ex"), needle="unknown example"),
        Case("example-no-out", ("example", "tcn"), needle="Missing option"),
        Case("profiles-set-without-profile", ("profiles", "--set", "acc_bits=16"), needle="name the profile"),
        Case("profiles-unknown", ("profiles", "npu9000"), needle="unknown numerics profile"),
        Case("profiles-unknown-knob", ("profiles", "exact", "--set", "bogus=1"), needle="unknown knob"),
        Case("profiles-typo-op-type", ("profiles", "exact", "--set", "ops.Typo.acc_bits=16"),
             needle="'Typo' is no ONNX op type"),
        Case("profiles-bad-key", ("profiles", "exact", "--set", "add.wrap=1"), needle="cannot read override key"),
        Case("profiles-bad-value", ("profiles", "exact", "--set", "acc_bits=lots"), needle=""),
        Case("profiles-toml-is-text", ("profiles", "afile"), needle=""),
        Case("report-missing", ("report", "nodir"), needle="neither a report folder"),
        Case("report-empty-folder", ("report", "adir"), needle="neither a report folder"),
        Case("report-bad-json", ("report", "badreport"), needle=""),
        Case("report-other-schema", ("report", "otherreport"), needle=""),
        Case("report-a-file", ("report", "afile"), needle=""),
        Case("stedgeai-missing-args", ("stedgeai-run", "--model", "model.onnx"), needle="required"),
        Case("stedgeai-unknown-option", (*st, "--colour", "red"), needle="unrecognized arguments"),
        Case("stedgeai-missing-model", ("stedgeai-run", "--model", "absent.onnx", "--inputs", "good.npz",
                                        "--outputs", "o.npz", "--workdir", "wd"), needle="does not exist"),
        Case("stedgeai-bad-inputs", ("stedgeai-run", "--model", "model.onnx", "--inputs", "zero.npz",
                                     "--outputs", "o.npz", "--workdir", "wd"), needle="0 samples"),
        Case("unknown-command", ("frobnicate",), needle="No such command"),
    ]


def valid_cases() -> list[Case]:
    """Valid commands: exit 0 or 1, and only the files they are asked for."""
    return [
        Case("inspect-ok", ("inspect", "model.onnx"), code=0),
        Case("inspect-float-warns", ("inspect", "float.onnx"), code=0),
        Case("profiles-ok", ("profiles",), code=0),
        Case("profiles-one", ("profiles", ENGINE.split(":")[1], "--set", "acc_bits=32"), code=0),
        Case("compare-ok-json", (*BASE["compare"], "--json", "c.json"), code=0, creates=("c.json",)),
        Case("compare-float-model-warns", ("compare", "float.onnx", "--random", "2"), code=0),
        Case("compare-failing-target", ("compare", "--example", "tcn", "--ref", "ort-fused", "--target", ENGINE),
             code=1),
        Case("compare-empty-folder-ok", (*BASE["compare"], "--save-traces", "adir"), code=0, creates=("adir/*",)),
        Case("compare-force-replaces", (*BASE["compare"], "--save-traces", "full", "--force"), code=0,
             creates=("full/*",)),
        Case("extract-ok", (*BASE["extract"], "-o", "cut.onnx"), code=0, creates=("cut.onnx",)),
        Case("stedgeai-help", ("stedgeai-run", "--help"), code=0),
    ]


def all_cases() -> list[Case]:
    return [*output_cases(), *input_cases(), *model_cases(), *option_cases(), *valid_cases()]
