"""``--cluster`` on the command line: a bad value and a missing Dask each say in one line what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qprobe.errors import InputError


def _qprobe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qprobe", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_without_dask_the_cluster_option_says_how_to_install_it(tmp_path: Path) -> None:
    hidden = tmp_path / "site" / "distributed"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    r = _qprobe("compare", "--example", "tcn", "--random", "2", "--cluster", "local:2", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "pip install 'qprobe[distributed]'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("bad", ["local:0", "local", "local:2,board", "http://host:8786", "4"])
def test_a_bad_cluster_value_is_one_line_naming_the_forms(bad: str) -> None:
    from qprobe.execute import parse_cluster

    with pytest.raises(InputError, match="local:N"):
        parse_cluster(bad)


def test_cluster_forms() -> None:
    from qprobe.execute import parse_cluster

    assert parse_cluster("local:3,board=1").resources == {"board": 1.0}
    assert parse_cluster("local:2").workers == 2
    assert parse_cluster("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
