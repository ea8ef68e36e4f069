"""A report of each kind (compare only, localize, full diagnose), rendered from its stored report.json:
the HTML is one self-contained page in the specified order, the Markdown is the forum write-up, and
both name the culprit and the operand scales as the model file holds them."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_support import load, quantize_params

from qprobe import serde
from qprobe.cli.common import example_paths
from qprobe.examples.tcn import FILES, packaged_example_dir
from qprobe.report.document import SCHEMA, Report
from qprobe.report.html import render_html
from qprobe.report.markdown import render_markdown

SECTIONS = ["verdict", "series", "neighbourhood", "explanation", "fix", "checklist", "reproduce"]


class _Page(HTMLParser):
    """What the test reads from a page: section order, scripts, external references, the CSP."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self.csp = ""
        self.svg_titles: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id") or "")
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href", "xlink:href"):
            v = a.get(key) or ""
            if v and not v.startswith(("#", "data:")):
                self.external.append(v)
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a.get("content") or ""


def _page(path: Path) -> tuple[_Page, str]:
    text = path.read_text()
    p = _Page()
    p.feed(text)
    return p, text


def _block0() -> dict[str, object]:
    meta = json.loads((packaged_example_dir() / FILES["metadata"]).read_text())
    return meta["block0_add"]


@pytest.fixture(scope="module")
def kinds(tcn_dir: Path, stage_dirs: dict[str, Path]) -> dict[str, Path]:
    return {"diagnose": tcn_dir, **stage_dirs}


@pytest.mark.parametrize("kind", ["compare", "localize", "diagnose"])
def test_each_kind_is_one_self_contained_page_in_order(kinds: dict[str, Path], kind: str) -> None:
    page, text = _page(kinds[kind] / "report.html")
    assert page.sections == SECTIONS
    assert page.scripts == 0 and page.external == []
    assert "default-src 'none'" in page.csp  # the browser may fetch nothing
    assert "<svg" in text and "cosine similarity" in text and "identical codes" in text
    assert load(kinds[kind]).kind == kind


@pytest.mark.parametrize("kind", ["compare", "localize", "diagnose"])
def test_rerendering_the_stored_document_gives_the_same_files(kinds: dict[str, Path], kind: str) -> None:
    r = Report.load(kinds[kind] / "report.json")
    assert render_html(r) == (kinds[kind] / "report.html").read_text()
    assert render_markdown(r) == (kinds[kind] / "report.md").read_text()


def test_report_json_is_strict_and_schema_checked(tcn_dir: Path, tmp_path: Path) -> None:
    text = (tcn_dir / "report.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    doc = serde.load(tcn_dir / "report.json", SCHEMA)
    assert doc["documents"]["comparison"]["schema"] == "qprobe.comparison/1"
    assert doc["documents"]["divergence"]["schema"] == "qprobe.divergence/1"
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps({**doc, "schema": "qprobe.report/99"}))
    with pytest.raises(serde.SchemaError, match="newer"):
        Report.load(bad)


def test_the_culprit_is_the_example_add_and_its_ratio_comes_from_the_file(kinds: dict[str, Path]) -> None:
    b = _block0()
    model = example_paths("tcn")[0]
    for kind in ("localize", "diagnose"):
        r = load(kinds[kind])
        assert r.verdict["culprit"] == b["node"]
        g = r.views["neighbourhood"]
        out_scale, out_zp = quantize_params(model, g["output"]["tensor"])
        assert g["output"]["scale"] == out_scale and g["output"]["zero_point"] == out_zp
        for e in (e for e in g["edges"] if e["kind"] == "operand"):
            scale, zp = quantize_params(model, e["tensor"])
            assert (e["scale"], e["zero_point"]) == (scale, zp)
            assert math.isclose(e["ratio"], scale / out_scale, rel_tol=1e-12)
        assert sorted(round(e["ratio"], 3) for e in g["edges"] if e["kind"] == "operand") == sorted(
            round(s / b["output_scale"], 3) for s in b["operand_scales"])  # type: ignore[attr-defined]


def test_compare_only_marks_the_first_failing_op_without_claiming_a_culprit(stage_dirs: dict[str, Path]) -> None:
    r = load(stage_dirs["compare"])
    assert r.verdict["culprit"] is None and r.verdict["status"] == "fail"
    assert r.views["neighbourhood"]["how"].startswith("first failing op")
    assert r.views["series"]["culprit"] is None and r.views["series"]["first_failing"] is not None
    assert all(p["local"] is None or p["local_basis"] == "inferred" for p in r.views["series"]["points"])


def test_markdown_names_the_culprit_and_the_operand_scales(tcn_dir: Path) -> None:
    md = (tcn_dir / "report.md").read_text()
    model = example_paths("tcn")[0]
    b = _block0()
    assert f"`{b['node']}`" in md.splitlines()[0]
    for field in ("Board / NPU", "Toolchain", "Runtime / firmware"):
        assert f"| {field}" in md and "_(fill in)_" in md
    g = load(tcn_dir).views["neighbourhood"]
    for e in (e for e in g["edges"] if e["kind"] == "operand"):
        scale, zp = quantize_params(model, e["tensor"])
        assert f"| {format(scale, '.6g')} | {zp} |" in md
    for heading in ("## Summary", "## Localization", "## Operands and scales", "## Rule-out checklist",
                    "## Evidence files", "## Reproduce"):
        assert heading in md
    r = load(tcn_dir)
    assert r.explanation is not None and r.explanation["explained"]
    assert "## Model-free finding" in md and r.explanation["sentence"] in md
    assert "## Best hypothesis" in md and f"`{r.verdict['hypothesis']}`" in md
    assert f"{r.views['explanation']['best']['exact_pct']:.3f}%" in md
    assert r.fix is not None and r.fix["best"] is not None
    assert "## The fix" in md and f"`{r.fix['best']['pass']}`" in md and "## Workarounds tried" in md
    for w in r.views["fix"]["workarounds"]:
        assert f"`{w['pass']}`" in md


def test_a_passing_model_says_so_and_runs_nothing_after_compare(passing_dir: Path) -> None:
    r = load(passing_dir)
    assert r.verdict["status"] == "pass" and r.verdict["line"].startswith("PASS")
    assert [s["status"] for s in r.stages] == ["done", "skipped", "skipped", "skipped"]
    assert r.views["neighbourhood"] is None and r.divergence is None
    assert not (passing_dir / "bundle").exists() and not (passing_dir / "fixed.onnx").exists()
    page, _text = _page(passing_dir / "report.html")
    assert page.sections == SECTIONS
