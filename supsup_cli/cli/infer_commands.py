"""infer: the task and class of each input image, with or without the task given."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from supsup_cli.core import choices
from supsup_cli.core.choices import listed
from supsup_cli.cli import exit_codes, output
from supsup_cli.cli.options import ArchivePath, Device, UserModule, json_flag
from supsup_cli.cli.user_code import load_module

_Json = json_flag("one object per input, one per line")


def infer(
    path: ArchivePath,
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUTS...", help="PNG/JPEG files, folders of them, or "
                                                                          ".npy arrays (N x H x W).",
                                                 show_default=False)],
    task: Annotated[str | None, typer.Option("--task", help="Task index or name: use its mask, no inference.")] = None,
    method: Annotated[str, typer.Option("--method", help=f"{listed(choices.METHODS)}.")] = "one-shot",
    objective: Annotated[str, typer.Option(
        "--objective", help=f"{listed(choices.OBJECTIVES)} (entropy: H; g: superfluous neurons).")] = "entropy",
    same_task: Annotated[bool, typer.Option("--same-task", help="Infer one task for all inputs together.")] = False,
    resize: Annotated[bool, typer.Option("--resize", help="Resize images to the network's input size.")] = False,
    hopfield: Annotated[bool, typer.Option(
        "--hopfield", help="Recover one mask for all inputs from the Hopfield reservoir (HopSupSup).")] = False,
    hopfield_steps: Annotated[int | None, typer.Option(
        "--hopfield-steps", min=1, help="Recovery steps over batches of 64 inputs (default 100; the paper: about 30).")] = None,
    device: Device = "auto",
    module: UserModule = None,
    json_: _Json = False,
) -> int:
    """Find each input's task by superposition of all masks (or use --task), then classify it.

    Each input is inferred on its own unless --same-task; all of them in one vectorized pass.
    With --hopfield (archives with a reservoir), one mask is recovered from all inputs by gradient
    descent on the Hopfield energy plus the output entropy, and the closest stored task is named.
    Exit code 0 when every input was read; otherwise the code of the first bad input.

    Example: supsup infer model.supsup imgs/ --json
    """
    from supsup_cli.api.model import Model

    prediction = Model(path, module=load_module(module), device=device).infer_files(
        inputs, resize=resize, task=task, method=method, objective=objective, same_task=same_task,
        hopfield=hopfield, hopfield_steps=hopfield_steps)
    for message in prediction.notes:
        output.note(f"supsup: note: {message}")
    for result in prediction.results:
        result["confidence"] = round(result["confidence"], 6)
    if json_:
        for result in prediction.results:
            output.emit_json(result)
    elif prediction.results:
        columns = ["input", "task", "task_name", "class", "confidence"] + (["hamming"] if hopfield else [])
        output.emit_table(columns, [[r[k] for k in columns] for r in prediction.results])
    for _, error in prediction.failures:
        output.error_line(str(error))
    return exit_codes.for_error(prediction.failures[0][1]) if prediction.failures else exit_codes.OK
