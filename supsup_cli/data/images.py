"""Image files: exporting task examples as 8-bit PNGs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from supsup_cli.data.tasks import TaskExamples


def export_examples(examples: TaskExamples, count: int, out: Path) -> list[tuple[str, int]]:
    """Write the first `count` examples as PNGs plus labels.csv (file,label); returns the rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(min(count, len(examples.labels))):
        name = f"{index:05d}.png"
        Image.fromarray(_as_hwc(examples.images[index])).save(out / name)
        rows.append((name, int(examples.labels[index])))
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        writer.writerows(rows)
    return rows


def _as_hwc(image: np.ndarray) -> np.ndarray:
    """[H, W] stays grayscale; [C, H, W] becomes [H, W, C] (or [H, W] for one channel)."""
    if image.ndim == 3:
        image = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    return np.ascontiguousarray(image)
