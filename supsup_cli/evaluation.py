"""Accuracy of an archive's tasks with the task given (GG) and inferred (GNu), on held-out images."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from supsup_cli import inference
from supsup_cli.data.tasks import TaskExamples
from supsup_cli.models import normalize, real_outputs
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
