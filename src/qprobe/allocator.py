"""glibc's allocator told to keep freed memory for reuse instead of handing it back at once.

The engine's kernels make short-lived arrays of a few MB per op (columns, accumulators).
With glibc's defaults, freeing them at the end of a run can shrink the heap below its top
(``M_TRIM_THRESHOLD``, which glibc ties to the last mmap threshold) and the next run
page-faults the same memory in again: measured on the TCN example at batch 64, 22.5 ms per
engine run with the defaults, 10.1 ms with the settings below (benchmarks/engine_speed.py).
``keep_freed_memory`` sets ``M_MMAP_THRESHOLD`` to ``MMAP_THRESHOLD`` (blocks above it are
still mapped and unmapped on their own, so large batches return to the system) and
``M_TRIM_THRESHOLD`` to ``TRIM_THRESHOLD`` (at most that much freed memory stays on top of
the heap). Peak memory is unchanged; memory after a run stays up to ``TRIM_THRESHOLD``
higher. Only on Linux with glibc; ``QPROBE_MALLOC=default`` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20

_done: str | None = None


def keep_freed_memory() -> str:
    """Apply the settings once; returns what was done (for provenance)."""
    global _done
    if _done is not None:
        return _done
    _done = "default"
    if os.environ.get("QPROBE_MALLOC", "").strip().lower() == "default" or not sys.platform.startswith("linux"):
        return _done
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None  # None: not glibc
    if mallopt is None:
        return _done
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _done = f"glibc mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"
    return _done


def _libc() -> ctypes.CDLL | None:
    """glibc by its soname first: ``ctypes.util.find_library`` runs ``ldconfig -p`` in a
    subprocess (10-35 ms), paid by the first comparison of a process."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        pass
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None
