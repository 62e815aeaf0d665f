"""What both scenarios share: the run they produce, the archive they start, a checkpoint's row of accuracies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.engine import superposition
from supsup_cli.benchmark.suites import suite_tasks
from supsup_cli.benchmark.evaluation import (EvalSets, Timed, gg_accuracy, gnu_accuracy, paper_gg_accuracy,
                                             paper_gnu_accuracy)
from supsup_cli.benchmark.matrices import Rows
from supsup_cli.data import datasets
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import MaskedNet
from supsup_cli.engine.training import task_tensors
from supsup_cli.benchmark import result_store
from supsup_cli.benchmark.config import BenchmarkConfig


@dataclass
class Run:
    """What a scenario produced: the learned archive's network, its evaluations, its cost."""

    spec: registry.ArchSpec
    net: MaskedNet  # the base network, on the CPU
    datas: list[TaskData]
    evals: EvalSets
    steps: int
    rows: Rows
    timers: dict[str, Timed]
    train_seconds: list[float]
    extra: dict[str, Any]

    @property
    def weights(self) -> list:
        """The base weights as numpy arrays (the baselines start from them)."""
        return [w.numpy() for w in self.net.base()]


def create_archive(path: Path, config: BenchmarkConfig) -> registry.ArchSpec:
    """A new archive for the run: the registry's network, or the user's module over random weights."""
    if config.module is None:
        spec = registry.resolve(config.arch, config.output_size)
        archive.create(path, spec, seed=config.seed)
        return spec
    from supsup_cli.engine import user_module

    first = suite_tasks(config.suite, 1, config.seed)[0]
    shape = datasets.spec_of(first.dataset).image_shape
    spec, _ = user_module.prepare(config.module, shape, "random", config.seed,
                                  label=user_module.describe(config.module))
    archive.create(path, spec, seed=config.seed)
    return spec


def evaluate_row(sup: superposition.Superposition, evals: EvalSets, count: int, config: BenchmarkConfig,
                  timers: dict[str, Timed], masks: list[int] | None = None) -> dict[str, Any]:
    """Accuracy on each of the first `count` tasks, per protocol: GG (its own mask) and each GNu method.

    Returns {"images": [n_j], protocol: {method: {"accuracy": [...], "task": [...] or None}}}; the
    timers get the images and seconds of each method (per-image protocol)."""
    masks = list(range(count)) if masks is None else masks
    shared_labels = config.scenario == "nns"
    row: dict[str, Any] = {"images": [], **{p: {} for p in config.protocols}}

    def extend(protocol: str, name: str, accuracy: list[float], found: list[float] | None) -> None:
        entry = row[protocol].setdefault(name, {"accuracy": [], "task": None if found is None else []})
        entry["accuracy"] += accuracy
        if found is not None:
            entry["task"] += found

    for name in ["gg", *config.gnu_methods]:
        timers[name] = Timed()  # each row replaces the last: the speed section reports inference at the run's k
    for block in evals.blocks(count):
        sets = [evals[j] for j in block]
        own = [masks[j] for j in block]
        row["images"] += [len(e.labels) for e in sets]
        if "per-image" in config.protocols:
            extend("per-image", "gg", [gg_accuracy(sup, m, e, timers["gg"]) for m, e in zip(own, sets)], None)
        if "paper" in config.protocols:
            extend("paper", "gg", [paper_gg_accuracy(sup, m, e) for m, e in zip(own, sets)], None)
        for name in config.gnu_methods:
            method, objective = name.split("/")
            if "per-image" in config.protocols:
                extend("per-image", name, *gnu_accuracy(sup, sets, method, objective, config.same_task, timers[name],
                                                        own))
            if "paper" in config.protocols:
                seeds = [evals.seeds[j] for j in block]
                extend("paper", name, *paper_gnu_accuracy(sup, sets, method, objective, Timed(), seeds, own,
                                                          shared_labels))
    return row


def train_tensors(data: TaskData, spec, device, data_dir: Path | None):
    return task_tensors(load_task(data, "train", data_dir), spec, device)


def result_store_of(config: BenchmarkConfig, spec: registry.ArchSpec, path: Path) -> result_store.ResultStore | None:
    """Where evaluated checkpoints are kept (--out), with the settings their rows depend on."""
    if config.out is None:
        return None
    with archive.Archive(path) as opened:
        weights_digest = opened.weights_sha256
    settings = {"suite": config.suite, "scenario": config.scenario, "arch": spec.name,
                "output_size": spec.output_size, "weights_sha256": weights_digest, "eval_images": config.eval_images,
                "methods": sorted(config.gnu_methods), "same_task": config.same_task,
                "protocols": sorted(config.protocols), "seed": config.seed}
    return result_store.ResultStore(config.out, settings)
