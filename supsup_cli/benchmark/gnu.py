"""Scenarios GG and GNu: task ids while learning (resumably, in stages); then every checkpoint's tasks,
with and without ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.engine import hopfield, superposition
from supsup_cli.benchmark import result_store
from supsup_cli.benchmark.listener import Listener
from supsup_cli.benchmark.suites import DEFAULT_TASKS, suite_tasks
from supsup_cli.benchmark.evaluation import EvalSets, Timed, hopfield_accuracy
from supsup_cli.benchmark.matrices import Rows
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.api.hopfield_store import hopfield_store, reservoir_of
from supsup_cli.api.learn import LearnRequest, learn_tasks
from supsup_cli.api.base import base_network
from supsup_cli.engine.models import real_outputs
from supsup_cli.api.size import storage_report
from supsup_cli.engine.training import TrainConfig
from supsup_cli.benchmark.config import BenchmarkConfig, checkpoints, planned_steps
from supsup_cli.benchmark.run import Run, create_archive, evaluate_row, result_store_of


def learn_then_evaluate(path: Path, config: BenchmarkConfig, device: torch.device, listener: Listener) -> Run:
    """Scenario GG/GNu: task ids while learning; then every checkpoint's tasks, with and without ids."""
    datas, train_seconds = _learned_tasks(path, config, device, listener)
    with archive.Archive(path) as opened:
        spec, net, records = opened.spec, base_network(opened, config.module), opened.tasks[: len(datas)]
        packed = [torch.from_numpy(p[: len(datas)]) for p in opened.packed_masks()]
        stats = [opened.stats(t) for t in range(len(datas))] if spec.norm == "running" else None
    evals = EvalSets(datas, config.eval_images, config.seed, spec, device, config.data_dir)
    real = sorted({o for r in records for o in real_outputs(spec, r.classes)})
    sup = superposition.superposition(net.to(device), packed, real, stats=stats)
    store = result_store_of(config, spec, path)
    rows = Rows(config.protocols, len(datas))
    timers: dict[str, Timed] = {}
    for c in checkpoints(len(datas), config.suite):
        digest = result_store.masks_digest([r.mask_sha256 or "" for r in records[:c]])
        row = store.get(c, digest) if store else None
        if row is None:
            listener.start(f"evaluating after {c} tasks", 0, c * c)
            row = evaluate_row(sup.first(c), evals, c, config, timers)
            if store:
                store.put(c, digest, row)
        rows.add(row)
    extra = {}
    if config.hopfield:
        listener.start("Hopfield recovery", 0)
        hopfield_store(path)
        with archive.Archive(path) as opened:
            reservoir = reservoir_of(opened)
        extra["hopfield"] = hopfield_accuracy(sup, reservoir, evals.all(), config.hopfield_steps or hopfield.STEPS)
        for name, key in (("hopfield", "recovered_accuracy"), ("explicit-masks", "explicit_accuracy")):
            rows.add_final(name, [t[key] for t in extra["hopfield"]["tasks"]])  # evaluated after the last task only
    steps = int(records[0].training.get("steps", config.steps))
    extra["storage"] = _storage(path)
    return Run(spec, net.cpu(), datas, evals, steps, rows, timers, train_seconds, extra)


def _storage(path: Path) -> dict[str, Any]:
    """What the run's archive costs on disk (supsup size), beside the paper's scheme and dense weights."""
    with archive.Archive(path) as opened:
        report = storage_report(opened)
    keys = ("bytes_on_disk", "bytes_per_task", "mask_bytes_per_task", "bits_per_weight", "entropy_bound_bytes",
            "csc_int16_bytes", "dense_fp32_bytes_per_task")
    return {key: report[key] for key in keys}


def _learned_tasks(path: Path, config: BenchmarkConfig, device: torch.device,
                   listener: Listener) -> tuple[list[TaskData], list[float]]:
    """The tasks to evaluate: an existing archive's (all of them when --tasks is not given), or the
    suite's, of which only those the archive does not hold yet are learned now (a resumed run)."""
    if not path.exists():
        create_archive(path, config)
    with archive.Archive(path) as opened:
        records, spec = opened.tasks, opened.spec
    if config.tasks is None and records:
        return [_reloadable(path, index, r) for index, r in enumerate(records)], []
    wanted = suite_tasks(config.suite, config.tasks or DEFAULT_TASKS[config.suite], config.seed)
    held = records[: len(wanted)]
    _check_resumable(path, spec, held, wanted, config)
    missing = wanted[len(held):]
    listener.plan(planned_steps(config, len(missing), len(wanted)),
                  sum(c * c for c in checkpoints(len(wanted), config.suite)))
    training = TrainConfig(steps=config.steps, seed=config.seed, density=config.density, budget=config.budget,
                           er_scale=config.er_scale)
    requests = [LearnRequest(path, data, training, device=str(device), data_dir=config.data_dir, module=config.module)
                for data in missing]
    seconds = [float(r.training.get("train_seconds", 0.0)) for r in held]

    together = config.tasks_per_step
    chunk = [1]  # tasks in the current step: their progress is counted together

    def started(position: int, request: LearnRequest, steps: int) -> None:
        if position % together:
            return
        chunk[0] = min(together, len(missing) - position)
        first = len(held) + position + 1
        label = f"supermask {first}" if chunk[0] == 1 else f"supermasks {first}-{first + chunk[0] - 1}"
        listener.start(f"{label}/{len(wanted)}", steps * chunk[0])

    def progress(step: int, loss: float, accuracy: float) -> None:
        listener.advance(step * chunk[0])

    for result in learn_tasks(requests, progress, started, together=together, grouped_commits=True):
        seconds.append(result.train_seconds)
    return wanted, seconds


def _check_resumable(path: Path, spec: registry.ArchSpec, held: list, wanted: list[TaskData],
                     config: BenchmarkConfig) -> None:
    """A run goes on in an archive only if it holds the first tasks of the same run, learned alike
    (over a module, the module is checked against the archive's fingerprint when it is bound)."""
    expected = spec if config.module is not None else registry.resolve(config.arch, config.output_size)
    if (spec.name, spec.output_size) != (expected.name, expected.output_size):
        raise InvalidArgument(f"{path} holds {spec.name} with {spec.output_size} outputs, not {expected.name} with "
                              f"{expected.output_size}: it cannot go on with this run (give another --archive)")
    for index, (record, data) in enumerate(zip(held, wanted)):
        learned = {key: record.training.get(key) for key in ("steps", "density", "budget", "er_scale", "seed")}
        asked = {"steps": config.steps, "density": config.density, "budget": config.budget,
                 "er_scale": config.er_scale, "seed": config.seed}
        held_data = _reloadable(path, index, record)
        differences = [f"data {held_data.default_name()} where this run learns {data.default_name()}"] \
            if held_data != data else []
        differences += [f"{key} {learned[key]!r} where this run has {asked[key]!r}"
                        for key in asked if learned[key] != asked[key]]
        if differences:
            raise InvalidArgument(f"{path}: task {index} ({record.name}) was not learned by this run: "
                                  f"{'; '.join(differences)}; give another --archive or the same settings")


def _reloadable(path: Path, index: int, record: Any) -> TaskData:
    """A task's data spec, as the benchmark loads its data again; tasks learned from arrays in memory
    cannot be (their images are not in the archive)."""
    if record.data.get("dataset") == "arrays":
        raise InvalidArgument(f"{path}: task {index} ({record.name}) was learned from arrays in memory, which "
                              "the archive does not keep: the benchmark evaluates tasks of datasets it can load")
    return TaskData.from_plain(record.data)
