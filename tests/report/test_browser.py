"""The HTML reports in a real headless Chromium (Debian's package, no network, scripts off): no console
error, no request leaves the page, the culprit and the best fix are visible; a screenshot of each is
saved (into $QPROBE_SCREENSHOT_DIR when set, else the test's temporary folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import browser
import pytest
from report_support import load

why = browser.available()
pytestmark = pytest.mark.skipif(why is not None, reason=f"no headless browser: {why}")


def _shots(tmp_path: Path) -> Path:
    d = Path(os.environ.get("QPROBE_SCREENSHOT_DIR") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _check(page: Path, shot: Path, *, culprit: str | None, fix: str | None) -> browser.PageResult:
    got = browser.open_page(page, ["#verdict-line", "#culprit", "#best-fix", "#series svg", "#best-fix-line"])
    shot.write_bytes(got.screenshot)
    assert got.console_errors == [] and got.requests == [] and got.scripts == 0
    assert got.screenshot.startswith(b"\x89PNG") and len(got.screenshot) > 10_000
    line = got.visible["#verdict-line"]
    assert line is not None and line["shown"]
    assert got.visible["#series svg"] is not None and got.visible["#series svg"]["height"] > 200
    if culprit:
        c = got.visible["#culprit"]
        assert c is not None and c["shown"] and c["text"] == culprit and culprit in line["text"]
    else:
        assert got.visible["#culprit"] is None
    if fix:
        f = got.visible["#best-fix"]
        assert f is not None and f["shown"] and f["text"] == fix
        assert got.visible["#best-fix-line"] is not None and got.visible["#best-fix-line"]["shown"]
    return got


def test_the_diagnosis_of_the_tcn_in_a_browser(tcn_dir: Path, tmp_path: Path) -> None:
    r = load(tcn_dir)
    fix = (r.fix or {}).get("best", {}) or {}
    got = _check(tcn_dir / "report.html", _shots(tmp_path) / "diagnose-tcn-arith16-wrap.png",
                 culprit=r.verdict["culprit"], fix=fix.get("pass"))
    assert got.visible["#verdict-line"]["top"] < 400  # the verdict comes first


def test_a_passing_model_in_a_browser(passing_dir: Path, tmp_path: Path) -> None:
    _check(passing_dir / "report.html", _shots(tmp_path) / "diagnose-tcn-onnxruntime-pass.png", culprit=None, fix=None)


@pytest.mark.parametrize("kind", ["compare", "localize"])
def test_stage_reports_in_a_browser(stage_dirs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    culprit = load(stage_dirs[kind]).verdict["culprit"]
    _check(stage_dirs[kind] / "report.html", _shots(tmp_path) / f"{kind}-tcn-arith16-wrap.png", culprit=culprit,
           fix=None)


def test_chromium_is_the_systems_not_a_downloaded_one() -> None:
    assert shutil.which(browser.CHROMIUM) == browser.CHROMIUM and browser.CHROMIUM.startswith("/usr/bin/")
