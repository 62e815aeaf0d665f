"""Tasks given as arrays in memory (the Python API): images and labels instead of a dataset name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from supsup_cli.data import folders
from supsup_cli.data.tasks import TaskExamples
from supsup_cli.core.errors import BadInput


@dataclass(frozen=True)
class ArrayData:
    """What a task learned from arrays records as its data spec: their count and digest."""

    images: int
    sha256: str

    def default_name(self) -> str:
        return f"arrays-{self.sha256[:12]}"

    def to_plain(self) -> dict[str, Any]:
        return {"dataset": "arrays", "images": self.images, "sha256": self.sha256}


def as_uint8_images(images: Any) -> np.ndarray:
    """uint8 [N, H, W] or [N, C, H, W] from a numpy array or a tensor: uint8, or float in [0, 1]."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim not in (3, 4) or not array.shape[0]:
        raise BadInput(f"images must be N x H x W or N x C x H x W with N >= 1, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all() or \
            array.min() < 0 or array.max() > 1:
        raise BadInput(f"images must be uint8, or float with every value in [0, 1] (got {array.dtype})")
    return np.rint(array * 255).astype(np.uint8)


def network_pixels(images: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    """uint8 [N, C, H, W] in a network's input shape from images as `as_uint8_images` takes them, or
    N x pixels for a single-channel network (as `supsup infer` reads .npy files)."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim == 2 and input_shape[0] == 1 and array.shape[1] == int(np.prod(input_shape)):
        array = array.reshape(array.shape[0], *input_shape[1:])
    pixels = as_uint8_images(array)
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    if tuple(pixels.shape[1:]) != tuple(input_shape):
        raise BadInput(f"images are {'x'.join(map(str, pixels.shape[1:]))} (channels x height x width); the "
                       f"archive's network takes {'x'.join(map(str, input_shape))}")
    return pixels


def examples_of_arrays(images: Any, labels: Any, classes: tuple[int, ...] | None = None) -> TaskExamples:
    """A task's examples from arrays; its classes are the labels that occur (or `classes`), in order;
    the input normalization is measured on these images."""
    pixels = as_uint8_images(images)
    array = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    if array.shape != (pixels.shape[0],) or not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise BadInput(f"labels must be {pixels.shape[0]} non-negative integers, one per image, got shape "
                       f"{array.shape} of {array.dtype}")
    found = tuple(int(c) for c in np.unique(array))
    if classes is not None and not set(found) <= set(classes):
        raise BadInput(f"labels {sorted(set(found) - set(classes))} are not among the task's classes {list(classes)}")
    mean, std = folders.normalization(pixels[:, None] if pixels.ndim == 3 else pixels)
    return TaskExamples(pixels, array.astype(np.int64), classes or found, mean, std)


def data_of_arrays(examples: TaskExamples) -> ArrayData:
    digest = hashlib.sha256(np.ascontiguousarray(examples.images).tobytes())
    digest.update(np.ascontiguousarray(examples.labels).astype("<i8").tobytes())
    return ArrayData(len(examples.labels), digest.hexdigest())
