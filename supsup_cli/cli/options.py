"""Options that several commands share, declared once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from supsup_cli.core.choices import listed
from supsup_cli.data.datasets import DATASETS
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument

def json_flag(prints: str) -> Any:
    """The --json option of a command, saying what it prints."""
    return Annotated[bool, typer.Option("--json", help=f"Print {prints} as JSON on stdout, instead of text.")]

ArchivePath = Annotated[Path, typer.Argument(metavar="ARCHIVE", help="The .supsup archive.", show_default=False)]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
UserModule = Annotated[str | None, typer.Option(
    "--module", metavar="MODULE:FACTORY",
    help="Your own network: pkg.module:factory or path/to/file.py:factory, a function returning a "
         "torch.nn.Module. Archives over a module need it at every use; an archive never names code.")]

Dataset = Annotated[str, typer.Option(
    "--data", metavar="DATASET",
    help=f"{listed(tuple(DATASETS))}, or folder:PATH, your images as PATH/train/<class>/*.png and "
         "PATH/test/<class>/*.png (mnist ships with supsup; the others download on first use).")]
Permute = Annotated[str | None, typer.Option(
    "--permute", metavar="SEEDS", help="Permute pixels by the permutation of SEED; learn-task takes several: "
                                       "1-250 (a range), 3,8,21 (a list), or both: 1-5,9.")]
Rotate = Annotated[str | None, typer.Option(
    "--rotate", metavar="DEGREES", help="Rotate images counterclockwise; learn-task takes several: 0,10,20 or "
                                        "0-350/10 (from 0 to 350 in steps of 10).")]
Classes = Annotated[str | None, typer.Option("--classes", metavar="C0,C1,...", help="Keep only these classes.")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Dataset cache (default $SUPSUP_DATA or ~/.cache/supsup).")]
Resample = Annotated[str, typer.Option(
    "--resample", help="How --rotate samples pixels: bilinear, or nearest (the paper's RotatedMNIST).")]


MAX_TASKS_PER_CALL = 100_000


def task_datas(dataset: str, permute: str | None, rotate: str | None, classes: str | None,
               resample: str = "bilinear") -> list[TaskData]:
    """The tasks that --permute and --rotate name (several for a list or a range)."""
    if permute is not None and rotate is not None:
        raise InvalidArgument("--permute and --rotate conflict: a task has one pixel transform")
    kept = parse_classes(classes)
    if permute is not None:
        return [TaskData(dataset, permute=seed, classes=kept, resample=resample) for seed in parse_seeds(permute)]
    if rotate is not None:
        return [TaskData(dataset, rotate=degrees, classes=kept, resample=resample) for degrees in parse_degrees(rotate)]
    return [TaskData(dataset, classes=kept, resample=resample)]


def task_data(dataset: str, permute: str | None, rotate: str | None, classes: str | None,
              resample: str = "bilinear") -> TaskData:
    """The one task that --permute and --rotate name."""
    datas = task_datas(dataset, permute, rotate, classes, resample)
    if len(datas) > 1:
        raise InvalidArgument(f"--permute/--rotate name {len(datas)} tasks; this command takes one")
    return datas[0]


def parse_seeds(text: str) -> list[int]:
    """`3`, `1-250` (inclusive), `3,8,21`, or a mix of them, as permutation seeds in [0, 2**64)."""
    seeds: list[int] = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
        if match is None:
            raise InvalidArgument(f"--permute takes seeds like 7, 1-250 or 3,8,21; got {text!r}")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first or last >= 2**64:
            raise InvalidArgument(f"--permute: {item.strip()!r} is not a range of seeds in [0, 2**64)")
        _check_count(len(seeds) + last - first + 1, "--permute")
        seeds.extend(range(first, last + 1))
    return seeds


def parse_degrees(text: str) -> list[float]:
    """`10`, `0,10,20`, or `0-350/10` (both ends included), as rotation angles in degrees."""
    angles: list[float] = []
    number = r"\s*(-?\d+(?:\.\d*)?)\s*"
    for item in text.split(","):
        single = re.fullmatch(number, item)
        ranged = re.fullmatch(f"{number}-{number}/{number}", item)
        if single is not None:
            angles.append(float(single[1]))
        elif ranged is not None and float(ranged[3]) > 0 and float(ranged[2]) >= float(ranged[1]):
            first, last, step = (float(g) for g in ranged.groups())
            count = int((last - first) / step + 1e-9) + 1
            _check_count(len(angles) + count, "--rotate")
            angles.extend(first + i * step for i in range(count))
        else:
            raise InvalidArgument(f"--rotate takes degrees like 10, 0,10,20 or 0-350/10; got {text!r}")
        _check_count(len(angles), "--rotate")
    return angles


def _check_count(count: int, flag: str) -> None:
    if count > MAX_TASKS_PER_CALL:
        raise InvalidArgument(f"{flag} names more than {MAX_TASKS_PER_CALL:,} tasks")


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidArgument(f"--classes takes comma-separated integers, got {text!r}") from None


def refuse_given(ctx: typer.Context, names: Sequence[str], where: str) -> None:
    """Exit 2 if any of these options was given on the command line where it would have no effect:
    a flag that is silently dropped is worse than one refused. `where` names the other flag."""
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            raise InvalidArgument(f"--{name.replace('_', '-')} has no effect {where}")
