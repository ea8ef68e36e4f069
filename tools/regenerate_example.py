"""Rebuild the TCN example from scratch: ``python tools/regenerate_example.py [--out DIR] [--seed N]``.

Without ``--out`` it rewrites the packaged copy (src/qprobe/examples/data): run it after changing
anything under tools/tcn_example and commit the files it writes (seed 0, ``PACKAGED_INPUTS``
validation windows). Training takes 1-2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qprobe.examples.tcn import FILES, PACKAGED_INPUTS, packaged_example_dir

from tcn_example.build import build_tcn_example


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/regenerate_example.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=packaged_example_dir(), help="target directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the weights")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    example = build_tcn_example(out, seed=args.seed, n_inputs=PACKAGED_INPUTS)
    print(example.summary())
    sizes = {name: (out / name).stat().st_size for name in FILES.values()}
    for name, size in sizes.items():
        print(f"  {name:22s} {size / 1024:8.1f} KiB")
    print(f"  {'total':22s} {sum(sizes.values()) / 1024:8.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
