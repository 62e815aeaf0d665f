"""A task's examples: a dataset split with the task's transform applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supsup_cli.data import datasets, transforms
from supsup_cli.data.transforms import TaskData


@dataclass(frozen=True)
class TaskExamples:
    images: np.ndarray  # [N, H, W] uint8 (one channel) or [N, C, H, W]
    labels: np.ndarray  # [N] int64, the dataset's own labels
    classes: tuple[int, ...]  # the task's classes, in output order
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_task(data: TaskData, split: str, data_dir: Path | None = None) -> TaskExamples:
    spec = datasets.spec_of(data.dataset)
    data.check_classes(spec.num_classes)
    images, labels = datasets.load(data.dataset, split, data_dir)
    images, labels = transforms.apply(data, images, labels)
    return TaskExamples(images, labels, data.task_classes(spec.num_classes), spec.mean, spec.std)
