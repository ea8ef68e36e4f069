"""qprobe: find, explain and work around numerical defects of int8 quantized networks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
