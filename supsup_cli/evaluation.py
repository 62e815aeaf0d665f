"""Accuracy of an archive's tasks with the task given (GG) and inferred (GNu), on held-out images."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from supsup_cli import hopfield, inference
from supsup_cli.data.tasks import TaskExamples
from supsup_cli.models import MaskedNet, batches_of, normalize, real_outputs
from supsup_cli.registry import ArchSpec

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

    def predicted_classes(self, logits: torch.Tensor) -> torch.Tensor:
        best = logits[:, list(self.outputs)].argmax(1)
        return torch.tensor(self.classes, device=logits.device)[best]


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


def gg_accuracy(sup: inference.Superposition, task: int, evals: EvalSet, timer: Timed) -> float:
    started = time.perf_counter()
    chosen = torch.full((len(evals.labels),), task, device=evals.x.device)
    logits = inference.task_logits(sup, evals.x, chosen)
    timer.add(len(evals.labels), time.perf_counter() - started)
    return fraction(evals.predicted_classes(logits) == evals.labels)


def gnu_accuracy(sup: inference.Superposition, evals: list[EvalSet], method: str, kind: str, same_task: bool,
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
    logits = inference.task_logits(sup, x, chosen)
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


def fraction(hits: torch.Tensor) -> float:
    """Exact count over total (no float32 rounding in reported accuracies)."""
    return int(hits.sum()) / max(1, hits.numel())


def hopfield_accuracy(sup: inference.Superposition, reservoir: hopfield.Reservoir, evals: list[EvalSet],
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
