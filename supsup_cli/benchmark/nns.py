"""Scenario NNs: one stream of tasks, never labelled; masks allocated when the model is uncertain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.engine import superposition
from supsup_cli.api.autolearn import learn_auto
from supsup_cli.benchmark.listener import Listener
from supsup_cli.benchmark.suites import DEFAULT_TASKS, suite_tasks
from supsup_cli.benchmark.evaluation import EvalSets, Timed
from supsup_cli.benchmark.matrices import Rows
from supsup_cli.data import datasets
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.api.learn import LearnRequest
from supsup_cli.api.base import base_network
from supsup_cli.engine.models import real_outputs
from supsup_cli.engine.training import TrainConfig
from supsup_cli.benchmark.config import BenchmarkConfig, checkpoints, planned_steps
from supsup_cli.benchmark import result_store
from supsup_cli.benchmark.run import Run, create_archive, evaluate_row, result_store_of


def stream_without_task_ids(path: Path, config: BenchmarkConfig, device: torch.device, listener: Listener) -> Run:
    """Scenario NNs: the tasks arrive as one stream, never labelled; masks are allocated when uncertain.

    Resumable: an archive that holds the first segments of the same stream goes on after them (each
    segment's training is read back from its masks' records), and checkpoints evaluated before are
    read from --out (the masks have been trained since, so they could not be evaluated again)."""
    datas = suite_tasks(config.suite, config.tasks or DEFAULT_TASKS[config.suite], config.seed)
    if path.exists():
        spec, learned = _learned_segments(path, config, datas)
    else:
        spec, learned = create_archive(path, config), []
    store = result_store_of(config, spec, path)
    evals = EvalSets(datas, config.eval_images, config.seed, spec, device, config.data_dir)
    real = sorted({o for d in datas
                   for o in real_outputs(spec, d.task_classes(datasets.spec_of(d.dataset).num_classes))})
    listener.plan(planned_steps(config, len(datas) - len(learned), len(datas)),
                  sum(c * c for c in checkpoints(len(datas), config.suite)))
    rows = Rows(config.protocols, len(datas))
    timers: dict[str, Timed] = {}
    seconds = [s for s, _ in learned]
    trained_on = [steps for _, steps in learned]
    mapping = [max(steps, key=steps.get) for steps in trained_on]
    for index, data in enumerate(datas):
        if index >= len(learned):
            listener.start(f"stream {index + 1}/{len(datas)}", config.steps)
            training = TrainConfig(steps=config.steps, seed=config.seed, density=config.density, budget=config.budget,
                                   er_scale=config.er_scale)
            request = LearnRequest(path, data, training, device=str(device), data_dir=config.data_dir,
                                   module=config.module)
            result = learn_auto(request, max_masks=config.max_masks,
                                progress=lambda step, loss, acc: listener.advance(step))
            seconds.append(result["train_seconds"])
            trained_on.append(_steps_by_mask(result["decisions"], config.steps))
            mapping.append(max(trained_on[-1], key=trained_on[-1].get))
        if index + 1 in checkpoints(len(datas), config.suite):
            stream = result_store.masks_digest([d.default_name() for d in datas[: index + 1]])
            row = store.get(index + 1, stream) if store else None
            if row is None:
                if index < len(learned) - 1:
                    raise InvalidArgument(f"{path}: the checkpoint after {index + 1} tasks was not kept (give the "
                                          "--out of the run that learned them): its masks have been trained since")
                listener.start(f"evaluating after {index + 1} tasks", 0, (index + 1) ** 2)
                with archive.Archive(path) as opened:
                    net = base_network(opened, config.module)
                    packed = [torch.from_numpy(p) for p in opened.packed_masks()]
                sup = superposition.superposition(net.to(device), packed, real)
                row = evaluate_row(sup, evals, index + 1, config, timers, mapping)
                if store:
                    store.put(index + 1, stream, row)
            rows.add(row)
    with archive.Archive(path) as opened:
        net, masks = base_network(opened, config.module), opened.index.tasks
    extra = {
        "masks_allocated": masks,
        "task_to_mask": mapping,
        "one_mask_per_task": all(len(t) == 1 for t in trained_on) and len(set(mapping)) == len(mapping),
        "steps_by_mask": [{str(m): s for m, s in t.items()} for t in trained_on],
    }
    return Run(spec, net.cpu(), datas, evals, config.steps, rows, timers, seconds, extra)


def _learned_segments(path: Path, config: BenchmarkConfig, datas: list[TaskData]
                      ) -> tuple[registry.ArchSpec, list[tuple[float, dict[int, int]]]]:
    """The segments of this stream that the archive learned already, in order, each as (seconds, steps
    by mask), read from the records: a mask's creation and each retraining name their data and steps."""
    with archive.Archive(path) as opened:
        spec, records = opened.spec, opened.tasks
    expected = spec if config.module is not None else registry.resolve(config.arch, config.output_size)
    if (spec.name, spec.output_size) != (expected.name, expected.output_size):
        raise InvalidArgument(f"{path} holds {spec.name} with {spec.output_size} outputs, not {expected.name} with "
                              f"{expected.output_size}: it cannot go on with this run (give another --archive)")
    if not all(r.training.get("auto") for r in records):
        raise InvalidArgument(f"{path} holds tasks learned with task ids: --scenario nns goes on only with a stream "
                              "it learned itself (give another --archive)")
    trainings = [(index, entry) for index, r in enumerate(records)
                 for entry in [{**r.training, "data": r.data}, *r.training.get("retrained", [])]]
    learned: list[tuple[float, dict[int, int]]] = []
    for data in datas:
        plain = data.to_plain()
        steps: dict[int, int] = {}
        seconds = 0.0
        for index, entry in trainings:
            if entry["data"] == plain:
                steps[index] = steps.get(index, 0) + int(entry["steps"])
                seconds = float(entry["train_seconds"])
        if not steps:
            break
        if sum(steps.values()) != config.steps:
            raise InvalidArgument(f"{path}: {data.default_name()} was learned with {sum(steps.values())} steps where "
                                  f"this run has {config.steps}; give another --archive or the same settings")
        learned.append((seconds, steps))
    known = [d.to_plain() for d in datas[: len(learned)]]
    if any(entry["data"] not in known for _, entry in trainings):
        raise InvalidArgument(f"{path} holds masks trained on data that is not this stream's next: it cannot go on "
                              "with this run (give another --archive)")
    return spec, learned


def _steps_by_mask(decisions: list[dict[str, Any]], steps: int) -> dict[int, int]:
    """How many of a stream segment's batches trained each mask (a decision holds until the next)."""
    counts: dict[int, int] = {}
    for decision, following in zip(decisions, decisions[1:] + [{"step": steps}]):
        counts[decision["mask"]] = counts.get(decision["mask"], 0) + following["step"] - decision["step"]
    return counts
