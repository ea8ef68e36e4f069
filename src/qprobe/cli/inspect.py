"""``qprobe inspect MODEL``: the quantization view, op by op."""

from __future__ import annotations

from qprobe.cli.common import (
    ExampleOpt,
    ModelArg,
    WideOpt,
    console,
    default_reference,
    resolve_model,
    use_wide,
)
from qprobe.model.quant import build_quant_index
from qprobe.report.terminal import quant_index_table


def inspect(model: ModelArg = None, example: ExampleOpt = None, wide: WideOpt = False) -> None:
    """Print the ops in topological order with their quantized inputs and outputs, and the
    operand-to-output scale ratio of every Add, Sub, Mul and Concat."""
    use_wide(wide)
    m, name, _ = resolve_model(model, example)
    index = build_quant_index(m)
    console.print(f"[bold]{name}[/]: {len(index.ops)} compute ops, {len(index.tensors)} quantized tensors")
    console.print(quant_index_table(index))
    console.print("ratios >= 2 are highlighted: a coefficient that needs more than 1 integer bit "
                  "(see the motivating case, 0.099/0.049 = 2.02)")
    _, why = default_reference(m)
    if why:
        console.print(f"note: {why}", highlight=False)
