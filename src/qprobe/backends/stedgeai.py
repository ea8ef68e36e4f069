"""The ST Edge AI adapter: ``stedgeai generate`` + ``stedgeai validate --mode target`` as a target.

Used as a ``command:`` template (hardware in the loop on an STM32N6 board)::

    command:python -m qprobe.backends.stedgeai --model {model} --inputs {inputs}
            --outputs {outputs} --workdir {workdir} --desc serial:921600

For one run it:
  1. writes the samples of ``--inputs`` (keys = model input names) as ``validate_inputs.npz``
     with keys ``m_inputs_<i>`` (the model's layout and dtype), for ``-vi``;
  2. runs ``stedgeai generate --model M --target stm32n6 --st-neural-art [PROFILE]
     --name network --output WORKDIR/st_ai_output --workspace WORKDIR/st_ai_ws`` + ``--extra-generate``;
  3. runs ``--loader`` if given (e.g. ST's ``n6_loader.py``, which flashes the validation
     firmware built from the generated code); ``{output_dir}`` and ``{workdir}`` in it are
     replaced by this run's paths, and ``$VARIABLES`` by the environment's values (it runs in
     the work directory, without a shell);
  4. runs ``stedgeai validate`` with the same model/target/name/output/workspace,
     ``--mode target --valinput validate_inputs.npz [--desc D]`` + ``--extra-validate``;
  5. reads ``<output>/<name>_val_io.npz`` and writes ``c_outputs_<i>`` to ``--outputs``,
     keyed by the model's i-th output name, fitted to its shape (ST's extra unit dims and
     channel-last layouts are undone); integer codes stay codes.
Each tool call's output goes to ``WORKDIR/<step>.log``; a failed step exits non-zero with
its last lines on stderr, so the command backend keeps them with the work directory.
``--stedgeai`` is a command prefix (split like a shell would), default ``$STEDGEAI`` or
``stedgeai`` on PATH. Only ever tested against a stand-in executable: see
docs/on-your-board.md for what was and was not checked.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from qprobe.backends.recorded import tensor_shapes
from qprobe.backends.st import fit_shape, read_c_info, read_val_io, write_validate_inputs
from qprobe.errors import BackendError, InputError, QprobeError
from qprobe.fileio import atomic_save_npz
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import load_inputs
from qprobe.model.loader import load_model

VI_NAME = "validate_inputs.npz"


@dataclass(frozen=True)
class StRunConfig:
    model: Path
    inputs: Path
    outputs: Path
    workdir: Path
    stedgeai: tuple[str, ...] = ("stedgeai",)
    target: str = "stm32n6"
    mode: str = "target"
    neural_art: str | None = ""  # "": the flag alone; a profile ("n6-allmems-O3@f.json"); None: CPU only
    name: str = "network"
    desc: str | None = None
    loader: tuple[str, ...] = ()
    extra_generate: tuple[str, ...] = ()
    extra_validate: tuple[str, ...] = ()

    @property
    def output_dir(self) -> Path:
        return self.workdir / "st_ai_output"

    @property
    def workspace(self) -> Path:
        return self.workdir / "st_ai_ws"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (an ``InputError``) instead of usage text and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (`{self.prog} --help` lists the options)")


def parse_args(argv: Sequence[str] | None = None, prog: str = "python -m qprobe.backends.stedgeai") -> StRunConfig:
    """The run's configuration; relative paths are resolved against the current directory here, before
    any tool runs in the work directory (else an output would land in ``wd/wd/``)."""
    ap = _Parser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--inputs", required=True, type=Path)
    ap.add_argument("--outputs", required=True, type=Path)
    ap.add_argument("--workdir", type=Path, default=None, help="default: the directory of --outputs")
    ap.add_argument("--stedgeai", default=os.environ.get("STEDGEAI", "stedgeai"), help="tool command prefix")
    ap.add_argument("--target", default="stm32n6")
    ap.add_argument("--mode", default="target", help="validate mode: target (the board) or host")
    ap.add_argument("--neural-art", default="", help="--st-neural-art profile, e.g. n6-allmems-O3@user_neuralart.json")
    ap.add_argument("--no-neural-art", action="store_true", help="generate for the Cortex-M55 only (ST's SW kernels)")
    ap.add_argument("--name", default="network", help="C name (ST: keep 'network' for validation)")
    ap.add_argument("--desc", default=None, help="validate --desc, e.g. serial:921600")
    ap.add_argument("--loader", default="", help="command run between generate and validate (flashes the board); "
                    "{output_dir}, {workdir} and $ENVIRONMENT_VARIABLES are replaced")
    ap.add_argument("--extra-generate", default="", help="more generate arguments, one string")
    ap.add_argument("--extra-validate", default="", help="more validate arguments, one string")
    a = ap.parse_args(argv)
    outputs = a.outputs.absolute()
    return StRunConfig(
        model=a.model.absolute(), inputs=a.inputs.absolute(), outputs=outputs,
        workdir=(a.workdir.absolute() if a.workdir else outputs.parent),
        stedgeai=tuple(shlex.split(a.stedgeai)), target=a.target, mode=a.mode,
        neural_art=None if a.no_neural_art else a.neural_art, name=a.name, desc=a.desc,
        loader=tuple(shlex.split(a.loader)), extra_generate=tuple(shlex.split(a.extra_generate)),
        extra_validate=tuple(shlex.split(a.extra_validate)),
    )


def st_commands(cfg: StRunConfig) -> list[tuple[str, list[str]]]:
    """The (step, argv) pairs this run executes, in order."""
    na = [] if cfg.neural_art is None else ["--st-neural-art", *([cfg.neural_art] if cfg.neural_art else [])]
    common = ["--model", str(cfg.model), "--target", cfg.target, *na, "--name", cfg.name,
              "--output", str(cfg.output_dir), "--workspace", str(cfg.workspace)]
    steps = [("generate", [*cfg.stedgeai, "generate", *common, *cfg.extra_generate])]
    if cfg.loader:
        paths = {"{output_dir}": str(cfg.output_dir), "{workdir}": str(cfg.workdir)}
        steps.append(("loader", [os.path.expandvars(_subst(tok, paths)) for tok in cfg.loader]))
    desc = ["--desc", cfg.desc] if cfg.desc else []
    validate = [*cfg.stedgeai, "validate", *common, "--mode", cfg.mode,
                "--valinput", str(cfg.workdir / VI_NAME), *desc, *cfg.extra_validate]
    steps.append(("validate", validate))
    return steps


def _subst(token: str, paths: dict[str, str]) -> str:
    for key, value in paths.items():
        token = token.replace(key, value)
    return token


def run_step(step: str, argv: list[str], cfg: StRunConfig) -> None:
    log = cfg.workdir / f"{step}.log"
    print(f"[qprobe.stedgeai] {step}: {shlex.join(argv)}", flush=True)
    try:
        with open(log, "wb") as fh:
            rc = subprocess.run(argv, cwd=cfg.workdir, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    except OSError as e:
        raise BackendError(f"cannot run {argv[0]!r} ({e}); pass --stedgeai /path/to/stedgeai or set $STEDGEAI") from e
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").rstrip().splitlines()[-25:])
        raise BackendError(f"stedgeai {step} failed with exit code {rc} (full log: {log}):\n{tail}")


def find_val_io(cfg: StRunConfig) -> Path:
    expected = cfg.output_dir / f"{cfg.name}_val_io.npz"
    if expected.exists():
        return expected
    found = sorted(cfg.workdir.rglob("*_val_io.npz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise BackendError(
            f"stedgeai validate wrote no {expected.name} under {cfg.workdir}; see validate.log "
            "(was the board connected and the validation firmware loaded?)"
        )
    return found[-1]


def outputs_from_val_io(cfg: StRunConfig, val_io: Path, n: int) -> dict[str, np.ndarray]:
    """``c_outputs_<i>`` keyed by the model's i-th output name, in the model's shapes."""
    model = load_model(cfg.model)
    names = graph_output_names(model)
    c_out = read_val_io(val_io).c_outputs
    if len(c_out) < len(names):
        raise BackendError(
            f"{val_io} holds {len(c_out)} c_outputs, the model has {len(names)} outputs {names}; "
            "did the tool drop or merge outputs? (see generate.log)"
        )
    shapes = tensor_shapes(model)
    out = {}
    for name, arr in zip(names, c_out, strict=False):
        if arr.shape[0] != n:
            raise BackendError(f"{val_io}: c_outputs for {name!r} has {arr.shape[0]} samples, {n} were sent")
        out[name] = fit_shape(arr, shapes.get(name), what=f"{val_io.name} output {name!r}")
    return out


def run(cfg: StRunConfig) -> dict[str, np.ndarray]:
    if cfg.workdir.exists() and not cfg.workdir.is_dir():
        raise InputError(f"--workdir {cfg.workdir} is a file; pick a folder")
    if cfg.outputs.is_dir():
        raise InputError(f"--outputs {cfg.outputs} is a folder; give the .npz file to write")
    if not cfg.outputs.parent.is_dir() and cfg.outputs.parent != cfg.workdir:
        raise InputError(f"--outputs {cfg.outputs}: the folder {cfg.outputs.parent} does not exist; create it first")
    model = load_model(cfg.model)
    inputs = load_inputs(model, cfg.inputs)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    write_validate_inputs(inputs.arrays, cfg.workdir / VI_NAME)
    for step, argv in st_commands(cfg):
        run_step(step, argv, cfg)
    val_io = find_val_io(cfg)
    outputs = outputs_from_val_io(cfg, val_io, inputs.num_samples)
    atomic_save_npz(cfg.outputs, outputs)
    _print_reported(cfg)
    return outputs


def _print_reported(cfg: StRunConfig) -> None:
    for p in sorted(cfg.output_dir.glob("*c_info*.json")):
        try:
            info = read_c_info(p)
        except QprobeError:
            continue
        for m in info.val_metrics:
            print(f"[qprobe.stedgeai] ST reports {m.desc}: rmse={m.rmse:.6g} cos={m.cos:.6g} mean={m.mean:.6g}")


def main(argv: Sequence[str] | None = None, prog: str = "python -m qprobe.backends.stedgeai") -> int:
    try:
        cfg = parse_args(argv, prog)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        run(cfg)
    except QprobeError as e:
        print(f"qprobe.stedgeai: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
