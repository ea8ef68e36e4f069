"""Reports made by real runs once per session (nothing big is committed): a full diagnosis of the
bundled TCN on ``engine:arith16-wrap``, a passing model on ``engine:onnxruntime``, and the
comparison-only and localization-only reports of the TCN, each stored as report.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import TCN_FAILING, TCN_PASSING, qprobe

from qprobe.cli.common import example_paths, resolve_run
from qprobe.compare import compare_backends
from qprobe.localize import localize
from qprobe.report.build import Invocation, build_report
from qprobe.report.document import Report
from qprobe.report.write import render_files
from shared_build import built_once


def _diagnose(factory: pytest.TempPathFactory, name: str, target: str) -> Path:
    """The diagnosis folder, made once per test run (both xdist workers read the same one)."""
    def build(out: Path) -> None:
        done = qprobe("diagnose", "--example", "tcn", "--target", target, "-o", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        out.with_suffix(".stdout").write_text(done.stdout)  # what the CLI printed, for the tests that read it

    return built_once(factory, name, build)


@pytest.fixture(scope="session")
def tcn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``qprobe diagnose --example tcn --target engine:arith16-wrap -o DIR``."""
    return _diagnose(tmp_path_factory, "tcn-arith16", TCN_FAILING)


@pytest.fixture(scope="session")
def passing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TCN on the engine's bit-exact onnxruntime profile: a passing model."""
    return _diagnose(tmp_path_factory, "tcn-pass", TCN_PASSING)


@pytest.fixture(scope="session")
def stage_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A compare-only and a localize-only report of the TCN, rendered from their stored report.json."""
    run = resolve_run(None, "tcn", "ort-fused", None, TCN_FAILING, None, None, None, 42, "uniform")
    inv = Invocation("--example tcn", "ort-fused", TCN_FAILING)
    cmp = compare_backends(run.model, run.ref, run.target, run.inputs, model_name=run.name)
    loc = localize(run.model, run.ref, run.target, run.inputs, model_name=run.name)
    model_file = str(example_paths("tcn")[0])
    out = {}
    for kind, docs in (("compare", {"comparison": cmp.to_json()}),
                       ("localize", {"divergence": loc.divergence.to_json()})):
        d = tmp_path_factory.mktemp(kind)
        build_report(kind, run.model, run.name, invocation=inv, model_file=model_file, **docs).save(d / "report.json")
        render_files(Report.load(d / "report.json"), d, json=False)  # rendered from the stored file alone
        out[kind] = d
    return out
