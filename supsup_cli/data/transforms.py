"""Task transforms: pure functions of their parameters, recorded in the archive as plain data.

- permute SEED: output pixel i is input pixel perm[i], perm = supsup_cli.core.prng.permutation(SEED, H*W)
- rotate DEGREES: counterclockwise about the image centre, zero outside; bilinear and rounded to uint8
  (formats/supsup-v2.md, 3.5.1, says how closely this agrees with Pillow), or with resample "nearest"
  each output pixel copies its nearest source pixel (the paper's RotatedMNIST), exactly as specified
- classes C0,C1,...: keep only these labels; the task's j-th class is Cj
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from supsup_cli.core import prng
from supsup_cli.core.errors import ArchiveCorrupt, InvalidArgument


@dataclass(frozen=True)
class TaskData:
    dataset: str
    permute: int | None = None
    rotate: float | None = None
    classes: tuple[int, ...] | None = None
    resample: str = "bilinear"  # of --rotate: or "nearest"

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLINGS:
            raise InvalidArgument(f"`resample` must be bilinear or nearest, got {self.resample!r}")
        if self.resample != "bilinear" and self.rotate is None:
            raise InvalidArgument("`resample` chooses how `rotate` samples pixels: give `rotate`")
        if self.permute is not None and self.rotate is not None:
            raise InvalidArgument("`permute` and `rotate` conflict: a task has one pixel transform")
        if self.permute is not None and not 0 <= self.permute < 2**64:
            raise InvalidArgument("`permute` takes a seed in [0, 2**64)")
        if self.rotate is not None and not math.isfinite(self.rotate):
            raise InvalidArgument("`rotate` takes a finite number of degrees")
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)):
            raise InvalidArgument("`classes` takes distinct class labels, e.g. 0,1")

    def check_classes(self, num_classes: int) -> None:
        bad = [c for c in self.classes or () if not 0 <= c < num_classes]
        if bad:
            raise InvalidArgument(f"`classes` {bad[0]} is out of range: {self.dataset} has classes 0-{num_classes - 1}")

    def task_classes(self, num_classes: int) -> tuple[int, ...]:
        return self.classes if self.classes is not None else tuple(range(num_classes))

    def default_name(self) -> str:
        parts = [self.dataset]
        if self.permute is not None:
            parts.append(f"permute-{self.permute}")
        if self.rotate is not None:
            parts.append(f"rotate-{self.rotate:g}" + ("-nearest" if self.resample == "nearest" else ""))
        if self.classes is not None:
            parts.append("classes-" + "-".join(map(str, self.classes)))
        return "-".join(parts)

    def to_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"dataset": self.dataset}
        if self.permute is not None:
            plain["permute"] = self.permute
        if self.rotate is not None:
            plain["rotate"] = self.rotate
        if self.resample != "bilinear":  # absent: bilinear, as every archive before it was written
            plain["resample"] = self.resample
        if self.classes is not None:
            plain["classes"] = list(self.classes)
        return plain

    @staticmethod
    def from_plain(plain: dict[str, Any]) -> "TaskData":
        """The task of a record's data spec, as the archive's reader checked it (fields, ranges:
        archive.records.data_spec_problem, the one place of those rules)."""
        try:
            classes = plain.get("classes")
            return TaskData(
                dataset=str(plain["dataset"]),
                permute=plain.get("permute"),
                rotate=None if plain.get("rotate") is None else float(plain["rotate"]),
                classes=None if classes is None else tuple(int(c) for c in classes),
                resample=str(plain.get("resample", "bilinear")),
            )
        except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
            raise ArchiveCorrupt(f"task data spec is invalid ({exc})") from None


def keep_classes(task: TaskData, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The examples of the task's classes, with their original labels."""
    if task.classes is None:
        return images, labels
    keep = np.isin(labels, task.classes)
    return images[keep], labels[keep]


def transform_pixels(task: TaskData, images: np.ndarray) -> np.ndarray:
    """The task's pixel transform of uint8 images (same shape)."""
    if task.permute is not None:
        images = permute(images, task.permute)
    if task.rotate is not None:
        images = rotate(images, task.rotate, task.resample)
    return images


def permute(images: np.ndarray, seed: int) -> np.ndarray:
    """The same pixel permutation in every channel of [N, H, W] or [N, C, H, W] images."""
    pixels = images.shape[-1] * images.shape[-2]
    flat = images.reshape(-1, pixels)
    return np.take(flat, prng.permutation(seed, pixels), axis=1).reshape(images.shape)


RESAMPLINGS = ("bilinear", "nearest")


def rotate(images: np.ndarray, degrees: float, resample: str = "bilinear") -> np.ndarray:
    """Rotate [N, H, W] or [N, C, H, W] uint8 images through one sparse sampling matrix shared by all."""
    height, width = images.shape[-2:]
    if resample == "nearest":
        flat = images.reshape(-1, height * width)
        source = nearest_sources(height, width, degrees)
        out = np.where(source >= 0, flat[:, np.maximum(source, 0)], 0)
        return out.astype(np.uint8).reshape(images.shape)
    out = images.reshape(-1, height * width).astype(np.float32) @ rotation_matrix(height, width, degrees)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8).reshape(images.shape)


def _source_coordinates(height: int, width: int, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel (row-major) comes from, in float64, evaluated in exactly this order."""
    theta = math.radians(degrees)
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64),
                             indexing="ij")
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    # Inverse map: the source of output pixel (r, c) is it rotated clockwise on screen (y axis down).
    x, y = (cols - cx).reshape(-1), (rows - cy).reshape(-1)
    src_x = math.cos(theta) * x - math.sin(theta) * y + cx
    src_y = math.sin(theta) * x + math.cos(theta) * y + cy
    return src_x, src_y


def nearest_sources(height: int, width: int, degrees: float) -> np.ndarray:
    """The flat index of each output pixel's nearest source pixel, -1 outside the image. Nearest is
    floor(coordinate + 0.5): a tie goes up, and there is no tie the evaluation order could decide."""
    src_x, src_y = _source_coordinates(height, width, degrees)
    sx, sy = np.floor(src_x + 0.5).astype(np.int64), np.floor(src_y + 0.5).astype(np.int64)
    inside = (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
    return np.where(inside, sy * width + sx, -1)


def rotation_matrix(height: int, width: int, degrees: float) -> scipy.sparse.csr_matrix:
    """M with out = in @ M: column j holds the bilinear weights of output pixel j's source."""
    src_x, src_y = _source_coordinates(height, width, degrees)
    x0, y0 = np.floor(src_x), np.floor(src_y)
    fx, fy = src_x - x0, src_y - y0
    sources, targets, weights = [], [], []
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        sy, sx = (y0 + dy).astype(np.int64), (x0 + dx).astype(np.int64)
        inside = (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
        sources.append((sy * width + sx)[inside])
        targets.append(np.flatnonzero(inside))
        weights.append(weight[inside])
    size = height * width
    return scipy.sparse.csr_matrix(
        (np.concatenate(weights).astype(np.float32), (np.concatenate(sources), np.concatenate(targets))),
        shape=(size, size),
    )
