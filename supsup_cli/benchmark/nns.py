"""Scenario NNs: one stream of tasks, never labelled; masks allocated when the model is uncertain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from supsup_cli import archive
from supsup_cli.engine import superposition
from supsup_cli.api.autolearn import learn_auto
from supsup_cli.benchmark.listener import Listener
from supsup_cli.benchmark.suites import DEFAULT_TASKS, suite_tasks
from supsup_cli.benchmark.evaluation import EvalSets, Timed
from supsup_cli.benchmark.matrices import Rows
from supsup_cli.data import datasets
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.api.learn import LearnRequest
from supsup_cli.api.base import base_network
from supsup_cli.engine.models import real_outputs
from supsup_cli.engine.training import TrainConfig
from supsup_cli.benchmark.config import BenchmarkConfig, checkpoints, planned_steps
from supsup_cli.benchmark.run import Run, create_archive, evaluate_row


def stream_without_task_ids(path: Path, config: BenchmarkConfig, device: torch.device, listener: Listener) -> Run:
    """Scenario NNs: the tasks arrive as one stream, never labelled; masks are allocated when uncertain."""
    if path.exists():
        raise InvalidArgument(f"--scenario nns learns a stream from scratch: {path} already exists")
    spec = create_archive(path, config)
    datas = suite_tasks(config.suite, config.tasks or DEFAULT_TASKS[config.suite], config.seed)
    evals = EvalSets(datas, config.eval_images, config.seed, spec, device, config.data_dir)
    real = sorted({o for d in datas
                   for o in real_outputs(spec, d.task_classes(datasets.spec_of(d.dataset).num_classes))})
    listener.plan(planned_steps(config, len(datas), len(datas)),
                  sum(c * c for c in checkpoints(len(datas))))
    rows = Rows(config.protocols, len(datas))
    timers: dict[str, Timed] = {}
    mapping, trained_on, seconds = [], [], []
    for index, data in enumerate(datas):
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
        if index + 1 in checkpoints(len(datas)):
            listener.start(f"evaluating after {index + 1} tasks", 0, (index + 1) ** 2)
            with archive.Archive(path) as opened:
                net, packed = base_network(opened, config.module), [torch.from_numpy(p) for p in opened.packed_masks()]
            sup = superposition.superposition(net.to(device), packed, real)
            rows.add(evaluate_row(sup, evals, index + 1, config, timers, mapping))
    extra = {
        "masks_allocated": int(packed[0].shape[0]),
        "task_to_mask": mapping,
        "one_mask_per_task": all(len(t) == 1 for t in trained_on) and len(set(mapping)) == len(mapping),
        "steps_by_mask": [{str(m): s for m, s in t.items()} for t in trained_on],
    }
    return Run(spec, net.cpu(), datas, evals, config.steps, rows, timers, seconds, extra)


def _steps_by_mask(decisions: list[dict[str, Any]], steps: int) -> dict[int, int]:
    """How many of a stream segment's batches trained each mask (a decision holds until the next)."""
    counts: dict[int, int] = {}
    for decision, following in zip(decisions, decisions[1:] + [{"step": steps}]):
        counts[decision["mask"]] = counts.get(decision["mask"], 0) + following["step"] - decision["step"]
    return counts
