"""learn-task and data export.

Engine modules that import torch are imported inside the commands that need them, so that
`supsup inspect`, `--help` and friends start in a fraction of a second in shell pipelines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from supsup_cli.cli import interrupts, output
from supsup_cli.cli.options import (ArchivePath, Classes, DataDir, Dataset, Device, Json, Permute, Rotate,
                                    task_data)
from supsup_cli.data.images import export_examples
from supsup_cli.data.tasks import load_task


def learn(
    path: ArchivePath,
    data: Dataset = "mnist",
    permute: Permute = None,
    rotate: Rotate = None,
    classes: Classes = None,
    name: Annotated[str | None, typer.Option("--name", help="Task name (default: from the data spec).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Training batches.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="Learning rate of the scores (default: 1e-4 for rmsprop, 0.1 for the Hopfield arch).")] = None,
    optimizer: Annotated[str | None, typer.Option(
        "--optimizer", help="rmsprop, adam or sgd (momentum 0.9, weight decay 1e-4); default: the paper's "
                            "for the architecture.")] = None,
    density: Annotated[float | None, typer.Option(
        "--density", help="Keep this fraction of each layer's weights (top-k); default: scores >= 0.")] = None,
    density_budget: Annotated[str, typer.Option(
        "--density-budget", help="With --density: uniform, or er (Erdos-Renyi-kernel: smaller layers keep more).")]
    = "uniform",
    init: Annotated[str, typer.Option(
        "--init", help="kaiming, or mean: start from the running mean of the archive's masks.")] = "kaiming",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of score init and batch order.")] = 0,
    auto: Annotated[bool, typer.Option("--auto", help="No task id: decide every --decide-every batches "
                                                     "whether to train a known mask or allocate a new one.")] = False,
    decide_every: Annotated[int, typer.Option("--decide-every", help="With --auto: batches between decisions.")]
    = 100,
    epsilon: Annotated[float, typer.Option("--epsilon", help="With --auto: allocate when K*max(nu) < 1+epsilon.")]
    = 0.125,
    max_masks: Annotated[int | None, typer.Option("--max-masks", help="With --auto: never hold more masks; "
                                                                      "then train the closest one.")] = None,
    device: Device = "auto",
    data_dir: DataDir = None,
    json_: Json = False,
) -> None:
    """Train one supermask for a task and commit it to the archive (nothing is committed on failure).

    With --auto (scenario NNs) the data carries no task id: every --decide-every batches, One-Shot
    over the archive's masks decides whether the data belongs to a known mask (which is trained
    further) or needs a new one; the output lists each decision with its statistic and threshold.

    Example: supsup learn-task model.supsup --data mnist --permute 7
    Example: supsup learn-task model.supsup --data mnist --permute 8 --auto --max-masks 100
    """
    from supsup_cli.autolearn import learn_auto
    from supsup_cli.learn import LearnRequest, learn_task
    from supsup_cli.training import TrainConfig

    request = LearnRequest(
        path=path, data=task_data(data, permute, rotate, classes), name=name, init=init, device=device,
        data_dir=data_dir, config=TrainConfig(steps=steps, batch_size=batch_size, lr=lr, density=density, seed=seed,
                           optimizer=optimizer, budget=density_budget),
    )
    started = time.perf_counter()
    with output.progress_bar(f"learning {name or request.data.default_name()}", steps) as update:
        def progress(step: int, loss: float, accuracy: float) -> None:
            interrupts.check()
            rate = step * batch_size / max(1e-9, time.perf_counter() - started)
            update(step, loss=loss, acc=accuracy, **{"img/s": f"{rate:,.0f}"})

        notes: list[str] = []
        result = learn_auto(request, decide_every, epsilon, max_masks, progress, notes) if auto else \
            learn_task(request, progress)
    for message in notes:
        output.note(f"supsup: note: {message}")
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if json_:
        output.emit_json(result)
        return
    output.emit_fields([(key, result[key]) for key in
                        ("index", "name", "test_accuracy", "train_seconds", "steps", "density")])
    if auto:
        output.emit_fields([("allocated", result["allocated"] or "none"), ("trained again", result["reused"] or "none"),
                            ("masks", result["masks"])])
        output.emit_table(["step", "candidates", "K*max(nu)", "threshold", "action", "mask"],
                          [[d["step"], d["candidates"], d["statistic"], d["threshold"], d["action"], d["mask"]]
                           for d in result["decisions"]])


def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs and labels.csv.")],
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many images.")] = 100,
    data: Dataset = "mnist",
    permute: Permute = None,
    rotate: Rotate = None,
    classes: Classes = None,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "test",
    data_dir: DataDir = None,
    json_: Json = False,
) -> None:
    """Write a task's transformed images as 8-bit PNGs plus labels.csv (file,label).

    Example: supsup data export --data mnist --permute 7 -n 200 --out imgs/
    """
    rows = export_examples(load_task(task_data(data, permute, rotate, classes), split, data_dir), count, out)
    result = {"out": str(out), "images": len(rows), "labels": str(out / "labels.csv")}
    if json_:
        output.emit_json(result)
    else:
        output.emit_fields(list(result.items()))
