"""The one place that renders: JSON or human text on stdout, progress and errors on stderr.

Rich styling only on a terminal without NO_COLOR; plain aligned text when piped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def _styled(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and stream.isatty()


class StdoutClosed(Exception):
    """The reader of stdout went away (`supsup infer ... | head -1`). Not an OSError, which click
    would turn into exit 1 on its own."""


def _out(text: str, flush: bool = False) -> None:
    try:
        sys.stdout.write(text)
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed from None


def emit_json(obj: Any) -> None:
    _out(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n", flush=True)


def emit_line(text: str) -> None:
    _out(text + "\n")


def is_terminal() -> bool:
    """Whether stderr is a terminal (progress bars) rather than a log (plain progress lines)."""
    return sys.stderr.isatty()


def duration(seconds: float) -> str:
    """A time left as people read it: 40 s, 12 min, 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def emit_fields(fields: Sequence[tuple[str, Any]]) -> None:
    width = max((len(key) for key, _ in fields), default=0)
    for key, value in fields:
        _out(f"{key + ':':<{width + 1}} {value}\n")


def emit_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    if _styled(sys.stdout):
        table = Table(*columns, title=title)
        for row in cells:
            table.add_row(*row)
        Console(file=sys.stdout).print(table)
        return
    if title:
        _out(f"{title}\n")
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]
    for row in [list(columns), *cells]:
        _out("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def detach_closed_stdout() -> None:
    """After the reader of stdout went away: send what is still buffered nowhere, so that the exit
    flush neither fails nor prints "Exception ignored" on stderr."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def note(message: str) -> None:
    """A line of progress or advice for people, on stderr."""
    sys.stderr.write(message + "\n")


def error_line(message: str) -> None:
    sys.stderr.write(f"supsup: error: {message}\n")


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Any]:
    """A rich progress bar on a terminal; nothing at all when stderr is not one.

    Yields `update(completed, **fields)`; `fields` appear after the bar (loss, accuracy...).
    """
    if not is_terminal():
        yield lambda completed, **fields: None
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=Console(file=sys.stderr, no_color="NO_COLOR" in os.environ),
                  transient=True) as bar:
        task = bar.add_task(description, total=total, info="")

        def update(completed: int, **fields: Any) -> None:
            info = "  ".join(f"{key} {_cell(value)}" for key, value in fields.items())
            bar.update(task, completed=completed, info=info)

        yield update
