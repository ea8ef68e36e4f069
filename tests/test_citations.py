"""Decisions cite what ships (issue 9 item 8): every repository path that a docstring, README or
docs page cites exists, and no source file cites documents outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "qprobe"
# repo-relative paths as they are cited: docs/x.md, tests/.../x.py, benchmarks/x.py, src/qprobe/...
CITED = re.compile(r"(?<![\w/.:-])((?:docs|tests|benchmarks|tools|src/qprobe)/[\w./-]+\.(?:md|py|toml|json|npz))")
OUTSIDE = re.compile(r"\.\./shared|reference/(?:arithmetic|st-edge-ai|peers)\.md|(?<!docs/)st-edge-ai\.md")


def _texts() -> list[Path]:
    return [*SRC.rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md")]


def test_every_cited_repository_path_exists() -> None:
    missing = []
    for p in _texts():
        for m in CITED.finditer(p.read_text()):
            if not (ROOT / m.group(1).rstrip(".")).exists():
                missing.append(f"{p.relative_to(ROOT)} cites {m.group(1)}")
    assert not missing, missing


def test_sources_cite_the_docs_in_the_repository() -> None:
    outside = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in SRC.rglob("*.py") for m
               in OUTSIDE.finditer(p.read_text())]
    assert not outside, outside
