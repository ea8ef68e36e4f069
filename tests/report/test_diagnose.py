"""``qprobe diagnose`` end to end: the files it writes, the stages it runs, an interrupted run that
leaves nothing behind and resumes from the command cache, ``qprobe report`` re-rendering from
report.json alone, ``compare --html``."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from report_support import TCN_FAILING, TCN_PASSING, load, qprobe

from qprobe.cli.common import resolve_run
from qprobe.report import diagnose as diagnose_mod
from qprobe.report.build import Invocation
from qprobe.report.diagnose import DiagnoseRequest, diagnose

from models.residual import qdq_residual_model

MUTATING = Path(__file__).resolve().parents[1] / "targets" / "mutating_target.py"


def test_diagnose_writes_the_report_folder(tcn_dir: Path) -> None:
    for name in ("report.json", "report.html", "report.md", "compare.json", "divergence.json",
                 "bundle/model.onnx", "bundle/repro.py", "bundle/README.md"):
        assert (tcn_dir / name).is_file(), name
    assert sorted(p.name for p in (tcn_dir / "model_explorer").iterdir()) == [
        "accumulated_cos.json", "exact_pct.json", "local_cos.json", "mean_delta_lsb.json"]
    r = load(tcn_dir)
    assert [(s["name"], s["status"]) for s in r.stages] == [
        ("compare", "done"), ("localize", "done"), ("explain", "done"), ("fix", "done")]
    assert all(s["target_runs"] >= 1 for s in r.stages)
    assert (tcn_dir / "fixed.onnx").is_file() and r.verdict["status"] == "fixed"
    assert (tcn_dir / "fitted.toml").read_text() == r.explanation["profile"]  # type: ignore[index]
    for name in ("explanation.json", "fix.json"):
        assert (tcn_dir / name).is_file()
    listed = {f["path"] for f in r.files}
    assert {"report.json", "report.html", "bundle/", "fixed.onnx", "fitted.toml"} <= listed


def test_without_explain_and_fix_diagnose_still_reports_compare_and_localize(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = diagnose_mod._module
    monkeypatch.setattr(diagnose_mod, "_module", lambda name: None if name in ("qprobe.explain", "qprobe.fix")
                        else real(name))
    run = resolve_run(None, "tcn", "ort-fused", None, TCN_FAILING, None, None, None, 42, "uniform")
    out = tmp_path / "partial"
    diagnose(DiagnoseRequest(run.model, run.name, run.ref, run.target, run.inputs, out,
                             Invocation("--example tcn", "ort-fused", TCN_FAILING)))
    r = load(out)
    assert [(s["name"], s["status"]) for s in r.stages] == [
        ("compare", "done"), ("localize", "done"), ("explain", "unavailable"), ("fix", "unavailable")]
    assert all("not installed" in s["note"] for s in r.stages[2:])
    assert r.explanation is None and r.fix is None and r.verdict["status"] == "fail"
    assert "not installed" in (out / "report.html").read_text() and (out / "bundle" / "repro.py").is_file()


def test_the_cli_prints_the_verdict_the_fix_and_the_report_path(tcn_dir: Path) -> None:
    stdout = tcn_dir.with_suffix(".stdout").read_text()
    lines = stdout.splitlines()
    for stage in ("compare", "localize", "explain", "fix"):
        assert any(re.match(rf"{stage}: \w+", line) for line in lines), stdout  # one plain line per stage
    assert any(line.startswith("verdict: block0_add (Add) introduces the error") for line in lines)
    fix = load(tcn_dir).verdict["fix"]
    assert any(line.startswith(f"fix: {fix or 'none found'}") for line in lines)
    assert f"report: {tcn_dir / 'report.html'}" in lines
    steps = lines[lines.index("next steps:"):]  # the failing model ends with what to do next
    assert steps[-1] == f"  everything above, with charts: {tcn_dir / 'report.html'}"
    assert any(line.startswith("  why block0_add fails: ") for line in steps), stdout


def test_a_rerun_replaces_an_earlier_report_and_exit_code_follows_the_verdict(passing_dir: Path,
                                                                              tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "again"
    shutil.copytree(passing_dir, out)
    (out / "stale.txt").write_text("from an earlier run")
    done = qprobe("diagnose", "--example", "tcn", "--target", TCN_PASSING, "-o", str(out), "--exit-code")
    assert done.returncode == 0, done.stderr  # passes
    assert not (out / "stale.txt").exists() and load(out).verdict["status"] == "pass"


def test_qprobe_report_rerenders_from_report_json_alone(tcn_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(tcn_dir, folder)
    before = {p: (folder / p).read_text() for p in ("report.html", "report.md", "model_explorer/local_cos.json")}
    for p in before:
        (folder / p).unlink()
    (folder / "compare.json").unlink()  # not needed: report.json carries every document
    done = qprobe("report", str(folder / "report.json"))
    assert done.returncode == 0, done.stderr
    assert {p: (folder / p).read_text() for p in before} == before
    (folder / "report.md").unlink()
    assert qprobe("report", str(folder), "--md").returncode == 0
    assert (folder / "report.md").is_file() and (folder / "report.html").read_text() == before["report.html"]


def test_an_interrupted_diagnose_leaves_no_folder_and_keeps_an_earlier_one(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = resolve_run(None, "tcn", "ort-fused", None, TCN_FAILING, None, None, None, 42, "uniform")

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(diagnose_mod, "localize", interrupted)
    for earlier in (False, True):
        out = tmp_path / f"out-{earlier}"
        if earlier:
            out.mkdir()
            (out / "report.json").write_text("{}")
        req = DiagnoseRequest(run.model, run.name, run.ref, run.target, run.inputs, out,
                              Invocation("--example tcn", "ort-fused", TCN_FAILING))
        with pytest.raises(KeyboardInterrupt):
            diagnose(req)
        assert out.exists() == earlier and (not earlier or (out / "report.json").read_text() == "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-False", "out-True"][1:]  # no staging folder left


def test_a_folder_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    done = qprobe("diagnose", "--example", "tcn", "--target", TCN_FAILING, "-o", str(tmp_path))
    assert done.returncode == 2 and "not an earlier report" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_diagnose_on_a_command_target_resumes_from_its_run_cache(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    model = qdq_residual_model(tmp_path / "m")
    template = " ".join([shlex.quote(sys.executable), shlex.quote(str(MUTATING)),
                         "--model {model} --inputs {inputs} --outputs {outputs} --node add --factor 0.5"])

    def args(cache: str, out: str) -> list[str]:
        return ["diagnose", str(model), "--ref", "ort", "--target", f"command:{template}", "--random", "6",
                "--target-opt", f"cache={tmp_path / cache}", "--target-opt", f"workdir={tmp_path / 'runs'}",
                "-o", str(tmp_path / out)]

    count = tmp_path / "board-runs.txt"
    first = qprobe(*args("cache", "report"), env={"QPROBE_TARGET_COUNT_FILE": str(count),
                                                  "QPROBE_TARGET_MAX_RUNS": "2"})
    assert first.returncode == 2 and "Traceback" not in first.stderr, first.stdout + first.stderr
    assert _count(count) == 2 and not (tmp_path / "report").exists()
    second = qprobe(*args("cache", "report"), env={"QPROBE_TARGET_COUNT_FILE": str(count)})
    assert second.returncode == 0, second.stdout + second.stderr
    # one cache entry per distinct run: as many board runs as entries means none was made twice
    runs = len(list((tmp_path / "cache").glob("*.npz")))
    assert _count(count) == runs > 2, "the runs made before the interruption are not made again"
    assert load(tmp_path / "report").verdict["culprit"] == "add"
    third = qprobe(*args("cache", "again"), "--exit-code", env={"QPROBE_TARGET_COUNT_FILE": str(count)})
    assert _count(count) == runs, "a rerun costs the board nothing"
    assert third.returncode == (1 if load(tmp_path / "again").verdict["status"] == "fail" else 0)


def test_compare_html_renders_a_comparison_alone(tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    done = qprobe("compare", "--example", "tcn", "--ref", "ort-fused", "--target", TCN_FAILING, "--html", str(out))
    assert done.returncode == 1, done.stderr
    text = out.read_text()
    assert "<svg" in text and "cosine similarity" in text and "first failing op" in text and "<script" not in text
