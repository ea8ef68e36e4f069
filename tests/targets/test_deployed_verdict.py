"""The verdict is about the deployed model (issue 8 item 5): a target that is right when probed
and wrong when not must fail compare (exit 1), with the probe effect measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from targets_support import IO, MUTATING, py


def test_a_target_wrong_only_when_unprobed_fails_compare(model_path: Path, tmp_path: Path) -> None:
    target = py(MUTATING, IO, "--node", "add", "--factor", "0.6", "--only-unprobed", "1")
    out = tmp_path / "cmp.json"
    res = subprocess.run(
        [sys.executable, "-m", "qprobe", "compare", str(model_path), "--ref", "ort", "--target", f"command:{target}",
         "--target-opt", "cache=off", "--target-opt", "cost=0.01", "--probe", "all", "--random", "8",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    doc = json.loads(out.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert doc["trusted"] is False and doc["passed"] is False
    assert all(r["verdict"] != "fail" for r in doc["rows"])  # every probed tensor looks fine ...
    assert [r["verdict"] for r in doc["deployed"]] == ["fail"]  # ... the deployed output does not
    effect = next(e for e in doc["probe_effects"] if e["backend"].startswith("command:"))
    assert effect["changed_outputs"] == ["y"]
    (y,) = effect["outputs"]
    assert y["identical"] is False and y["cos"] < 1.0 and y["exact_share"] < 1.0
    assert "CHANGED its final outputs y" in res.stdout and "deployed (unprobed) model" in res.stdout
