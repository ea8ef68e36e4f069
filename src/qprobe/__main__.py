"""``python -m qprobe``."""

from qprobe.cli.entry import main

main()
