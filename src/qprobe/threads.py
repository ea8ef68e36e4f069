"""The thread pools qprobe runs with, set deliberately so that they do not fight over the cores.

Three pools compete while a comparison runs: numpy's BLAS (OpenBLAS spins its worker
threads after each call), onnxruntime's intra-op pool, and the engine (numpy in the calling
thread). qprobe runs the backends one after the other, so one pool at a time may have the
cores, and numpy's BLAS, which only the engine's few float GEMMs use, gets one thread:

* ``blas``: 1 (numpy's BLAS, set with threadpoolctl for the whole process when the first
  backend session opens, see ``configure``);
* ``ort_intra_op``: the *idle* cores qprobe may use: the cores of ``os.sched_getaffinity``
  less the 1-minute load average (rounded), at least 1 and at most ``MAX_ORT_THREADS``.
  On a machine other jobs keep busy, a second intra-op thread only waits for a core (measured
  on a loaded 2-core machine: 1 thread 1.3-2x faster than 2, benchmarks/bench_threads.py);
  on an idle one every core works. Spinning of the pool's threads is turned off when there
  are several (``session.intra_op.allow_spinning=0``), so they do not steal the cores of the
  next session. The ``threads=N`` backend option overrides it;
* ``engine``: the cores (at most ``MAX_ORT_THREADS``): the engine may cut a batch into
  that many chunks and run them on its own threads (``backends/engine/batch_split.py``;
  numpy releases the GIL in its loops), or run it whole with numpy's BLAS raised to that many
  threads for the one call (``BlasThreads``; back to ``blas`` when the call returns); it
  times the ways on the first batches of each size and keeps the fastest, so on a busy
  machine it stays on one thread by measurement.

The load average counts qprobe's own work of the last minute too, which would make a
long run see its own cores as busy: ``idle_cores`` takes off the share of it that this
process's CPU time explains, and trusts the kernel's count of threads running right now
(``/proc/loadavg``) when that says fewer cores are taken (work that has just ended).

``QPROBE_BLAS_THREADS``, ``QPROBE_ORT_THREADS`` and ``QPROBE_ENGINE_THREADS`` override the
defaults, for measuring a hand-tuned setting (benchmarks/bench_threads.py). ``describe`` gives the settings as strings
for a Trace's ``session_info`` (its provenance).
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass

from qprobe.allocator import keep_freed_memory

try:  # imported with this module (12 ms), not inside the first comparison that opens a session
    from threadpoolctl import ThreadpoolController, threadpool_limits
except ImportError:  # declared as a dependency; a broken install only loses the limit
    threadpool_limits = None
    ThreadpoolController = None

MAX_ORT_THREADS = 8

_configured: int | None = None
FRESH_S = 0.25  # a reading of the running threads this recent is reused (``running_elsewhere``)
_reading: tuple[float, int, int | None] | None = None  # (when, samples, count)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


_START = (time.monotonic(), _cpu_seconds())


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        return max(1, int(text)) if text else default
    except ValueError:
        return default


@dataclass(frozen=True)
class ThreadSettings:
    cores: int
    blas: int
    ort_intra_op: int
    engine: int = 1

    def describe(self) -> dict[str, str]:
        return {"threads.cores": str(self.cores), "threads.blas": str(self.blas),
                "threads.ort_intra_op_default": str(self.ort_intra_op), "threads.engine": str(self.engine)}


def own_load() -> float:
    """This process's share of the 1-minute load average: its mean CPU use since it started,
    weighted by how much of that the average (a one-minute exponential mean) has taken in."""
    age = time.monotonic() - _START[0]
    if age <= 0:
        return 0.0
    rate = (_cpu_seconds() - _START[1]) / age
    return rate * (1.0 - math.exp(-age / 60.0))


def running_elsewhere(samples: int = 5) -> int | None:
    """Threads of other processes running or runnable now (Linux ``/proc``; None elsewhere):
    the least of a few readings 0.5 ms apart, so that a thread passing by is not counted as
    load (a busy process is runnable in every reading). A reading taken less than
    ``FRESH_S`` ago is reused: a comparison opens several sessions within a fraction of a
    second, and each reading costs ~3 ms of pauses."""
    global _reading
    now = time.monotonic()
    if _reading is not None and _reading[1] == samples and now - _reading[0] < FRESH_S:
        return _reading[2]
    count = _read_running(samples)
    _reading = (time.monotonic(), samples, count)
    return count


def _read_running(samples: int) -> int | None:
    counts = []
    for i in range(samples):
        if i:
            time.sleep(0.0005)
        try:
            with open("/proc/loadavg", encoding="ascii") as f:
                total = int(f.read().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return None
        counts.append(max(0, total - _running_here()))
    return min(counts)


def _running_here() -> int:
    """This process's threads in state R (the calling one included)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return max(1, count)


def idle_cores() -> int:
    """The cores not kept busy by other work, at least 1 (see the module docstring)."""
    n = cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        load = 0.0
    others = max(0.0, load - own_load())
    now = running_elsewhere()
    if now is not None:
        others = min(others, float(now))
    return max(1, n - int(min(others, n) + 0.5))


def settings() -> ThreadSettings:
    """The settings qprobe uses on this machine now (environment overrides included)."""
    idle = min(idle_cores(), MAX_ORT_THREADS)
    return ThreadSettings(cores(), _env_int("QPROBE_BLAS_THREADS", 1), _env_int("QPROBE_ORT_THREADS", idle),
                          _env_int("QPROBE_ENGINE_THREADS", min(cores(), MAX_ORT_THREADS)))


def configure() -> ThreadSettings:
    """Limit numpy's BLAS to ``settings().blas`` threads for this process (once; cheap after),
    and keep the allocator's freed memory for reuse (``qprobe.allocator``)."""
    global _configured
    keep_freed_memory()
    s = settings()
    if _configured != s.blas:
        if threadpool_limits is None:
            return s
        threadpool_limits(limits=s.blas, user_api="blas")
        _configured = s.blas
    return s


class BlasThreads:
    """numpy's BLAS thread count, raised around one call and put back (``set``: a C call into
    each BLAS library, ~1 us). The engine's batch runner uses it for one-model runs whose
    GEMMs dominate (``backends/engine/batch_split.py``)."""

    def __init__(self, libraries: list[object], base: int) -> None:
        self._libraries, self.base = libraries, base

    def set(self, n: int) -> None:
        for lib in self._libraries:
            lib.set_num_threads(n)  # type: ignore[attr-defined]


def blas_threads() -> BlasThreads | None:
    """The setter for numpy's BLAS libraries (found once per process), or None when threadpoolctl
    finds none or the BLAS thread count was set by hand (``QPROBE_BLAS_THREADS``)."""
    if os.environ.get("QPROBE_BLAS_THREADS", "").strip() or ThreadpoolController is None:
        return None
    return _found_blas()


@functools.cache
def _found_blas() -> BlasThreads | None:
    import numpy  # noqa: F401  (threadpoolctl finds the BLAS numpy has loaded)

    libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return BlasThreads(libraries, configure().blas) if libraries else None


def describe() -> dict[str, str]:
    """The settings in force, as provenance strings (``configure`` first)."""
    return configure().describe() | {"allocator": keep_freed_memory()}
