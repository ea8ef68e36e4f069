"""Loading, copying and serializing models (onnx_ir is the in-memory graph format)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import onnx
import onnx_ir as ir

from qprobe.errors import ModelError


def load_model(path: str | Path) -> ir.Model:
    """Load an ONNX file (external data allowed) into onnx_ir, with a clear error if it is not one."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file {str(p)!r} does not exist; check the path")
    if p.is_dir():
        raise ModelError(f"{str(p)!r} is a directory; pass the .onnx file inside it")
    try:
        proto = onnx.load(str(p))
    except Exception as e:  # protobuf raises several unrelated types
        raise ModelError(
            f"{str(p)!r} is not a readable ONNX model ({type(e).__name__}: {e}); "
            "pass an .onnx file written by onnx.save or an exporter"
        ) from e
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{str(p)!r} holds no ONNX graph; pass an .onnx model file")
    try:
        model = ir.from_proto(proto)
    except Exception as e:
        raise ModelError(f"{str(p)!r} could not be read as an ONNX graph: {e}") from e
    return name_nodes(model)


def model_from_proto(proto: onnx.ModelProto) -> ir.Model:
    return name_nodes(ir.from_proto(proto))


def name_nodes(model: ir.Model) -> ir.Model:
    """Give every node of the main graph one stable, unique name (DESIGN rule 8), in place.

    An unnamed node becomes ``{op_type}_{index}`` (its index in graph order, Constant nodes
    included), and a name used by an earlier node gets ``__{k}`` appended, so two loads of
    the same file always give the same names and ``nodes.<name>`` overrides, localize and
    extract all mean the same node. Named, unique nodes keep their names.
    """
    used: set[str] = set()
    for i, node in enumerate(model.graph):
        name = node.name or f"{node.op_type}_{i}"
        base, k = name, 1
        while name in used:
            name, k = f"{base}__{k}", k + 1
        used.add(name)
        if name != node.name:
            node.name = name
    return model


def to_proto(model: ir.Model) -> onnx.ModelProto:
    return ir.to_proto(model)


# inside ``serialized_once``: (what, id(model)) -> (the model, its bytes or its weights' size)
_SERIALIZED: ContextVar[dict[tuple[str, int], tuple[ir.Model, object]] | None] = ContextVar(
    "qprobe_serialized", default=None)


@contextmanager
def serialized_once() -> Iterator[None]:
    """Within the block ``model_bytes`` serializes each model object once and hands back the same
    bytes after (or those given to ``remember_bytes``), and ``weight_bytes`` sums each model's
    weights once: a comparison opens two or four sessions on two models, and onnx_ir's
    serializer costs 5-15 ms a time on the example models. The models must not change inside
    the block. Nested blocks share the outer one's memo."""
    if _SERIALIZED.get() is not None:
        yield
        return
    token = _SERIALIZED.set({})
    try:
        yield
    finally:
        _SERIALIZED.reset(token)


def _memo(what: str, model: ir.Model) -> object | None:
    memo = _SERIALIZED.get()
    hit = None if memo is None else memo.get((what, id(model)))
    return hit[1] if hit is not None and hit[0] is model else None


def _remember(what: str, model: ir.Model, value: object) -> None:
    memo = _SERIALIZED.get()
    if memo is not None:
        memo[(what, id(model))] = (model, value)


def remember_bytes(model: ir.Model, data: bytes) -> None:
    """Inside ``serialized_once``: ``data`` is ``model``'s serialized form (nothing outside it)."""
    _remember("bytes", model, data)


def serializing_once() -> bool:
    return _SERIALIZED.get() is not None


def model_bytes(model: ir.Model) -> bytes:
    hit = _memo("bytes", model)
    if isinstance(hit, bytes):
        return hit
    data = to_proto(model).SerializeToString()
    remember_bytes(model, data)
    return data


def weight_bytes(model: ir.Model) -> int:
    """Bytes of the model's initializers (each model once inside ``serialized_once``: ~1 ms on the
    TCN, and every session a comparison opens asks)."""
    hit = _memo("weights", model)
    if isinstance(hit, int):
        return hit
    total = sum(int(v.const_value.nbytes) for v in model.graph.initializers.values() if v.const_value is not None)
    _remember("weights", model, total)
    return total


def clone_model(model: ir.Model) -> ir.Model:
    """A deep, independent copy (through the protobuf form, which is exact)."""
    return ir.from_proto(to_proto(model))


def model_hash(model: ir.Model) -> str:
    return hashlib.sha256(model_bytes(model)).hexdigest()


def save_model(model: ir.Model, path: str | Path) -> None:
    from qprobe.fileio import atomic_write_bytes

    atomic_write_bytes(Path(path), model_bytes(model))
