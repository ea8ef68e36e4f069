"""``python -m qprobe``."""

from qprobe.cli.entry import main

if __name__ == "__main__":  # Dask worker processes (spawn) import this module again
    main()
