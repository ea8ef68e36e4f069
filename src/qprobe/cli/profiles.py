"""``qprobe profiles [NAME] [--set K=V]``: the engine's numerics profiles and knobs."""

from __future__ import annotations

from typing import Annotated

import typer

from qprobe.backends.engine import get_profile
from qprobe.cli.common import console, parse_kv
from qprobe.errors import InputError
from qprobe.report.profiles import knobs_table, overrides_lines, profile_table, profiles_table

NameArg = Annotated[str | None, typer.Argument(help="A built-in profile name or a .toml file; omit to list them.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set",
                                                  help="KNOB=VALUE override to apply before showing (repeatable).")]


def profiles(
    name: NameArg = None,
    set_: SetOpt = None,
) -> None:
    """List the numerics profiles and knobs, or show one profile's knob values per op class."""
    if name is None and set_:
        raise InputError("--set overrides a profile's knobs: name the profile, e.g. qprobe profiles arith16-wrap "
                         f"--set {set_[0]}")
    if name is None:
        console.print(profiles_table())
        console.print(knobs_table())
        return
    profile = get_profile(name)
    if set_:
        profile = profile.with_overrides(parse_kv(set_, "--set"))
    console.print(profile_table(profile))
    for line in overrides_lines(profile):
        console.print(line, highlight=False)
