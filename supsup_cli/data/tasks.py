"""A task's examples: a dataset split with the task's transform applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supsup_cli.data import datasets, transforms
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import DataUnavailable


@dataclass(frozen=True)
class TaskExamples:
    images: np.ndarray  # [N, H, W] uint8 (one channel) or [N, C, H, W]
    labels: np.ndarray  # [N] int64, the dataset's own labels
    classes: tuple[int, ...]  # the task's classes, in output order
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False  # random crops and flips when training

    @property
    def image_shape(self) -> tuple[int, int, int]:
        shape = self.images.shape[1:]
        return (1, *shape) if len(shape) == 2 else tuple(shape)


def load_task(data: TaskData, split: str, data_dir: Path | None = None,
              pick: Callable[[int], np.ndarray] | None = None) -> TaskExamples:
    """The task's examples; with `pick`, only the rows that `pick(count)` chooses among the `count`
    examples of the task's classes (transformed after choosing: a few test images cost little)."""
    spec = datasets.spec_of(data.dataset)
    data.check_classes(spec.num_classes)
    images, labels = datasets.load(data.dataset, split, data_dir)
    images, labels = transforms.keep_classes(data, images, labels)
    if pick is not None:
        rows = pick(len(labels))
        images, labels = images[rows], labels[rows]
    images = transforms.transform_pixels(data, images)
    if not len(labels):
        raise DataUnavailable(f"{data.dataset} {split}: no examples of classes {list(data.classes or [])}")
    mean, std = datasets.normalization(data.dataset, data_dir)
    return TaskExamples(images, labels, data.task_classes(spec.num_classes), mean, std, spec.augment)
