"""``python -m qprobe``."""

from qprobe.cli.main import main

main()
