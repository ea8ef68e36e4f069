"""The ``qprobe`` command: subcommands are registered here, in one listed place.

A ``QprobeError`` (a user error) prints one line on stderr and exits with code 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from qprobe import __version__
from qprobe.cli import compare as compare_cmd
from qprobe.cli import example as example_cmd
from qprobe.cli import explain as explain_cmd
from qprobe.cli import extract as extract_cmd
from qprobe.cli import inspect as inspect_cmd
from qprobe.cli import localize as localize_cmd
from qprobe.cli import profiles as profiles_cmd
from qprobe.cli import stedgeai as stedgeai_cmd
from qprobe.cli.common import err_console
from qprobe.errors import QprobeError

app = typer.Typer(
    name="qprobe",
    help="Find, explain and work around numerical defects of int8 quantized networks on NPUs and MCUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("inspect")(inspect_cmd.inspect)
app.command("compare")(compare_cmd.compare)
app.command("example")(example_cmd.example)
app.command("profiles")(profiles_cmd.profiles)
app.command("localize")(localize_cmd.localize)
app.command("extract")(extract_cmd.extract)
app.command("explain")(explain_cmd.explain)
app.command(
    "stedgeai-run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)(stedgeai_cmd.stedgeai_run)


def _version(value: bool) -> None:
    if value:
        print(f"qprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """qprobe: compare, localize, extract, explain, emulate."""


def main() -> None:
    try:
        app()
    except QprobeError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
