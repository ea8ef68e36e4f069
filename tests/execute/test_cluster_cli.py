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


@pytest.mark.cluster
def test_a_target_run_failing_on_a_worker_is_reported_once_without_a_traceback(tmp_path: Path) -> None:
    """The worker's own "Compute Failed" log (with the remote traceback) is not shown: the user
    reads qprobe's error, which names the kept work directory."""
    pytest.importorskip("distributed")
    (tmp_path / "bad.sh").write_text("#!/bin/sh\nexit 3\n")
    (tmp_path / "bad.sh").chmod(0o755)
    r = subprocess.run([sys.executable, "-m", "qprobe", "localize", "--example", "tcn", "--random", "4",
                        "--target", "command:./bad.sh {model} {inputs} {outputs}", "--target-opt", "cache=off",
                        "--target-opt", f"workdir={tmp_path / 'runs'}", "--cluster", "local:2"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr, r.stderr
    assert "the command exited with code 3" in r.stderr and "work directory kept" in r.stderr


def test_a_local_cluster_whose_loop_closed_first_still_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Dask: a fake distributed module whose client's close finds the event loop closed."""
    from types import SimpleNamespace

    from qprobe.execute import cluster as cl

    closed: list[str] = []

    class Local:
        def __init__(self, **_kw: object) -> None: ...

        def close(self) -> None:
            closed.append("cluster")

    class Client:
        def __init__(self, _local: object) -> None: ...

        def close(self) -> None:
            closed.append("client")
            raise RuntimeError("IOLoop is closed")

    monkeypatch.setattr(cl, "_distributed", lambda: SimpleNamespace(LocalCluster=Local, Client=Client))
    with cl.connect("local:2") as c:
        assert isinstance(c.client, Client)
    assert closed == ["client", "cluster"]

    class Broken(Client):
        def close(self) -> None:
            raise RuntimeError("something else")

    monkeypatch.setattr(cl, "_distributed", lambda: SimpleNamespace(LocalCluster=Local, Client=Broken))
    with pytest.raises(RuntimeError, match="something else"), cl.connect("local:2"):
        pass
