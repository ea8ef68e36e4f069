"""ST Edge AI files: val_io.npz, c_info.json, -vi inputs, and ST's X-cross metrics reproduced."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from targets_support import initializer, make_val_io, same_6_digits, st_oracle

from qprobe.backends.st import (
    StCInfo,
    fit_shape,
    is_val_io,
    read_c_info,
    read_val_io,
    st_xcross_metrics,
    write_validate_inputs,
)
from qprobe.errors import InputError
from qprobe.metrics import st_metrics
from qprobe.tensors import QuantParams

METRICS = ("rmse", "mae", "l2r", "mean", "std", "nse", "cos")


def test_val_io_keys_are_grouped_by_side_and_index(tmp_path: Path) -> None:
    p = tmp_path / "network_val_io.npz"
    a, b = np.zeros((2, 3), np.int8), np.ones((2, 1, 1, 3), np.int8)
    np.savez(p, m_inputs_1=a, c_inputs_1=a, m_outputs_1=a, m_outputs_2=a + 2, c_outputs_2=b + 2, c_outputs_1=b)
    v = read_val_io(p)
    assert v.num_samples == 2 and len(v.c_outputs) == 2
    assert v.c_outputs[1][0, 0, 0, 0] == 3 and v.m_outputs[1][0, 0] == 2
    assert v.side("m") == (v.m_inputs, v.m_outputs)
    assert is_val_io(["m_outputs_1"]) and not is_val_io(["x", "m_inputs_1"])
    np.savez(p, c_outputs_1=b, c_outputs_3=b)
    with pytest.raises(InputError, match=r"indices are \[1, 3\]; expected 1..2"):
        read_val_io(p)
    np.savez(p, x=a)
    with pytest.raises(InputError, match="no m_outputs_<i>/c_outputs_<i>"):
        read_val_io(p)


def test_c_info_validation_section_is_read(tmp_path: Path) -> None:
    doc = {
        "json_schema_version": "2.0",
        "environment": {"tools": [{"name": "ST.EdgeAI.Core", "version": "2.2.0", "arguments": "validate -m m.onnx"}]},
        "validation": {
            "device": "VALIDATION_TARGET",
            "val_error": 0.125,
            "val_error_desc": "x-cross (rmse) #1",
            "val_metrics": [
                {"acc": "n.a.", "cos": 0.5, "desc": "X-cross #1", "l2r": 0.25, "mae": 0.1, "mean": 0.05,
                 "nse": 0.75, "rmse": 0.125, "std": 0.2},
                {"acc": 0.9, "cos": 1.0, "desc": "X-cross #2", "l2r": 0.0, "mae": 0.0, "mean": 0.0,
                 "nse": 1.0, "rmse": 0.0, "std": 0.0, "ts_name": "y"},
            ],
        },
    }
    p = tmp_path / "network_c_info.json"
    p.write_text(json.dumps(doc))
    info = read_c_info(p)
    assert (info.val_error, info.val_error_desc, info.device) == (0.125, "x-cross (rmse) #1", "VALIDATION_TARGET")
    one, two = info.val_metrics
    assert one.acc is None and one.cos == 0.5 and one.output_index == 1 and one.mean == 0.05
    assert two.acc == 0.9 and two.ts_name == "y" and two.output_index == 2
    assert info.tool_version == "2.2.0"
    assert StCInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


def test_xcross_metrics_equal_st_formulas_to_6_digits(tmp_path: Path, model_path: Path) -> None:
    x = np.random.default_rng(3).uniform(0, 1, (10, 3, 8, 8)).astype(np.float32)
    v = read_val_io(make_val_io(model_path, x, tmp_path / "network_val_io.npz", bias=2, noise=1))
    s, z = float(initializer(model_path, "y_scale")), int(initializer(model_path, "y_zero_point"))
    (got,) = st_xcross_metrics(v, [QuantParams.from_arrays(s, z, "int8")])
    want = st_oracle(v.m_outputs[0], v.c_outputs[0], s, z)
    assert want["mean"] > 0  # a target biased low gives a positive ST mean
    for k in METRICS:
        assert same_6_digits(getattr(got, k), want[k]), (k, getattr(got, k), want[k])
    assert got.acc is None and got.n == 30


def test_int8_without_quantization_is_a_clear_error(tmp_path: Path, model_path: Path) -> None:
    x = np.random.default_rng(3).uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)
    v = read_val_io(make_val_io(model_path, x, tmp_path / "v_val_io.npz"))
    with pytest.raises(InputError, match="c_outputs_1 holds int8 codes but no scale/zero point"):
        st_xcross_metrics(v, [None])


@pytest.mark.parametrize(
    ("report", "s", "m_std", "codes"),
    [
        # ST Edge AI Core 2.2.0, N6 target, Magnus3327/stm32n6-edge-ai-benchmarks
        # Output/Output_Baseline/CubeMX xcubeai/Conv2d_1x1: 7 of 320 outputs one code higher on the board
        (dict(rmse=8.28111806185916e-05, mae=1.2247939594089985e-05, mean=-1.2247939594089985e-05,
              std=8.202870230888948e-05, nse=0.999987964169462), 0.0005599068244919181, 42.560833, [1] * 7),
        # .../Conv2d_32f_5x5: 3 outputs one code lower, 2 one code higher
        (dict(rmse=5.493127173394896e-05, mae=6.866408511996269e-06, mean=1.373281747873989e-06,
              std=5.500010593095794e-05, nse=0.9999049234962332), 0.0004394506977405399, 12.775446, [-1] * 3 + [1] * 2),
    ],
)
def test_reported_conventions_reproduce_real_st_reports(report: dict[str, float], s: float, m_std: float,
                                                        codes: list[int]) -> None:
    """The two runs' statistics (320 values, m std in codes, which values moved) give ST's numbers;
    the only gap left, < 2e-6 relative, is ST's float32 arithmetic on data we do not have."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=320)
    ref = (ref - ref.mean()) / ref.std() * m_std * s + 0.05  # exactly the reported std (ddof=0)
    pred = ref.copy()
    pred[: len(codes)] += np.asarray(codes) * s
    got = st_metrics(ref, pred)  # qprobe's ST metrics: ddof=1
    for k in ("rmse", "mae", "mean", "std"):
        assert math.isclose(getattr(got, k), report[k], rel_tol=5e-6), k
    assert abs(got.nse - report["nse"]) < 1e-9
    plain = st_metrics(ref, pred, ddof=0)  # as in ST's documentation snippet: does not match
    assert not math.isclose(plain.std, report["std"], rel_tol=1e-3)
    assert abs(plain.nse - report["nse"]) > 1e-8


def test_fit_shape_handles_unit_dims_and_channel_last() -> None:
    c = np.arange(2 * 32).reshape(2, 1, 1, 32)
    assert fit_shape(c, (1, 32)).shape == (2, 32)
    nhwc = np.arange(2 * 5 * 6 * 3).reshape(2, 5, 6, 3)
    got = fit_shape(nhwc, (1, 3, 5, 6))
    assert got.shape == (2, 3, 5, 6) and np.array_equal(got, nhwc.transpose(0, 3, 1, 2))
    square = np.arange(2 * 4 * 4 * 4).reshape(2, 4, 4, 4)
    assert np.array_equal(fit_shape(square, (1, 4, 4, 4)), square)  # ambiguous: unchanged...
    assert np.array_equal(fit_shape(square, (1, 4, 4, 4), layout="NHWC"), square.transpose(0, 3, 1, 2))
    assert fit_shape(np.zeros((3, 1, 7)), (None, 7)).shape == (3, 7)
    with pytest.raises(InputError, match=r"shape \(2, 33\) does not fit the model's \[1, 32\]"):
        fit_shape(np.zeros((2, 33)), (1, 32), what="c_outputs_1")
    with pytest.raises(InputError, match="unknown layout"):
        fit_shape(c, (1, 32), layout="CHWN")


def test_validate_inputs_are_written_as_st_reads_them(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 2, 2)).astype(np.float32)
    k = np.arange(8, dtype=np.int8).reshape(4, 2)
    files = write_validate_inputs({"x": x, "k": k}, tmp_path / "vi.npz", csv=True)
    assert [f.name for f in files] == ["vi.npz", "vi_1.csv", "vi_2.csv"]
    with np.load(files[0]) as z:
        assert sorted(z.files) == ["m_inputs_1", "m_inputs_2"]
        assert np.array_equal(z["m_inputs_1"], x) and z["m_inputs_2"].dtype == np.int8
    rows = files[1].read_text().splitlines()
    assert len(rows) == 4 and np.allclose(np.array(rows[0].split(","), float), x[0].reshape(-1))
    assert files[2].read_text().splitlines()[:2] == ["# dtype=int8", "0,1"]
