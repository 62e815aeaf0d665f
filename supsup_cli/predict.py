"""infer: read input files, find each one's task (or use the given one), and classify it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supsup_cli import archive, device as device_, inference
from supsup_cli.data.images import InputImage, read_inputs
from supsup_cli.errors import BadInput, SupsupError
from supsup_cli.models import MaskedNet, normalize, real_outputs
from supsup_cli.records import TaskRecord


@dataclass(frozen=True)
class InferRequest:
    path: Path
    inputs: list[Path]
    task: str | None = None  # given: scenario GG, no inference
    method: str = "one-shot"
    objective: str = "entropy"
    same_task: bool = False
    resize: bool = False
    device: str = "auto"


@dataclass
class Prediction:
    results: list[dict[str, Any]] = field(default_factory=list)  # one per readable input, in order
    failures: list[tuple[str, SupsupError]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def infer(request: InferRequest) -> Prediction:
    inference.check_choices(request.method, request.objective)
    device = device_.resolve(request.device)
    with archive.Archive(request.path) as opened:
        given = opened.task_index(request.task) if request.task is not None else None
        if given is None:
            opened.task_index("0")  # raises NoTasks on an empty archive
        spec, tasks, weights = opened.spec, opened.tasks, opened.base_weights()
        packed = [torch.from_numpy(p) for p in opened.packed_masks()] if given is None else \
            [torch.from_numpy(p)[None] for p in opened.packed_mask(given)]
    inputs = read_inputs(request.inputs, spec.input_shape, request.resize)
    prediction = Prediction(failures=[(i.name, i.error) for i in inputs if i.error is not None])
    readable = [i for i in inputs if i.pixels is not None]
    if not inputs:
        raise BadInput("no input images found (PNG, JPEG or .npy)")
    if not readable:
        return prediction
    mean, std = _shared_normalization(tasks if given is None else [tasks[given]], prediction.notes)
    x = normalize(torch.from_numpy(np.stack([i.pixels for i in readable])), mean, std).to(device)
    net = MaskedNet(spec, weights).to(device)
    candidates = list(range(len(tasks))) if given is None else [given]
    real = sorted({o for t in candidates for o in real_outputs(spec, tasks[t].classes)})
    sup = inference.superposition(net, packed, real)
    chosen = torch.zeros(len(readable), dtype=torch.long, device=device)
    if given is None:
        chosen = inference.infer_tasks(sup, x, request.method, request.objective, request.same_task)
    logits = inference.task_logits(sup, x, chosen).cpu()
    for image, row, local in zip(readable, logits, chosen.tolist()):
        prediction.results.append(_result(image, row, candidates[local], tasks[candidates[local]], spec))
    return prediction


def _result(image: InputImage, logits: torch.Tensor, task: int, record: TaskRecord, spec) -> dict[str, Any]:
    positions = real_outputs(spec, record.classes)
    probabilities = logits[positions].softmax(dim=0)
    best = int(probabilities.argmax())
    return {
        "input": image.name,
        "task": task,
        "task_name": record.name,
        "class": record.classes[best],
        "confidence": round(float(probabilities[best]), 6),
    }


def _shared_normalization(tasks: list[TaskRecord], notes: list[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Superposition needs one input normalization; tasks normally share their dataset's."""
    first = tasks[0]
    if any((t.mean, t.std) != (first.mean, first.std) for t in tasks):
        notes.append(f"tasks were trained with different input normalizations; using task 0's "
                     f"(mean {first.mean}, std {first.std})")
    return first.mean, first.std
