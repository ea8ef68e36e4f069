"""Profiles are data: built-ins, overrides (CLI key syntax), TOML files, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from qprobe.backends.engine import get_profile
from qprobe.backends.engine.builtin_profiles import known_profiles
from qprobe.backends.engine.profiles import OP_CLASSES, Numerics, load_profile_file
from qprobe.errors import ProfileError


def test_builtins_exist_and_arith16_says_it_is_a_hypothesis() -> None:
    assert set(known_profiles()) >= {"onnxruntime", "exact", "tflite", "tflite-single-rounding", "arith16-wrap"}
    for name in known_profiles():
        p = get_profile(name)
        assert set(p.classes) == set(OP_CLASSES) and p.description
    assert "HYPOTHESIS" in get_profile("arith16-wrap").description
    eltwise = get_profile("arith16-wrap").classes["eltwise"]
    assert (eltwise.structure, eltwise.coeff_bits, eltwise.shift_o,
            eltwise.coeff_overflow) == ("affine", 16, 14, "wrap")


def test_override_keys_resolve_by_class_op_and_node() -> None:
    p = get_profile("exact").with_overrides({
        "rounding": "half_up",
        "conv.scale": "double",
        "ops.Sub.compute": "float",
        "nodes.block0_add.eltwise.structure": "affine",
        "nodes.my.dotted.node.coeff_bits": "12",
    })
    assert p.numerics_for("conv", "Conv", "c").scale == "double"
    assert p.numerics_for("mul", "Mul", "m").rounding == "half_up"
    assert p.numerics_for("eltwise", "Sub", "s").compute == "float"
    assert p.numerics_for("eltwise", "Add", "block0_add").structure == "affine"
    assert p.numerics_for("conv", "Conv", "block0_add").structure == "rescale_each"  # class-qualified
    assert p.numerics_for("eltwise", "Add", "my.dotted.node").coeff_bits == 12


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("conv.roundng", "half_up", "did you mean 'rounding'"),
    ("rounding", "banker", "allowed: half_even"),
    ("nosuchclass.rounding", "half_up", "classes: conv"),
    ("conv.multiplier_bits", "many", "needs an integer"),
    ("conv.scale", "double", None),
])
def test_bad_overrides_name_what_is_known(key: str, value: str, needle: str | None) -> None:
    if needle is None:
        get_profile("exact").with_overrides({key: value})
        return
    with pytest.raises(ProfileError, match=needle):
        get_profile("exact").with_overrides({key: value})


def test_tflite_double_needs_a_31_bit_fixed_multiplier() -> None:
    with pytest.raises(ProfileError, match="tflite_double"):
        Numerics(scale="double", rounding="tflite_double")


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="onnxruntime, exact"):
        get_profile("onnxruntme")


def test_toml_profile_with_base_classes_ops_and_nodes(tmp_path: Path) -> None:
    path = tmp_path / "npu.toml"
    path.write_text(
        'name = "my-npu"\ndescription = "test"\nbase = "onnxruntime"\n'
        '[defaults]\nrounding = "half_up"\n'
        '[eltwise]\nstructure = "affine"\ncoeff_bits = 12\n'
        '[ops.Sub]\ncompute = "integer"\n'
        '[nodes."a.b"]\nshift_o = 10\n'
        '[nodes.c.eltwise]\ncoeff_overflow = "wrap"\n'
    )
    p = load_profile_file(path)
    assert p.name == "my-npu"
    assert p.classes["conv"].rounding == "half_up" and p.classes["conv"].scale == "float32"
    assert p.numerics_for("eltwise", "Sub", "x").compute == "integer"
    assert p.numerics_for("eltwise", "Add", "a.b").shift_o == 10
    assert p.numerics_for("eltwise", "Add", "c").coeff_overflow == "wrap"
    assert p.numerics_for("conv", "Conv", "c").coeff_overflow == "saturate"
    assert get_profile(str(path)).name == "my-npu"


def test_bad_toml_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[conv\nrounding = 1")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile_file(path)
    path.write_text("[convv]\nrounding = 'half_up'")
    with pytest.raises(ProfileError, match="unknown table"):
        load_profile_file(path)


def test_to_dict_round_trips() -> None:
    from qprobe.backends.engine.profiles import profile_from_dict

    p = get_profile("arith16-wrap").with_overrides({"nodes.n1.eltwise.coeff_bits": "12", "ops.Mul.rounding": "floor"})
    q = profile_from_dict(p.to_dict())
    assert q.classes == p.classes and q.ops == p.ops and q.nodes == p.nodes
