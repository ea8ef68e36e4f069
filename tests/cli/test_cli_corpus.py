"""The bad-input corpus (cli_corpus.py), run in-process: for each case the exit code, at most one
error line and no traceback, and no file created or changed except the ones it is asked for."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import pytest
from cli_corpus import Case, all_cases, make_world

from qprobe.cli.main import run

CASES = all_cases()
QUIET = ("note:", "warning:")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file with (size, mtime) and every folder (None) under ``root``."""
    return {str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def test_the_corpus_is_large_and_covers_every_subcommand() -> None:
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES}
    assert {"compare", "localize", "extract", "inspect", "example", "profiles", "explain", "fix", "diagnose",
            "report", "stedgeai-run"} <= commands


def check_stderr(err: str, case: Case) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    loud = [line for line in lines if not line.startswith(QUIET)]
    assert len(loud) <= 1, f"more than one error line:\n{err}"
    if case.code == 2:
        assert len(loud) == 1 and "error:" in loud[0], f"no error line:\n{err}"
        assert case.needle.lower() in loud[0].lower(), f"{case.needle!r} not in {loud[0]!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "w"
    shutil.copytree(world, here, symlinks=True)
    monkeypatch.chdir(here)
    monkeypatch.setenv("QPROBE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    before = snapshot(here)
    code = run(list(case.argv))
    out, err = capsys.readouterr()
    assert code == case.code, f"{' '.join(case.argv)}: exit {code}, wanted {case.code}\n{out[-1500:]}\n{err}"
    check_stderr(err, case)
    after = snapshot(here)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k, "gone") != after.get(k, "gone"))
    allowed = [*case.creates, *(str(Path(p).parent) for p in case.creates)]
    unexpected = [k for k in changed if not any(fnmatch.fnmatch(k, pat) for pat in allowed)]
    assert not unexpected, f"{' '.join(case.argv)} created or changed {unexpected}"
