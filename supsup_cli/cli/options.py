"""Options that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from supsup_cli.data.transforms import TaskData
from supsup_cli.errors import InvalidArgument

Json = Annotated[bool, typer.Option("--json", help="Print one JSON object (per input, for infer) on stdout.")]
ArchivePath = Annotated[Path, typer.Argument(help="The .supsup archive.", show_default=False)]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]

Dataset = Annotated[str, typer.Option("--data", help="Dataset: mnist (shipped), fashion-mnist, kmnist (downloaded).")]
Permute = Annotated[int | None, typer.Option("--permute", min=0, max=2**64 - 1, metavar="SEED",
                                             help="Permute pixels by the permutation of SEED.")]
Rotate = Annotated[float | None, typer.Option("--rotate", metavar="DEGREES", help="Rotate images counterclockwise.")]
Classes = Annotated[str | None, typer.Option("--classes", metavar="C0,C1,...", help="Keep only these classes.")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Dataset cache (default $SUPSUP_DATA or ~/.cache/supsup).")]


def task_data(dataset: str, permute: int | None, rotate: float | None, classes: str | None) -> TaskData:
    return TaskData(dataset, permute=permute, rotate=rotate, classes=parse_classes(classes))


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidArgument(f"--classes takes comma-separated integers, got {text!r}") from None
