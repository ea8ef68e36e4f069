"""Pure metric functions of (reference, target, quantization parameters)."""

from qprobe.metrics.lsb import LsbAccumulator, LsbMetrics
from qprobe.metrics.st import StAccumulator, StMetrics, looks_like_probabilities, st_metrics

__all__ = [
    "LsbAccumulator",
    "LsbMetrics",
    "StAccumulator",
    "StMetrics",
    "looks_like_probabilities",
    "st_metrics",
]
