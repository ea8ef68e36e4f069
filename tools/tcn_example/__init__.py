"""The trainer of the bundled TCN example (source checkout only; not installed)."""
