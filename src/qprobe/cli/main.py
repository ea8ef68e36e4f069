"""The ``qprobe`` command: subcommands are registered here, in one listed place.

``run(argv)`` returns the exit code: a ``QprobeError`` (a user error) or a bad option prints one
line on stderr and gives 2; Ctrl-C propagates as ``KeyboardInterrupt`` to ``cli.entry``, which
reports it (exit 130); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import typer
from rich.markup import escape

from qprobe import __version__
from qprobe.cli import compare as compare_cmd
from qprobe.cli import diagnose as diagnose_cmd
from qprobe.cli import example as example_cmd
from qprobe.cli import explain as explain_cmd
from qprobe.cli import extract as extract_cmd
from qprobe.cli import fix as fix_cmd
from qprobe.cli import inspect as inspect_cmd
from qprobe.cli import localize as localize_cmd
from qprobe.cli import profiles as profiles_cmd
from qprobe.cli import report as report_cmd
from qprobe.cli import stedgeai as stedgeai_cmd
from qprobe.cli.common import err_console, natural_width
from qprobe.cli.entry import EXIT_INTERRUPTED
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
app.command("fix")(fix_cmd.fix)
app.command("diagnose")(diagnose_cmd.diagnose)
app.command("report")(report_cmd.report)
app.command(
    "stedgeai-run", add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
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


def run(argv: list[str]) -> int:
    """Run the CLI on ``argv``; the exit code (0 ok, 1 a failing verdict, 2 a user error)."""
    try:
        result = app(args=argv, standalone_mode=False)
    except QprobeError as e:
        # escaped: a message such as "pip install 'qprobe[openvino]'" is text, not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except typer.Abort as e:  # click turns Ctrl-C inside a prompt into Abort
        raise KeyboardInterrupt from e
    except typer.TyperException as e:  # bad options and arguments: one line, no traceback
        return _usage_error(e)
    finally:
        natural_width()
    if result == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into Exit(130)
        raise KeyboardInterrupt
    return result if isinstance(result, int) else 0


def _usage_error(e: Exception) -> int:
    code = int(getattr(e, "exit_code", 2))
    ctx = getattr(e, "ctx", None)
    fmt = getattr(e, "format_message", None)
    if fmt is None or type(e).__name__ == "NoArgsIsHelpError":
        show = getattr(e, "show", None)
        if show is not None:
            show()  # no arguments at all: the help text
        return code
    where = f" (`{ctx.command_path} --help` lists the options)" if ctx is not None else ""
    err_console.print(f"[bold red]error:[/] {fmt()}{where}", highlight=False, soft_wrap=True)
    return code


def main() -> None:
    from qprobe.cli.entry import main as entry

    entry()


if __name__ == "__main__":
    main()
