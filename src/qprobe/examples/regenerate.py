"""Rebuild the packaged copy of the TCN example: ``python -m qprobe.examples.regenerate``.

Run it after changing :mod:`qprobe.examples.tcn`, :mod:`qprobe.examples.tcn_graph` or :mod:`qprobe.examples.gas_signal`, and
commit the files it writes (the default seed, ``PACKAGED_INPUTS`` validation windows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qprobe.examples.tcn import FILES, PACKAGED_INPUTS, build_tcn_example, packaged_example_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qprobe.examples.regenerate", description=__doc__)
    parser.add_argument("--out", type=Path, default=packaged_example_dir(), help="target directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    example = build_tcn_example(out, seed=0, n_inputs=PACKAGED_INPUTS)
    print(example.summary())
    sizes = {name: (out / name).stat().st_size for name in FILES.values()}
    for name, size in sizes.items():
        print(f"  {name:22s} {size / 1024:8.1f} KiB")
    print(f"  {'total':22s} {sum(sizes.values()) / 1024:8.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
