"""benchmark: the README's main job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from supsup_cli.core import choices, registry
from supsup_cli.core.choices import listed
from supsup_cli.cli import interrupts, output, report
from supsup_cli.cli.options import DataDir, Device, UserModule, json_flag, refuse_given
from supsup_cli.cli.user_code import load_module
from supsup_cli.core.errors import QualityGateFailed

QUICK = {"tasks": 5, "steps": 1000, "eval_images": 1000}

_Json = json_flag("the whole results object (the same as --out's results.json)")


def benchmark(
    ctx: typer.Context,
    suite: Annotated[str, typer.Option("--suite", help=f"{listed((*choices.SUITES, 'speed'))}.")]
    = "permuted-mnist",
    arch: Annotated[str, typer.Option("--arch", help=f"{listed(tuple(registry.REGISTRY))}.")] = "lenet300-100",
    tasks: Annotated[int | None, typer.Option("--tasks", help="Tasks to learn (default: the suite's).")] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Batches per task (default 1000; one epoch for fc2048-2048-hop; 250 epochs for "
                        "split-cifar100).")] = None,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", min=1, help="Passes over each task's training examples instead of --steps.")] = None,
    eval_images: Annotated[int | None, typer.Option(
        "--eval-images", help="Test images per task, spread over the test split (default: all).")] = None,
    method: Annotated[list[str] | None, typer.Option(
        "--method", metavar="METHOD", help=f"{listed(choices.METHODS)}; repeatable (default: one-shot and binary).")]
    = None,
    objective: Annotated[list[str] | None, typer.Option(
        "--objective", metavar="OBJECTIVE", help=f"{listed(choices.OBJECTIVES)}; repeatable (default: both).")]
    = None,
    same_task: Annotated[bool, typer.Option("--same-task", help="Infer one task per batch of 128 images.")] = False,
    density: Annotated[float | None, typer.Option("--density", help="Top-k masks of this density.")] = None,
    density_budget: Annotated[str | None, typer.Option(
        "--density-budget", help=f"{listed(choices.DENSITY_BUDGETS)} (as for learn-task; default: the suite's, "
                                 "er for split-cifar100, else uniform).")] = None,
    er_scale: Annotated[float | None, typer.Option(
        "--er-scale", help="With --density-budget er: the scale S of the paper's budget (Table 2: 1-32).")] = None,
    scenario: Annotated[str, typer.Option(
        "--scenario", help=f"{listed(choices.SCENARIOS)} (gnu: task ids while learning; nns: none at all).")]
    = "gnu",
    output_size: Annotated[int | None, typer.Option("--output-size", help="Output neurons (default: the arch's).")]
    = None,
    hopfield: Annotated[bool, typer.Option("--hopfield", help="HopSupSup: store the masks in a Hopfield reservoir "
                                                             "and evaluate masks recovered from test images.")]
    = False,
    hopfield_steps: Annotated[int | None, typer.Option(
        "--hopfield-steps", min=1, help="Recovery steps over batches of 64 (default 100; the paper: about 30).")] = None,
    protocol: Annotated[str, typer.Option(
        "--protocol", help="per-image (each image's task inferred on its own, class among the task's outputs), "
                           "paper (the paper's code: the task inferred from the first image of each shuffled "
                           "batch of 128, class the arg-max over all s outputs), or both: "
                           f"{listed((*choices.PROTOCOLS, 'both'))}.")] = "per-image",
    max_masks: Annotated[int | None, typer.Option(
        "--max-masks", min=1, help="With --scenario nns: the mask budget (the paper's Table 5: 2500).")] = None,
    tasks_per_step: Annotated[int, typer.Option(
        "--tasks-per-step", min=1, help="Supermasks trained at once in one batched step (the same masks as one "
                                        "at a time; faster on a GPU).")] = 1,
    archive: Annotated[Path | None, typer.Option("--archive", help="Keep the archive here; evaluate it if it has "
                                                                   "tasks.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write results.json, matrix.csv, accuracy.png and matrix.png; keep each evaluated "
                      "checkpoint in OUT/checkpoints/, so that a rerun evaluates only the missing ones.")] = None,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Train the upper and lower bound.")]
    = True,
    fail_under: Annotated[float | None, typer.Option(
        "--fail-under", help="Exit 15 if the final accuracy of the first GNu method is below this fraction.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="5 tasks, 1000 steps, 1000 test images: about a minute.")]
    = False,
    device: Device = "auto",
    data_dir: DataDir = None,
    module: UserModule = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the base network, and mixed into each "
                                                           "task's seed.")] = 0,
    json_: _Json = False,
) -> None:
    """Run a continual-learning experiment end to end: learn tasks, infer them, compare with the paper.

    --suite speed times training (one task's --steps, default 1000, one at a time and --tasks-per-step
    at once, default 5, beside the matrix products those steps need), then inference images/s and
    memory at k = 10, 100, 1000, 2500 random masks (up to --tasks), on --eval-images images (default 256).

    Example: supsup benchmark --quick
    Example: supsup benchmark --suite permuted-mnist --arch lenet300-100 --tasks 10 --out results/
    Example: supsup benchmark --suite split-mnist --arch fc2048-2048-hop --hopfield
    Example: supsup benchmark --suite rotated-mnist --module nets.py:small_cnn --tasks 8 --no-baselines
    """
    from supsup_cli.benchmark import config as settings, experiment, speed_suite

    _refuse_idle_flags(ctx, suite, arch, density, density_budget, hopfield)
    if module is not None:
        refuse_given(ctx, ("arch", "output_size"), "with --module (the module has its own layers and outputs)")
        if suite == "speed":
            refuse_given(ctx, ("module",), "with --suite speed (it times the registry's networks)")
    listener = _BarListener()
    with listener:
        if suite == "speed":
            results = speed_suite.speed_suite(arch, device, speed_suite.speed_ks(tasks), images=eval_images or 256,
                                              seed=seed, listener=listener, steps=steps or 1000,
                                              output_size=output_size, tasks_per_step=tasks_per_step
                                              if ctx.get_parameter_source("tasks_per_step").name == "COMMANDLINE"
                                              else speed_suite.TASKS_PER_STEP)
        else:
            defaults = QUICK if quick else {"tasks": None, "steps": None, "eval_images": None}
            config = settings.BenchmarkConfig(
                suite=suite, arch=arch, tasks=tasks if tasks is not None else defaults["tasks"],
                steps=steps if steps is not None else defaults["steps"],
                eval_images=eval_images if eval_images is not None else defaults["eval_images"],
                methods=tuple(method or ("one-shot", "binary")), objectives=tuple(objective or ("entropy", "g")),
                same_task=same_task, archive=archive, device=device, seed=seed, baselines=baselines,
                output_size=output_size, scenario=scenario, hopfield=hopfield,
                hopfield_steps=hopfield_steps, density=density, budget=density_budget, er_scale=er_scale, epochs=epochs,
                protocols=settings.PROTOCOLS if protocol == "both" else (protocol,), out=out, max_masks=max_masks,
                tasks_per_step=tasks_per_step, data_dir=data_dir, module=load_module(module))
            outcome = experiment.run_benchmark(config, listener)
            gated = outcome.gated
            results = outcome.to_dict()
    if out is not None:
        for path in report.write_files(results, out):
            output.note(f"supsup: wrote {path}")
    if json_:
        output.emit_json(results)
    else:
        report.show(results)
    if fail_under is not None and suite != "speed":
        method, achieved = gated
        if achieved < fail_under:
            raise QualityGateFailed(f"{method} accuracy {achieved:.4f} is below --fail-under {fail_under}")


def _refuse_idle_flags(ctx: typer.Context, suite: str, arch: str, density: float | None, density_budget: str | None,
                       hopfield: bool) -> None:
    if suite == "speed":
        refuse_given(ctx, ("method", "objective", "same_task", "density", "density_budget", "scenario", "hopfield",
                           "hopfield_steps", "protocol", "max_masks", "archive", "out", "baselines", "fail_under",
                           "quick", "er_scale", "epochs", "data_dir"),
                     "with --suite speed (it times training and inference of its own tasks)")
    if suite in ("permuted-mnist", "rotated-mnist", "split-mnist"):
        refuse_given(ctx, ("data_dir",), f"with --suite {suite} (MNIST ships with supsup)")
    if density is None and density_budget != "er":
        refuse_given(ctx, ("density_budget",), "without --density")
    if ctx.get_parameter_source("epochs").name == "COMMANDLINE":
        refuse_given(ctx, ("steps",), "with --epochs (it sets the steps from the number of examples)")
    if not hopfield:
        refuse_given(ctx, ("hopfield_steps",), "without --hopfield")
    spec = registry.REGISTRY.get(arch)
    if spec is not None and (spec.mask_on == "neurons" or spec.family != "mlp"):
        refuse_given(ctx, ("method", "objective", "same_task"),
                     f"with --arch {arch} (its tasks are not inferred by superposition)")


class _BarListener:
    """Two bars on a terminal: the whole run (with the time left) and the current unit."""

    def __init__(self) -> None:
        self._bar = None

    def __enter__(self) -> "_BarListener":
        import sys

        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                                 console=Console(file=sys.stderr), transient=True)
            self._bar.start()
            self._run = self._bar.add_task("benchmark", total=None)
            self._unit_task = self._bar.add_task("", total=None)
        self._done_before = 0
        self._current = 0
        self._total = 0
        self._work_total = 0.0
        self._work_done = 0.0
        self._spent = {"train": 0.0, "eval": 0.0}
        self._unit = ("train", 0.0)
        self._unit_began = self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def plan(self, total_steps: int, total_work: float = 0.0) -> None:
        self._total = total_steps
        self._work_total = total_work
        if self._bar is not None:
            self._bar.update(self._run, total=total_steps)

    def start(self, label: str, steps: int, work: float = 0.0) -> None:
        interrupts.check()
        now = time.perf_counter()
        kind, unit_work = self._unit
        self._spent[kind] += now - self._unit_began
        if kind == "eval":
            self._work_done += unit_work
        self._done_before += self._current
        self._current = 0
        self._unit, self._unit_began = ("train" if steps else "eval", work), now
        if self._bar is not None:
            self._bar.update(self._unit_task, description=label, total=steps or None, completed=0)
            self._bar.update(self._run, completed=self._done_before)
        else:
            output.note(f"benchmark: {label}{self._time_left()}")

    def _time_left(self) -> str:
        """Logs and CI have no bar, so each unit gets a line: training and evaluation are each
        extrapolated from their own pace so far (evaluation before any is done: not estimated)."""
        elapsed = time.perf_counter() - self._started
        steps_left = max(self._total - self._done_before, 0)
        work_left = max(self._work_total - self._work_done, 0.0)
        if (steps_left and not self._done_before) or (not steps_left and work_left and not self._work_done):
            return f" ({elapsed:.0f} s elapsed)"
        left = self._spent["train"] * steps_left / self._done_before if steps_left else 0.0
        if work_left and not self._work_done:
            return f" ({elapsed:.0f} s elapsed, about {output.duration(left)} of training left, then evaluation)"
        if work_left:
            left += self._spent["eval"] * work_left / self._work_done
        return f" ({elapsed:.0f} s elapsed, about {output.duration(left)} left)"

    def advance(self, step: int) -> None:
        interrupts.check()
        self._current = step
        if self._bar is not None:
            self._bar.update(self._unit_task, completed=step)
            self._bar.update(self._run, completed=self._done_before + step)
