"""localize --exit-code makes a found divergence fail a CI step."""

from __future__ import annotations

import subprocess
import sys


def test_localize_exit_code_flag_gates_ci() -> None:
    base = [sys.executable, "-m", "qprobe", "localize", "--example", "tcn", "--exit-code"]
    bad = subprocess.run([*base, "--target", "engine:arith16-wrap"], capture_output=True, text=True, timeout=300)
    good = subprocess.run([*base, "--target", "engine:onnxruntime"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "block0_add" in bad.stdout
    assert good.returncode == 0 and "no divergence" in good.stdout
