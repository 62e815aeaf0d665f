"""Accuracy of an archive's tasks with the task given (GG) and inferred (GNu), on held-out images."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from supsup_cli.engine import hopfield, inference, superposition
from supsup_cli.core import prng
from supsup_cli.data.tasks import TaskExamples, load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import MaskedNet, batches_of, normalize, real_outputs
from supsup_cli.core.registry import ArchSpec

SAME_TASK_BATCH = 128  # the paper's "full batch": one task inferred per batch of 128 images


@dataclass(frozen=True)
class EvalSet:
    """One task's evaluation images, normalized, on the device."""

    x: torch.Tensor
    labels: torch.Tensor  # the dataset's own labels
    classes: tuple[int, ...]
    outputs: tuple[int, ...]  # the output neuron of each class

    @staticmethod
    def of(examples: TaskExamples, count: int | None, spec: ArchSpec, device: torch.device) -> "EvalSet":
        """`count` images spread evenly over the split (the first ones are not typical), or all of them."""
        total = len(examples.labels)
        rows = np.arange(total) if count is None or count >= total else \
            np.linspace(0, total - 1, count).round().astype(np.int64)
        images = torch.from_numpy(examples.images[rows])
        return EvalSet(normalize(images, examples.mean, examples.std).to(device),
                       torch.from_numpy(examples.labels[rows]).to(device),
                       examples.classes, tuple(real_outputs(spec, examples.classes)))

    @staticmethod
    def of_task(data: TaskData, count: int | None, seed: int, spec: ArchSpec, device: torch.device,
                data_dir: Path | None = None) -> "EvalSet":
        """A task's own `count` test images (or all of them): one drawn in each of `count` equal parts
        of the split, by a draw that is the task's own (`seed`), so that tasks' difficulty averages out."""
        pick = None if count is None else (lambda total: sample_rows(total, count, seed))
        return EvalSet.of(load_task(data, "test", data_dir, pick=pick), None, spec, device)

    def predicted_classes(self, logits: torch.Tensor) -> torch.Tensor:
        best = logits[:, list(self.outputs)].argmax(1)
        return torch.tensor(self.classes, device=logits.device)[best]


BLOCK_IMAGES = 2048  # evaluation images inferred together: the masks' cost is shared by a block


class EvalSets:
    """Each task's evaluation images (its own draw of --eval-images, or its whole test split), built
    when first needed and kept within a memory budget, so that memory does not grow with the tasks."""

    BUDGET_BYTES = 512 * 1024 * 1024

    def __init__(self, datas: list[TaskData], count: int | None, seed: int, spec: ArchSpec,
                 device: torch.device, data_dir: Path | None = None) -> None:
        self.datas, self.count, self.spec, self.device, self.data_dir = datas, count, spec, device, data_dir
        self.seeds = [prng.task_seed(seed, j, f"{d.default_name()}/evaluation", seed) for j, d in enumerate(datas)]
        self._kept: OrderedDict[int, EvalSet] = OrderedDict()

    def __getitem__(self, task: int) -> EvalSet:
        if task in self._kept:
            self._kept.move_to_end(task)
            return self._kept[task]
        made = EvalSet.of_task(self.datas[task], self.count, self.seeds[task], self.spec, self.device, self.data_dir)
        self._kept[task] = made
        while len(self._kept) > 1 and sum(e.x.numel() * 4 for e in self._kept.values()) > self.BUDGET_BYTES:
            self._kept.popitem(last=False)
        return made

    def all(self) -> list[EvalSet]:
        return [self[j] for j in range(len(self.datas))]

    def blocks(self, count: int) -> list[list[int]]:
        """Tasks 0..count-1 in runs of consecutive tasks of at most BLOCK_IMAGES images (one at least)."""
        blocks: list[list[int]] = [[]]
        images = 0
        for task in range(count):
            size = len(self[task].labels)
            if blocks[-1] and images + size > BLOCK_IMAGES:
                blocks.append([])
                images = 0
            blocks[-1].append(task)
            images += size
        return blocks


def sample_rows(total: int, count: int, seed: int) -> np.ndarray:
    """`count` of range(total), increasing: row i is drawn uniformly from [i * total // count,
    (i + 1) * total // count) by word i of stream 0 of the generator (prng) seeded with `seed`."""
    if count >= total:
        return np.arange(total)
    edges = np.arange(count + 1, dtype=np.int64) * total // count
    words = prng.stream_words(seed, 0, count)
    return edges[:-1] + (words % (edges[1:] - edges[:-1]).astype(np.uint64)).astype(np.int64)


def all_real_outputs(evals: list[EvalSet]) -> list[int]:
    """Every output neuron that is some evaluated task's class."""
    return sorted({o for e in evals for o in e.outputs})


@dataclass
class Timed:
    images: int = 0
    seconds: float = 0.0

    def add(self, images: int, seconds: float) -> None:
        self.images += images
        self.seconds += seconds

    @property
    def per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds else None


def gg_accuracy(sup: superposition.Superposition, task: int, evals: EvalSet, timer: Timed) -> float:
    started = time.perf_counter()
    chosen = torch.full((len(evals.labels),), task, device=evals.x.device)
    logits = superposition.task_logits(sup, evals.x, chosen)
    timer.add(len(evals.labels), time.perf_counter() - started)
    return fraction(evals.predicted_classes(logits) == evals.labels)


def gnu_accuracy(sup: superposition.Superposition, evals: list[EvalSet], method: str, kind: str, same_task: bool,
                 timer: Timed, masks: list[int] | None = None) -> tuple[list[float], list[float]]:
    """Per task j: accuracy (mask and class both right) and mask-inference accuracy, over sup's masks.

    `masks[j]` is the mask that stands for task j (default j: one mask per task, in order).
    """
    x = torch.cat([e.x for e in evals])
    started = time.perf_counter()
    if same_task:
        chosen = torch.cat([inference.infer_tasks(sup, part, method, kind, same_task=True)
                            for e in evals for part in e.x.split(SAME_TASK_BATCH)])
    else:
        chosen = inference.infer_tasks(sup, x, method, kind)
    logits = superposition.task_logits(sup, x, chosen)
    timer.add(x.shape[0], time.perf_counter() - started)
    accuracies, task_accuracies, start = [], [], 0
    for j, e in enumerate(evals):
        rows = slice(start, start + len(e.labels))
        start += len(e.labels)
        right_task = chosen[rows] == (j if masks is None else masks[j])
        predicted = evals[j].predicted_classes(logits[rows])
        accuracies.append(fraction(right_task & (predicted == e.labels)))
        task_accuracies.append(fraction(right_task))
    return accuracies, task_accuracies


def paper_gnu_accuracy(sup: superposition.Superposition, evals: list[EvalSet], method: str, kind: str, timer: Timed,
                       seeds: list[int], masks: list[int] | None = None,
                       shared_labels: bool = False) -> tuple[list[float], list[float]]:
    """The paper's code's GNu: each task's images in shuffled batches of SAME_TASK_BATCH, the task
    inferred from the first image of each batch and applied to the whole batch, the class the
    arg-max over all s outputs. Per task j: accuracy, and the share of its images whose batch got
    the right task. Without task ids (scenario NNs, `shared_labels`), an image counts when its
    class is right, whichever mask answered.

    The batch order of task j is a permutation drawn by torch's generator seeded with `seeds[j]`."""
    orders = [torch.randperm(len(e.labels), generator=torch.Generator().manual_seed(seed)).to(e.x.device)
              for e, seed in zip(evals, seeds)]
    batches = [order.split(SAME_TASK_BATCH) for order in orders]
    started = time.perf_counter()
    firsts = torch.cat([e.x[torch.stack([b[0] for b in bs])] for e, bs in zip(evals, batches)])
    chosen_per_batch = inference.infer_tasks(sup, firsts, method, kind).tolist()
    accuracies, task_accuracies, position = [], [], 0
    for j, (e, bs) in enumerate(zip(evals, batches)):
        truth = j if masks is None else masks[j]
        chosen = torch.cat([torch.full((len(b),), chosen_per_batch[position + i], device=e.x.device)
                            for i, b in enumerate(bs)])
        position += len(bs)
        order = torch.cat(bs)
        logits = superposition.task_logits(sup, e.x[order], chosen)
        targets = torch.tensor(e.outputs, device=e.x.device)[_class_positions(e, e.labels[order])]
        right_class = logits.argmax(1) == targets
        right_task = chosen == truth
        accuracies.append(fraction(right_class if shared_labels else right_task & right_class))
        task_accuracies.append(fraction(right_task))
    timer.add(sum(len(e.labels) for e in evals), time.perf_counter() - started)
    return accuracies, task_accuracies


def paper_gg_accuracy(sup: superposition.Superposition, task: int, evals: EvalSet) -> float:
    """Task given, class the arg-max over all s outputs (the paper's code)."""
    chosen = torch.full((len(evals.labels),), task, device=evals.x.device)
    logits = superposition.task_logits(sup, evals.x, chosen)
    targets = torch.tensor(evals.outputs, device=evals.x.device)[_class_positions(evals, evals.labels)]
    return fraction(logits.argmax(1) == targets)


def _class_positions(evals: EvalSet, labels: torch.Tensor) -> torch.Tensor:
    """Each label's position among the task's classes."""
    lookup = torch.full((max(evals.classes) + 1,), -1, dtype=torch.int64, device=labels.device)
    lookup[list(evals.classes)] = torch.arange(len(evals.classes), device=labels.device)
    return lookup[labels]


def fraction(hits: torch.Tensor) -> float:
    """Exact count over total (no float32 rounding in reported accuracies)."""
    return int(hits.sum()) / max(1, hits.numel())


def hopfield_accuracy(sup: superposition.Superposition, reservoir: hopfield.Reservoir, evals: list[EvalSet],
                      steps: int) -> dict[str, Any]:
    """Each task's mask recovered from its test images alone; accuracy with it and with the explicit mask."""
    stored = [[m.bool().cpu() for m in (sup.masks(site, t, t + 1)[0] for site in range(len(sup.packed)))]
              for t in range(sup.tasks)]
    real = all_real_outputs(evals)
    tasks = []
    for j, e in enumerate(evals):
        recovery = hopfield.recover(sup.net, reservoir, e.x, steps=steps, compare_with=stored)
        distances = [hopfield.hamming(recovery.masks, masks) for masks in stored]
        tasks.append({
            "task": j,
            "recovered_accuracy": _all_classes_accuracy(sup.net, recovery.masks, e, real),
            "explicit_accuracy": _all_classes_accuracy(sup.net, stored[j], e, real),
            "recovered_equals_stored": distances[j] == 0,
            "closest_task": min(range(len(stored)), key=distances.__getitem__),
            "hamming_to_own_mask": distances[j],
            "curve": recovery.distances,  # per step: Hamming distance to every stored mask (paper, Figure 7)
        })
    return {
        "tasks": tasks,
        "avg_recovered_accuracy": sum(t["recovered_accuracy"] for t in tasks) / len(tasks),
        "avg_explicit_accuracy": sum(t["explicit_accuracy"] for t in tasks) / len(tasks),
        "exact_recoveries": sum(t["recovered_equals_stored"] for t in tasks),
        "steps": steps,
    }


@torch.no_grad()
def _all_classes_accuracy(net: MaskedNet, masks: list[torch.Tensor], e: EvalSet, real: list[int]) -> float:
    """GNu with global labels: arg-max over every task's classes, in the paper's batches of 64."""
    floats = [m.float().to(e.x.device) for m in masks]
    logits = torch.cat([net(part, floats) for part in batches_of(e.x, hopfield.BATCH)])[:, real]
    return fraction(torch.tensor(real, device=e.x.device)[logits.argmax(1)] == e.labels)
