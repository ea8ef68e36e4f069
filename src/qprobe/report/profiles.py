"""Terminal renderers of the engine's numerics profiles and knobs (they compute nothing)."""

from __future__ import annotations

import dataclasses

from rich import box
from rich.table import Table

from qprobe.backends.engine import KNOBS, OP_CLASSES, Profile, get_profile, known_profiles


def profiles_table() -> Table:
    t = Table(title="built-in numerics profiles (engine:NAME); a .toml path works too", title_justify="left")
    t.add_column("profile", style="bold")
    t.add_column("what it computes")
    for name in known_profiles():
        t.add_row(name, get_profile(name).description)
    return t


def knobs_table() -> Table:
    t = Table(title="knobs (--set KNOB=V, CLASS.KNOB=V, ops.OP.KNOB=V, nodes.NODE.KNOB=V); "
              f"classes: {', '.join(OP_CLASSES)}", title_justify="left")
    t.add_column("knob", style="bold")
    t.add_column("values")
    t.add_column("meaning")
    for knob, (values, text) in KNOBS.items():
        t.add_row(knob, " | ".join(values) if values else "integer >= 0", text)
    return t


def profile_table(profile: Profile) -> Table:
    """One profile's resolved knob values, one column per op class."""
    t = Table(title=f"{profile.name}: {profile.description}", title_justify="left", box=box.SIMPLE_HEAD,
              padding=(0, 1, 0, 0), show_edge=False)
    t.add_column("knob", style="bold", no_wrap=True)  # names never cut short: values fold instead
    classes = list(profile.classes)
    for c in classes:
        t.add_column(c, overflow="fold")
    values = {c: dataclasses.asdict(n) for c, n in profile.classes.items()}
    for knob in KNOBS:
        if any(knob in values[c] for c in classes):
            t.add_row(knob, *[str(values[c].get(knob, "")) for c in classes])
    return t


def overrides_lines(profile: Profile) -> list[str]:
    lines = [f"ops.{op}: " + ", ".join(f"{k}={v}" for k, v in kv.items()) for op, kv in profile.ops.items()]
    lines += [f"nodes.{n}: " + ", ".join(f"{k}={v}" for k, v in kv.items()) for n, kv in profile.nodes.items()]
    return lines
