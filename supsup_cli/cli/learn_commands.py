"""learn-task and data export.

Engine modules that import torch are imported inside the commands that need them, so that
`supsup inspect`, `--help` and friends start in a fraction of a second in shell pipelines.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer

from supsup_cli.core import choices
from supsup_cli.core.choices import listed
from supsup_cli.cli import interrupts, output
from supsup_cli.cli.options import (ArchivePath, Classes, DataDir, Dataset, Device, json_flag, Permute, Resample, Rotate,
                                    refuse_given, task_data, task_datas, UserModule)
from supsup_cli.cli.user_code import load_module
from supsup_cli.data.images import export_examples
from supsup_cli.data.tasks import load_task

_LearnJson = json_flag("one object per task learned, one per line")
_ExportJson = json_flag("the output folder and the number of images")


def learn(
    ctx: typer.Context,
    path: ArchivePath,
    data: Dataset = "mnist",
    permute: Permute = None,
    rotate: Rotate = None,
    resample: Resample = "bilinear",
    classes: Classes = None,
    name: Annotated[str | None, typer.Option("--name", help="Task name (default: from the data spec).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Training batches.")] = 1000,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="Passes over the task's training examples instead of --steps (the paper: 250 for "
                         "SplitCIFAR-100).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training images per batch.")] = 128,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="Learning rate of the scores (default: 1e-4 for rmsprop, 0.1 for the Hopfield arch).")] = None,
    optimizer: Annotated[str | None, typer.Option(
        "--optimizer", help=f"{listed(choices.OPTIMIZERS)} (sgd: momentum 0.9, weight decay 1e-4; adam: weight "
                            "decay 1e-4); default: "
                            "the paper's for the architecture.")] = None,
    density: Annotated[float | None, typer.Option(
        "--density", help="Keep this fraction of each layer's weights (top-k); default: scores >= 0.")] = None,
    density_budget: Annotated[str, typer.Option(
        "--density-budget", help=f"{listed(choices.DENSITY_BUDGETS)}: with --density, the same in every layer or "
                                 "Erdos-Renyi-kernel (smaller layers keep more); er: the paper's top-k budget, "
                                 "min(0.5, S * (c_out + c_in) / weights) per layer, with --er-scale S.")]
    = "uniform",
    er_scale: Annotated[float | None, typer.Option(
        "--er-scale", help="With --density-budget er: the scale S (the paper's Table 2: 1, 2, 4, 8, 16, 32).")]
    = None,
    init: Annotated[str, typer.Option(
        "--init", help=f"{listed(choices.INITS)} (mean: start from the running mean of the archive's masks).")]
    = "kaiming",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Mixed with the archive's seed and the task's index "
                                                           "and name into the seed of its scores and batches.")] = 0,
    auto: Annotated[bool, typer.Option("--auto", help="No task id: decide every --decide-every batches "
                                                     "whether to train a known mask or allocate a new one.")] = False,
    decide_every: Annotated[int, typer.Option("--decide-every", help="With --auto: batches between decisions.")]
    = 100,
    epsilon: Annotated[float, typer.Option("--epsilon", help="With --auto: allocate when K*max(nu) < 1+epsilon.")]
    = 0.125,
    max_masks: Annotated[int | None, typer.Option("--max-masks", help="With --auto: never hold more masks; "
                                                                      "then train the closest one.")] = None,
    tasks_per_step: Annotated[int, typer.Option(
        "--tasks-per-step", min=1, help="Train this many of the listed tasks at once, in one batched step "
                                        "(the same masks as one at a time; faster on a GPU).")] = 1,
    device: Device = "auto",
    data_dir: DataDir = None,
    module: UserModule = None,
    json_: _LearnJson = False,
) -> None:
    """Train a supermask per task and commit each to the archive as soon as it is learned (nothing of
    a task is committed if it fails; the tasks before it stay committed).

    --permute and --rotate take lists and ranges: one call learns many tasks, building the network
    and loading the data once (--json: one object per task, per line).

    With --auto (scenario NNs) the data carries no task id: every --decide-every batches, One-Shot
    over the archive's masks decides whether the data belongs to a known mask (which is trained
    further) or needs a new one; the output lists each decision with its statistic and threshold.

    Example: supsup learn-task model.supsup --data mnist --permute 7
    Example: supsup learn-task model.supsup --permute 1-250
    Example: supsup learn-task model.supsup --permute 1-250 --tasks-per-step 10 --device cuda
    Example: supsup learn-task model.supsup --data mnist --permute 8 --auto --max-masks 100
    """
    from supsup_cli.api.model import Model

    if not auto:
        refuse_given(ctx, ("decide_every", "epsilon", "max_masks"), "without --auto")
    else:
        refuse_given(ctx, ("tasks_per_step", "epochs"), "with --auto")
    if epochs is not None:
        refuse_given(ctx, ("steps",), "with --epochs (it sets the steps from the number of examples)")
    if density is None and density_budget != "er":
        refuse_given(ctx, ("density_budget",), "without --density")
    datas = task_datas(data, permute, rotate, classes, resample)
    training = dict(steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, density=density, seed=seed,
                    optimizer=optimizer, density_budget=density_budget, er_scale=er_scale)
    model = Model(path, module=load_module(module), device=device)
    notes: list[str] = []
    with _TaskProgress(len(datas), steps, batch_size) as progress:
        if auto:
            def each_auto():
                for position, task in enumerate(datas):
                    progress.started(position, name or task.default_name())
                    yield model.learn_auto(task, name=name, decide_every=decide_every, epsilon=epsilon,
                                           max_masks=max_masks, init=init, progress=progress.step, notes=notes,
                                           data_dir=data_dir, **training)

            results = each_auto()
        else:
            results = model.learn_many(datas, name=name, init=init, tasks_per_step=tasks_per_step,
                                       progress=progress.step, data_dir=data_dir,
                                       started=lambda position, request, steps: progress.started(
                                           position, request.name or request.data.default_name(), steps),
                                       **training)
        for result in results:
            shown = _rendered(result)
            progress.finished(shown)
            _show(shown, auto, json_, first=progress.done == 1)
    for message in notes:
        output.note(f"supsup: note: {message}")


def _rendered(result) -> dict | None:
    """A learned task as printed: seconds to the millisecond, densities and statistics to 6 digits."""
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return None
    plain = result.to_dict()
    plain.update(train_seconds=round(plain["train_seconds"], 3), density=round(plain["density"], 6))
    if "decisions" in plain:
        plain["decisions"] = [{**d, "statistic": None if d["statistic"] is None else round(d["statistic"], 6)}
                              for d in plain["decisions"]]
    return plain


def _show(result: dict | None, auto: bool, json_: bool, first: bool) -> None:
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if json_:
        output.emit_json(result)
        return
    if not first:
        output.emit_line("")
    output.emit_fields([(key, result[key]) for key in
                        ("index", "name", "test_accuracy", "train_seconds", "steps", "density")])
    if auto:
        output.emit_fields([("allocated", result["allocated"] or "none"), ("trained again", result["reused"] or "none"),
                            ("masks", result["masks"])])
        output.emit_table(["step", "candidates", "K*max(nu)", "threshold", "action", "mask"],
                          [[d["step"], d["candidates"], d["statistic"], d["threshold"], d["action"], d["mask"]]
                           for d in result["decisions"]])


class _TaskProgress:
    """A bar per task on a terminal; elsewhere (logs, CI) a line as each task starts and ends, with
    the tasks done, tasks per minute and the time left."""

    def __init__(self, tasks: int, steps: int, batch_size: int) -> None:
        self.tasks, self.steps, self.batch_size = tasks, steps, batch_size
        self.done = 0
        self._bars = contextlib.ExitStack()
        self._update = None

    def __enter__(self) -> "_TaskProgress":
        self._began = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.close()

    def started(self, position: int, label: str, steps: int | None = None) -> None:
        """A task begins; `steps` when it differs from --steps (--epochs sets it by the examples)."""
        interrupts.check()
        self._bars.close()
        counted = f" ({position + 1}/{self.tasks})" if self.tasks > 1 else ""
        self._update = self._bars.enter_context(output.progress_bar(f"learning {label}{counted}", steps or self.steps))
        self._task_began = time.perf_counter()
        self._announce = f"learn-task: learning {label}{counted}" if not output.is_terminal() else None

    def step(self, step: int, loss: float, accuracy: float) -> None:
        interrupts.check()
        if self._announce:  # once training runs: a task refused before it gets its error line alone
            output.note(self._announce)
            self._announce = None
        rate = step * self.batch_size / max(1e-9, time.perf_counter() - self._task_began)
        self._update(step, loss=loss, acc=accuracy, **{"img/s": f"{rate:,.0f}"})

    def finished(self, result: dict | None) -> None:
        self.done += 1
        if result is not None and not output.is_terminal():
            output.note(f"learn-task: committed {result['name']} as task {result['index']} "
                        f"(test accuracy {result['test_accuracy']:.4f}){self._pace()}")

    def _pace(self) -> str:
        if self.tasks == 1 or not self.done:
            return ""
        elapsed = time.perf_counter() - self._began
        per_minute = 60 * self.done / elapsed
        left = elapsed / self.done * (self.tasks - self.done)
        return f"; {self.done}/{self.tasks} done, {per_minute:.1f} tasks/min, about {output.duration(left)} left"


def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs and labels.csv.")],
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many images.")] = 100,
    data: Dataset = "mnist",
    permute: Permute = None,
    rotate: Rotate = None,
    resample: Resample = "bilinear",
    classes: Classes = None,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "test",
    data_dir: DataDir = None,
    json_: _ExportJson = False,
) -> None:
    """Write a task's transformed images as 8-bit PNGs plus labels.csv (file,label).

    Example: supsup data export --data mnist --permute 7 -n 200 --out imgs/
    """
    rows = export_examples(load_task(task_data(data, permute, rotate, classes, resample), split, data_dir), count, out)
    result = {"out": str(out), "images": len(rows), "labels": str(out / "labels.csv")}
    if json_:
        output.emit_json(result)
    else:
        output.emit_fields(list(result.items()))
