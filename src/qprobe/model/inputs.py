"""Input samples: loaded from an .npz or generated, checked against the model's inputs.

An ``InputSet`` holds one array per model input with the samples stacked on the model's
batch axis (axis 0). An array of shape ``[N, 1, ...]`` for a model input ``[1, ...]`` is
accepted too (an extra sample axis) and folded into the batch axis.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qprobe.errors import InputError
from qprobe.fileio import atomic_save_npz
from qprobe.model.graph import const_array, name_of
from qprobe.tensors import QuantParams

RANDOM_MODES = ("uniform", "qrange")


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]  # None for symbolic dims


Block = Callable[[int], dict[str, np.ndarray]]  # block number -> that block's arrays


class InputSet:
    """The samples of a run: one array per model input, samples on axis 0.

    Eager (``InputSet(arrays, source)``) or lazy (``InputSet.lazy``): a lazy set makes its
    samples block by block when ``batches`` asks for them, so a million random samples never
    sit in memory at once; ``arrays`` materializes a lazy set whole (and keeps it).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], source: str) -> None:
        self._arrays: dict[str, np.ndarray] | None = dict(arrays)
        self.source = source
        self._count = int(next(iter(self._arrays.values())).shape[0]) if self._arrays else 0
        self._block = 0
        self._make: Block | None = None
        self._blocks: dict[int, dict[str, np.ndarray]] = {}
        self._last: tuple[tuple[int, int], dict[str, np.ndarray]] | None = None

    @classmethod
    def lazy(cls, num_samples: int, block: int, make: Block, source: str) -> InputSet:
        """``num_samples`` samples made ``block`` at a time: ``make(k)`` returns samples
        ``k*block`` up to ``(k+1)*block`` (fewer in the last block)."""
        s = cls({}, source)
        s._arrays, s._count, s._block, s._make = None, num_samples, max(1, block), make
        return s

    @property
    def is_lazy(self) -> bool:
        return self._arrays is None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            parts = [self._make_block(k) for k in range(-(-self._count // self._block))]
            self._arrays = {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]} if parts else {}
        return self._arrays

    def _make_block(self, k: int) -> dict[str, np.ndarray]:
        assert self._make is not None
        return self._make(k)

    @property
    def num_samples(self) -> int:
        return self._count

    def batches(self, batch_size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        step = max(1, batch_size)
        if self._arrays is not None:
            for start in range(0, self._count, step):
                yield start, {k: v[start : start + step] for k, v in self._arrays.items()}
            return
        yield from self._lazy_batches(step)

    def _lazy_batches(self, step: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for start in range(0, self._count, step):
            yield start, self._lazy_batch(start, step)

    def _lazy_batch(self, start: int, step: int) -> dict[str, np.ndarray]:
        """Samples ``start .. start+step`` from the blocks they span. The last batch made and the
        blocks it needs are kept, so streams that walk the same batches in step (a reference
        and a target run) make each block once."""
        if self._last is not None and self._last[0] == (start, step):
            return self._last[1]
        k0, k1 = start // self._block, (min(start + step, self._count) - 1) // self._block
        self._blocks = {k: b for k, b in self._blocks.items() if k0 <= k <= k1}
        for k in range(k0, k1 + 1):
            if k not in self._blocks:
                self._blocks[k] = self._make_block(k)
        parts = [self._blocks[k] for k in range(k0, k1 + 1)]
        joined = parts[0] if len(parts) == 1 else {n: np.concatenate([p[n] for p in parts], axis=0) for n in parts[0]}
        off = start - k0 * self._block
        feeds = {n: v[off : off + step] for n, v in joined.items()}
        self._last = ((start, step), feeds)
        return feeds

    def window(self, lo: int, hi: int) -> InputSet:
        """Samples ``lo`` up to ``hi`` (a shard of a cluster run); a lazy set stays lazy and makes
        only the blocks the window touches."""
        lo, hi = max(0, lo), min(self._count, hi)
        if self._arrays is not None:
            return InputSet({k: v[lo:hi] for k, v in self._arrays.items()}, self.source)
        size = self._block

        def make(j: int) -> dict[str, np.ndarray]:
            start, stop = lo + j * size, min(hi, lo + (j + 1) * size)
            parts = [self._make_block(k) for k in range(start // size, (stop - 1) // size + 1)]
            cut = start - (start // size) * size
            return {n: np.concatenate([p[n] for p in parts], axis=0)[cut : cut + stop - start] for n in parts[0]}

        return InputSet.lazy(hi - lo, size, make, self.source)

    def save(self, path: Path) -> None:
        atomic_save_npz(path, self.arrays)


def input_specs(model: ir.Model) -> list[InputSpec]:
    specs = []
    for v in model.graph.inputs:
        if v.name in model.graph.initializers:
            continue
        if v.dtype is None:
            raise InputError(f"model input {v.name!r} has no element type; the model is incomplete")
        shape = tuple(d if isinstance(d, int) else None for d in (v.shape or ()))
        specs.append(InputSpec(name_of(v), np.dtype(v.dtype.numpy()), shape))
    return specs


def load_inputs(model: ir.Model, path: str | Path) -> InputSet:
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file {str(p)!r} does not exist; pass an .npz with one key per model input")
    data = read_npz(p)
    specs = input_specs(model)
    missing = [s.name for s in specs if s.name not in data]
    if missing:
        raise InputError(
            f"{str(p)!r} has no array for model input(s) {missing}; its keys are {sorted(data)}. "
            "Save one array per model input, keyed by the input's name"
        )
    arrays = {s.name: _fit(s, data[s.name], str(p)) for s in specs}
    _check_same_count(arrays, str(p))
    check_samples(arrays, str(p))
    return InputSet(arrays, str(p))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; anything else (an ``.npy``, a pickle, a text file, a folder) is
    an ``InputError`` naming what it is."""
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a folder; pass an .npz file")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY":
            raise InputError(f"{str(path)!r} is a single .npy array, not an .npz; save it with "
                             "numpy.savez(PATH, INPUT_NAME=array)")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{str(path)!r} is not a readable .npz file ({e}); write it with numpy.savez") from e
    except AttributeError as e:  # np.load returned something that is no archive
        raise InputError(f"{str(path)!r} is not an .npz archive; write it with numpy.savez") from e


def check_samples(arrays: dict[str, np.ndarray], src: str) -> None:
    """At least one sample, and only finite values in float inputs (NaN or Inf compare as nothing)."""
    if arrays and next(iter(arrays.values())).shape[0] == 0:
        raise InputError(f"{src} holds 0 samples; give at least one sample per input (samples on axis 0)")
    for name, a in arrays.items():
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            bad = int((~np.isfinite(a.reshape(a.shape[0], -1))).any(axis=1).sum())
            raise InputError(f"input {name!r} in {src} holds NaN or Inf in {bad} of {a.shape[0]} samples; "
                             "qprobe compares finite values only, fix or drop those samples")


def _fit(spec: InputSpec, a: np.ndarray, src: str) -> np.ndarray:
    rank = len(spec.shape)
    if a.ndim == rank + 1 and rank > 0 and a.shape[1] == 1 and spec.shape[0] in (1, None):
        a = a.reshape((a.shape[0], *a.shape[2:]))
    if a.ndim != rank:
        raise InputError(
            f"input {spec.name!r} in {src}: shape {a.shape} does not fit the model's {_fmt(spec.shape)}; "
            "stack samples on the batch axis (axis 0)"
        )
    for i, (got, want) in enumerate(zip(a.shape[1:], spec.shape[1:], strict=True), start=1):
        if want is not None and got != want:
            raise InputError(
                f"input {spec.name!r} in {src}: dimension {i} is {got}, the model wants {want} "
                f"(model shape {_fmt(spec.shape)}, array shape {a.shape})"
            )
    return _cast(spec, a, src)


def _cast(spec: InputSpec, a: np.ndarray, src: str) -> np.ndarray:
    want = spec.dtype
    if a.dtype == want:
        return a
    if np.issubdtype(want, np.floating) and np.issubdtype(a.dtype, np.floating):
        return a.astype(want)
    if np.issubdtype(want, np.integer) and np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(want)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise InputError(f"input {spec.name!r} in {src}: values outside the range of {want}")
        return a.astype(want)
    raise InputError(
        f"input {spec.name!r} in {src} has dtype {a.dtype}, the model wants {want}; convert the array"
    )


def _check_same_count(arrays: dict[str, np.ndarray], src: str) -> None:
    counts = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(counts.values())) > 1:
        raise InputError(f"inputs in {src} have different sample counts {counts}; they must match")


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def random_inputs(model: ir.Model, n: int = 10, seed: int = 42, mode: str = "uniform") -> InputSet:
    """``stedgeai validate``-like random samples: uniform in [0, 1) (seed 42, 10 samples by
    default), or uniform over each input's quantized range (``qrange``).

    Made lazily in blocks of ``random_block(model)`` samples: block 0 is drawn from
    ``default_rng(seed)``, block ``k > 0`` from ``default_rng([seed, k])``, each input in turn,
    so the samples depend on the seed (and the model) only, never on the batch size, and
    up to one block they are the samples one ``default_rng(seed)`` draws for all of them.
    """
    if mode not in RANDOM_MODES:
        raise InputError(f"unknown random mode {mode!r}; known: {', '.join(RANDOM_MODES)}")
    if n < 1:
        raise InputError(f"--random needs at least 1 sample, got {n}")
    specs = input_specs(model)
    block = random_block(specs)
    ranges = {s.name: _range(model, s, mode) for s in specs}

    def make(k: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed if k == 0 else [seed, k])
        count = min(block, n - k * block)
        return {s.name: _draw(s, (count, *[1 if d is None else d for d in s.shape[1:]]), rng, ranges[s.name])
                for s in specs}

    return InputSet.lazy(n, block, make, f"random(n={n}, seed={seed}, {mode})")


RANDOM_BLOCK_BYTES = 16 << 20  # a block of random samples holds at most this much (and at most 1024 samples)


def random_block(specs: list[InputSpec]) -> int:
    """Samples per block of random inputs: 1024, fewer when one sample is over 16 KiB."""
    per = sum(int(np.prod([1 if d is None else d for d in s.shape[1:]])) * s.dtype.itemsize for s in specs)
    return int(max(1, min(1024, RANDOM_BLOCK_BYTES // max(1, per))))


def _range(model: ir.Model, spec: InputSpec, mode: str) -> tuple[float, float]:
    lo, hi = 0.0, 1.0
    if mode == "qrange" and not np.issubdtype(spec.dtype, np.integer):
        q = input_quant(model, spec.name)
        if q is not None:
            lo = (q.qmin - q.zero_point[0]) * q.scale[0]
            hi = (q.qmax - q.zero_point[0]) * q.scale[0]
    return lo, hi


def _draw(spec: InputSpec, shape: tuple[int, ...], rng: np.random.Generator, bounds: tuple[float, float]) -> np.ndarray:
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(spec.dtype)
    return rng.uniform(bounds[0], bounds[1], size=shape).astype(spec.dtype)


def input_quant(model: ir.Model, name: str) -> QuantParams | None:
    """The quantization a float model input gets from its QuantizeLinear consumer, if any."""
    for v in model.graph.inputs:
        if v.name != name:
            continue
        for c in v.consumers():
            if c.op_type == "QuantizeLinear":
                s, z = const_array(c.inputs[1]), const_array(c.inputs[2] if len(c.inputs) > 2 else None)
                dtype = str(z.dtype) if z is not None else "uint8"
                return QuantParams.from_arrays(s, z if z is not None else 0, dtype)
    return None
