"""The README's commands run as written (DESIGN rule 8)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first = README.split("```")[1]
    assert first.strip().splitlines() == ["make demo", "make test"]


def _commands() -> list[tuple[list[list[str]], int]]:
    """Each line of the README's sh blocks: its commands (``a && b`` run in order in one folder)
    and the exit code the last one must give (a trailing ``# exit N``, else 0)."""
    cmds = []
    for block in _blocks("sh"):
        for line in block.strip().splitlines():
            text, _, comment = line.partition("#")
            expect = int(comment.split()[-1]) if "exit" in comment else 0
            cmds.append(([shlex.split(part) for part in text.split("&&")], expect))
    return cmds


def _ids(v: object) -> str:
    return " && ".join(" ".join(c) for c in v)[:60] if isinstance(v, list) else str(v)


@pytest.mark.parametrize("chain,expect", _commands(), ids=_ids)
def test_readme_command(chain: list[list[str]], expect: int, tmp_path: Path) -> None:
    for i, argv in enumerate(chain):
        assert argv[0] == "qprobe"
        res = subprocess.run([sys.executable, "-m", "qprobe", *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                             timeout=900)
        want = expect if i == len(chain) - 1 else 0
        assert res.returncode == want, " ".join(argv) + "\n" + res.stdout[-2000:] + res.stderr[-2000:]
        assert "Traceback" not in res.stderr


def test_make_demo_command_runs(tmp_path: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r"^demo:.*\n\t(.+)$", makefile, flags=re.M)
    assert line is not None
    argv = shlex.split(line.group(1).replace("$(VENV)/bin/", ""))
    assert argv[0] == "qprobe"
    res = subprocess.run([sys.executable, "-m", "qprobe", *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "block0_add" in res.stdout and "target runs" in res.stdout
    steps = res.stdout[res.stdout.index("next steps"):]  # the demo leads somewhere
    assert "scale ratios are 2.05" in steps and "below 2.000" in steps  # the TCN's design ratio, the profile's limit
    assert "repro.py" in steps and "qprobe explain" in steps and "qprobe fix" in steps
    assert (tmp_path / "demo-out" / "bundle" / "README.md").exists()
