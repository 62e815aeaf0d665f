"""The `supsup` command: the Typer app, and the one place where errors become exit codes."""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import traceback
from typing import Annotated

import typer

from supsup_cli import __version__
from supsup_cli.cli import (archive_commands, benchmark_commands, exit_codes, infer_commands, interrupts,
                            learn_commands, output)
from supsup_cli.core.errors import ArchiveNotFound, DiskFull, SupsupError

# Typer 0.2x vendors click as typer._click; older releases depend on click itself.
click = getattr(typer, "_click", None) or __import__("click")

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def as_flags(message: str) -> str:
    """The library names a parameter as Python does (`batch_size`); the command line, as its flag
    (--batch-size). Every parameter's flag is its name so spelled: one rule, no table to keep."""
    return _PARAMETER.sub(lambda found: "--" + found.group(1).replace("_", "-"), message)


def _plain_argument_names() -> None:
    """Help names arguments as ARCHIVE and INPUTS..., not {ARCHIVE} <path> or <list[Path]>: Python
    types mean nothing to a shell user, and each argument's help says what it takes. (Typer 0.2x
    draws its own argument names; older releases leave this to click, which already does.)"""
    argument = getattr(typer.core, "TyperArgument", None)
    if argument is None or not hasattr(argument, "_usage_display_name"):
        return
    argument.display_type_rich = lambda self, ctx: None
    argument._usage_display_name = lambda self: (self.display_name_raw if self.required
                                                 else f"[{self.display_name_raw}]")


_plain_argument_names()

app = typer.Typer(
    name="supsup",
    help="Learn thousands of tasks in sequence without forgetting (Supermasks in Superposition).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"supsup {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Learn thousands of tasks in sequence without forgetting (Supermasks in Superposition)."""


def _examples_kept(command):
    """Help shows each "Example:" line as written, one per line, so that it can be copied: click
    rewraps every paragraph but one that starts with a \\b line."""
    lines = (command.__doc__ or "").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip().startswith("Example:")), None)
    if first is not None:
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines.insert(first, indent + "\b")
        command.__doc__ = "\n".join(lines)
    return command


app.command("init")(_examples_kept(archive_commands.init))
app.command("inspect")(_examples_kept(archive_commands.inspect))
app.command("size")(_examples_kept(archive_commands.size))
app.command("hopfield-store")(_examples_kept(archive_commands.hopfield_store))
app.command("merge")(_examples_kept(archive_commands.merge))
app.command("export")(_examples_kept(archive_commands.export))
app.command("learn-task")(_examples_kept(learn_commands.learn))
app.command("infer")(_examples_kept(infer_commands.infer))
app.command("benchmark")(_examples_kept(benchmark_commands.benchmark))
data_app = typer.Typer(help="Datasets and task data.", no_args_is_help=True)
data_app.command("export")(_examples_kept(learn_commands.export))
app.add_typer(data_app, name="data")


@functools.cache
def _command() -> click.Command:
    """The click command, built once per process: Typer reads every command's annotations to build
    it (about 0.1 s here), which a process that runs many command lines would otherwise repeat."""
    return typer.main.get_command(app)


def run(argv: list[str]) -> int:
    """Run one command line; every failure becomes one line on stderr and an exit code."""
    command = _command()
    try:
        with interrupts.watching():
            result = command.main(args=argv, prog_name="supsup", standalone_mode=False)
        if result == exit_codes.INTERRUPTED:  # Typer turns Ctrl-C into a silent exit code 130
            raise KeyboardInterrupt
        return result if isinstance(result, int) else exit_codes.OK
    except SupsupError as error:
        output.error_line(_one_line(as_flags(str(error))))
        return exit_codes.for_error(error)
    except click.exceptions.ClickException as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(error.ctx.get_help() + "\n")
            return exit_codes.OK
        output.error_line(_one_line(error.format_message()) + _usage_hint(error))
        return exit_codes.USAGE
    except (BrokenPipeError, output.StdoutClosed):  # the reader went away (`supsup infer ... | head -1`): the shell's convention
        output.detach_closed_stdout()
        return exit_codes.CLOSED_PIPE
    except (KeyboardInterrupt, typer.Abort):
        output.error_line("interrupted (a task is committed only once its result is printed)")
        return exit_codes.INTERRUPTED
    except OSError as error:
        message = _one_line(f"{error.filename + ': ' if error.filename else ''}{error.strerror or error}")
        output.error_line(message)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return exit_codes.for_error(DiskFull(message))
        if isinstance(error, (FileNotFoundError, PermissionError)):
            return exit_codes.for_error(ArchiveNotFound(message))
        return exit_codes.INTERNAL
    except Exception as error:  # a bug: still one line, with the traceback on request
        if os.environ.get("SUPSUP_DEBUG"):
            traceback.print_exc()
        output.error_line(_one_line(f"internal error: {type(error).__name__}: {error}")
                          + " (set SUPSUP_DEBUG=1 for a traceback)")
        return exit_codes.INTERNAL


def _usage_hint(error: Exception) -> str:
    ctx = getattr(error, "ctx", None)
    return f" (see '{ctx.command_path} --help')" if ctx is not None else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
