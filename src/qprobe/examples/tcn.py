"""The bundled example, as shipped: an int8 QDQ TCN forecasting ln(gas concentration), like the
motivating case (its ``block0_add`` has operand/output scale ratios of about 2.05 and 1.06).

The installed package holds the pre-built files (``data/``) and this small loader; the trainer
that builds them (synthetic gas data, a numpy training loop, block-0 tuning through the weights,
onnxruntime's quantizer) lives in the source checkout under ``tools/tcn_example`` and is run with
``python tools/regenerate_example.py``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qprobe.errors import QprobeError

__all__ = ["FILES", "PACKAGED_INPUTS", "AddScales", "RegressionMetrics", "TcnExample", "copy_example",
           "packaged_example_dir"]

PACKAGED_INPUTS = 64  # validation windows in the shipped copy (keeps it small)
FILES = {
    "int8_model": "tcn_int8.onnx", "float_model": "tcn_float.onnx", "inputs": "tcn_inputs.npz",
    "calibration": "tcn_calibration.npz", "truth": "tcn_truth.npz", "golden": "tcn_golden.npz",
    "metadata": "tcn_example.json",
}


@dataclass(frozen=True)
class AddScales:
    """Quantization scales around one Add: ``ratios[i] = operand_scales[i] / output_scale``."""

    node: str
    operand_scales: tuple[float, float]
    output_scale: float

    @property
    def ratios(self) -> tuple[float, float]:
        return (self.operand_scales[0] / self.output_scale, self.operand_scales[1] / self.output_scale)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": list(self.ratios)}


@dataclass(frozen=True)
class RegressionMetrics:
    """Accuracy of a forecast of ``ln(ppm)`` against the truth."""

    rmse: float
    mae: float
    r2: float

    def to_dict(self) -> dict[str, float]:
        return {"rmse": self.rmse, "mae": self.mae, "r2": self.r2}


@dataclass(frozen=True)
class TcnExample:
    """What the example build wrote (``paths`` by FILES key) and measured."""

    out_dir: Path
    seed: int
    paths: dict[str, Path]
    n_inputs: int
    n_validation: int
    float_metrics: RegressionMetrics
    int8_metrics: RegressionMetrics
    persistence_metrics: RegressionMetrics
    block0: AddScales

    @property
    def int8_model_path(self) -> Path:
        return self.paths["int8_model"]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "n_inputs": self.n_inputs, "n_validation": self.n_validation,
                "metrics": {"float": self.float_metrics.to_dict(), "int8": self.int8_metrics.to_dict(),
                            "persistence": self.persistence_metrics.to_dict()},
                "block0_add": self.block0.to_dict()}

    @classmethod
    def load(cls, directory: Path) -> TcnExample:
        """The example written in ``directory`` (its numbers come from tcn_example.json)."""
        try:
            d = json.loads((Path(directory) / FILES["metadata"]).read_text())
            m, b = {k: RegressionMetrics(**v) for k, v in d["metrics"].items()}, d["block0_add"]
            block0 = AddScales(b["node"], (b["operand_scales"][0], b["operand_scales"][1]), b["output_scale"])
            return cls(Path(directory), d["seed"], {k: Path(directory) / v for k, v in FILES.items()}, d["n_inputs"],
                       d["n_validation"], m["float"], m["int8"], m["persistence"], block0)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise QprobeError(f"{directory} holds no readable TCN example ({e}); copy it with `qprobe example tcn -o "
                              f"DIR`") from e

    def summary(self) -> str:
        f, i, p, b = self.float_metrics, self.int8_metrics, self.persistence_metrics, self.block0
        return (
            f"TCN example (seed {self.seed}) in {self.out_dir}\n"
            f"  RMSE / R2 of ln(ppm) on {self.n_validation} validation windows: float {f.rmse:.4f} / {f.r2:.4f}, "
            f"int8 {i.rmse:.4f} / {i.r2:.4f}, persistence {p.rmse:.4f} / {p.r2:.4f}\n"
            f"  block0_add scales {b.operand_scales[0]:.5f}, {b.operand_scales[1]:.5f} -> {b.output_scale:.5f}: "
            f"ratios {b.ratios[0]:.3f}, {b.ratios[1]:.3f}"
        )


def packaged_example_dir() -> Path:
    """The pre-built copy shipped with qprobe (seed 0, PACKAGED_INPUTS validation windows)."""
    return Path(__file__).resolve().parent / "data"


def copy_example(out_dir: Path) -> TcnExample:
    """Copy the shipped example's files into the existing folder ``out_dir`` and load it from there."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise QprobeError(f"{out_dir} is not a directory; create it first")
    for name in FILES.values():
        shutil.copyfile(packaged_example_dir() / name, out_dir / name)
    return TcnExample.load(out_dir)
