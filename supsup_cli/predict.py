"""infer: read input files, find each one's task (or use the given one), and classify it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supsup_cli import archive, device as device_, hopfield, inference, maskcodec
from supsup_cli.data.images import InputImage, read_inputs
from supsup_cli.errors import BadInput, InvalidArgument, SupsupError
from supsup_cli.learn import mask_digest
from supsup_cli.masks import unpack
from supsup_cli.models import MaskedNet, batches_of, build, normalize, real_outputs
from supsup_cli.records import TaskRecord
from supsup_cli.reservoir import reservoir_of


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
    hopfield: bool = False  # recover one mask for all inputs from the Hopfield reservoir
    hopfield_steps: int | None = None  # None: hopfield.STEPS


@dataclass
class Prediction:
    results: list[dict[str, Any]] = field(default_factory=list)  # one per readable input, in order
    failures: list[tuple[str, SupsupError]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def infer(request: InferRequest) -> Prediction:
    inference.check_choices(request.method, request.objective)
    device = device_.resolve(request.device)
    with archive.Archive(request.path) as opened:
        opened.task_index("0")  # raises NoTasks on an empty archive
        given = opened.task_index(request.task) if request.task is not None else None
        _check_mode(opened, request, given)
        spec, tasks, weights = opened.spec, opened.tasks, opened.base_weights()
        if request.hopfield:
            reservoir = reservoir_of(opened)
            explicit = opened.reservoir_info.explicit_masks
            stored = [_unpacked(opened, t) for t in range(len(tasks))] if explicit else None
        else:
            packed = [torch.from_numpy(p) for p in opened.packed_masks()] if given is None else \
                [torch.from_numpy(p)[None] for p in opened.packed_mask(given)]
            stats = [opened.stats(t) for t in ([given] if given is not None else range(len(opened.tasks)))]
    inputs = read_inputs(request.inputs, spec.input_shape, request.resize)
    prediction = Prediction(failures=[(i.name, i.error) for i in inputs if i.error is not None])
    readable = [i for i in inputs if i.pixels is not None]
    if not inputs:
        raise BadInput("no input images found (PNG, JPEG or .npy)")
    if not readable:
        return prediction
    if spec.norm == "batch" and len(readable) < 2:
        raise BadInput(f"{spec.name} normalizes each batch with its own statistics: give at least 2 images")
    mean, std = _shared_normalization(tasks if given is None else [tasks[given]], prediction.notes)
    x = normalize(torch.from_numpy(np.stack([i.pixels for i in readable])), mean, std).to(device)
    net = build(spec, weights).to(device)
    if request.hopfield:
        prediction.results = _hopfield_results(net, reservoir, x, readable, tasks, stored, request.hopfield_steps)
        return prediction
    candidates = list(range(len(tasks))) if given is None else [given]
    real = sorted({o for t in candidates for o in real_outputs(spec, tasks[t].classes)})
    sup = inference.superposition(net, packed, real, stats=stats if spec.norm == "running" else None)
    chosen = torch.zeros(len(readable), dtype=torch.long, device=device)
    if given is None:
        chosen = inference.infer_tasks(sup, x, request.method, request.objective, request.same_task)
    logits = inference.task_logits(sup, x, chosen).cpu()
    for image, row, local in zip(readable, logits, chosen.tolist()):
        prediction.results.append(_result(image, row, candidates[local], tasks[candidates[local]], spec))
    return prediction


def _check_mode(opened: archive.Archive, request: InferRequest, given: int | None) -> None:
    if request.hopfield:
        if given is not None:
            raise InvalidArgument("--hopfield recovers the task's mask: do not also give --task")
        if opened.reservoir_info is None:
            raise InvalidArgument(f"{opened.path}: no Hopfield reservoir yet (run 'supsup hopfield-store')")
    elif given is None and opened.spec.mask_on == "neurons":
        raise InvalidArgument(f"{opened.spec.name} masks neurons: infer its tasks with --hopfield, or give --task")
    elif given is not None and (opened.index.mask_codec[given] == maskcodec.NONE).any():
        raise InvalidArgument(f"task {given}'s mask is kept only in the Hopfield reservoir: use --hopfield")


def _unpacked(opened: archive.Archive, task: int) -> list[torch.Tensor]:
    return [unpack(torch.from_numpy(p), site.numel).bool() for p, site in zip(opened.packed_mask(task), opened.sites)]


def _hopfield_results(net: MaskedNet, reservoir: hopfield.Reservoir, x: torch.Tensor, readable: list[InputImage],
                      tasks: list[TaskRecord], stored: list[list[torch.Tensor]] | None,
                      steps: int | None) -> list[dict[str, Any]]:
    """One mask recovered from all inputs, then each input classified with it over every task's classes."""
    recovered = hopfield.recover(net, reservoir, x, steps=steps or hopfield.STEPS).masks
    if stored is not None:  # masks kept: the closest by Hamming distance
        distances = [hopfield.hamming(recovered, masks) for masks in stored]
        task = min(range(len(stored)), key=distances.__getitem__)
        distance: int | None = distances[task]
    else:  # masks dropped: only an exact match can be named, by the masks' digests
        digest = mask_digest([m.numpy() for m in recovered])
        task = next((i for i, t in enumerate(tasks) if t.mask_sha256 == digest), None)
        distance = 0 if task is not None else None
    masks = [m.float().to(x.device) for m in recovered]
    with torch.no_grad():
        logits = torch.cat([net(part, masks) for part in batches_of(x, hopfield.BATCH)]).cpu()
    real = sorted({o for t in tasks for o in real_outputs(net.spec, t.classes)})
    probabilities = logits[:, real].softmax(dim=1)
    results = []
    for image, row in zip(readable, probabilities):
        best = int(row.argmax())
        results.append({"input": image.name, "task": task, "task_name": None if task is None else tasks[task].name,
                        "class": real[best], "confidence": round(float(row[best]), 6), "hamming": distance})
    return results


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
