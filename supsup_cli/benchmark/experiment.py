"""A continual-learning experiment end to end: learn a suite of tasks (resumably), evaluate every
checkpoint under each protocol, train the baselines, and report with the paper's figures and speed."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from supsup_cli.engine import device as device_
from supsup_cli.benchmark import paper
from supsup_cli.benchmark.listener import Listener
from supsup_cli.benchmark.suites import DEFAULT_OUTPUT_SIZES
from supsup_cli.benchmark.baseline_runs import baseline_bytes, baseline_rows
from supsup_cli.benchmark.config import (BenchmarkConfig, check_config, checkpoints, default_steps, recipe,
                                         with_suite_recipe)
from supsup_cli.benchmark.gnu import learn_then_evaluate
from supsup_cli.benchmark.nns import stream_without_task_ids
from supsup_cli.benchmark.run import Run
from supsup_cli.benchmark.speed_report import run_speed


@dataclass(frozen=True)
class BenchmarkResult:
    """A benchmark run's results; `to_dict()` is what `supsup benchmark --json` prints (its keys are a
    contract). Accuracies are fractions, unrounded: the report rounds them."""

    suite: str
    scenario: str
    recipe: dict[str, Any]  # the training recipe the tasks were learned with
    arch: str
    output_size: int
    tasks: int
    steps: int
    eval_images: int | None  # test images per task (None: all)
    eval_images_total: int
    same_task: bool
    protocols: list[str]
    seed: int
    device: str
    archive: str | None
    checkpoints: list[int]
    summary: dict[str, Any]  # the last checkpoint: average accuracy, forgetting, storage, ...
    by_checkpoint: dict[str, list[float]]  # method -> average accuracy at each checkpoint
    by_checkpoint_by_protocol: dict[str, dict[str, list[float]]]
    matrix: dict[str, list[list[float | None]]]  # method -> accuracy on task j after i tasks
    matrix_by_protocol: dict[str, dict[str, list[list[float | None]]]]
    task_inference: dict[str, list[float]]
    task_inference_by_protocol: dict[str, dict[str, list[float]]]
    paper: dict[str, dict[str, float]]  # the paper's figures at the run's checkpoints, where it has them
    paper_average: dict[str, Any] | None  # where the paper gives a mean over checkpoints (Table 6): its and ours
    speed: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def gated(self) -> tuple[str, float]:
        """What --fail-under compares: the first inference method's final accuracy; for HopSupSup
        the recovered masks'; else (residual networks) the accuracy with the task given."""
        averages = self.summary["avg_accuracy"]
        name = next((m for m in averages if "/" in m), "hopfield" if "hopfield" in averages else "gg")
        return name, averages[name]


def run_benchmark(config: BenchmarkConfig, listener: Listener | None = None) -> BenchmarkResult:
    """Learn the suite's tasks (or go on with `config.archive`), evaluate every checkpoint, train the
    baselines, and measure speed."""
    check_config(config)
    config = with_suite_recipe(config)
    config = replace(config, steps=config.steps or default_steps(config),
                     output_size=config.output_size or DEFAULT_OUTPUT_SIZES.get(config.suite))
    listener = listener or Listener()
    device = device_.resolve(config.device)
    with tempfile.TemporaryDirectory(prefix="supsup-benchmark-") as scratch:
        path = config.archive or Path(scratch) / "benchmark.supsup"
        scenario = stream_without_task_ids if config.scenario == "nns" else learn_then_evaluate
        run = scenario(path, config, device, listener)
    rows = checkpoints(len(run.datas), config.suite)
    if config.baselines:
        if "storage" in run.extra:  # scenario NNs reports no storage
            run.extra["storage"]["baseline_bytes"] = baseline_bytes(run.spec, run.weights, len(run.datas), config.suite)
        run.rows.add_baselines(baseline_rows(run.spec, run.weights, run.datas, run.evals, rows, config, run.steps,
                                          device, listener))
    figures = paper.figures(config.suite, run.spec.name, run.spec.output_size, run.steps, config.scenario)
    main = config.protocols[0]
    summaries = {p: run.rows.summary(p) for p in config.protocols}
    return BenchmarkResult(
        suite=config.suite, scenario=config.scenario, recipe=recipe(config, run.spec, run.steps), arch=run.spec.name,
        output_size=run.spec.output_size, tasks=len(run.datas), steps=run.steps, eval_images=config.eval_images,
        eval_images_total=run.rows.images_total, same_task=config.same_task, protocols=list(config.protocols),
        seed=config.seed, device=str(device), archive=str(config.archive) if config.archive else None,
        checkpoints=rows,
        summary={**summaries[main],
                 "avg_accuracy_by_protocol": {p: s["avg_accuracy"] for p, s in summaries.items()},
                 "standard_error_by_protocol": {p: s["standard_error"] for p, s in summaries.items()},
                 "task_inference_accuracy_by_protocol": {p: s["task_inference_accuracy"] for p, s in summaries.items()},
                 **run.extra},
        by_checkpoint=run.rows.by_checkpoint(main),
        by_checkpoint_by_protocol={p: run.rows.by_checkpoint(p) for p in config.protocols},
        matrix=run.rows.matrices[main], matrix_by_protocol={p: run.rows.matrices[p] for p in config.protocols},
        task_inference=run.rows.inferred[main],
        task_inference_by_protocol={p: run.rows.inferred[p] for p in config.protocols},
        paper={str(c): figures[c] for c in rows if c in figures},
        paper_average=_paper_average(config, run, rows, main),
        speed=run_speed(run.net.to(device), run.datas[0], config, device, run.train_seconds, len(run.datas),
                        run.steps, run.timers))


def _paper_average(config: BenchmarkConfig, run: Run, rows: list[int], protocol: str) -> dict[str, Any] | None:
    """The paper's mean over checkpoints beside ours at the same checkpoints, when the run has them all."""
    found = paper.averaged(config.suite, run.spec.name, run.spec.output_size, run.steps, config.scenario)
    if found is None or not set(found[0]) <= set(rows):
        return None
    at, figures = found
    ours = {}
    for method, curve in run.rows.by_checkpoint(protocol).items():
        values = [curve[rows.index(c)] for c in at]
        if method in figures and all(v is not None for v in values):
            ours[method] = sum(values) / len(values)
    return {"checkpoints": list(at), "paper": figures, "ours": ours}
