"""Users' own images: `--data folder:ROOT` with ROOT/train/<class>/*.png and ROOT/test/<class>/*.png.

Classes are the subfolder names in sorted order (labels 0, 1, ...); every image is converted to RGB
and must have the size of the first one. Normalization is measured on the training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from supsup_cli.core.errors import DataUnavailable, InputNotFound

PREFIX = "folder:"
SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_IMAGES = 200_000
MAX_PIXELS = 1024 * 1024


def is_folder(name: str) -> bool:
    return name.startswith(PREFIX)


def root(name: str) -> Path:
    return Path(name[len(PREFIX):]).expanduser()


def classes(name: str) -> list[str]:
    if not root(name).is_dir():
        raise InputNotFound(f"{root(name)}: no such folder (--data folder:PATH takes PATH/train/<class>/*.png "
                            "and PATH/test/<class>/*.png)")
    train = root(name) / "train"
    if not train.is_dir():
        raise DataUnavailable(f"{root(name)}: no train/ folder with one subfolder per class")
    found = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not found:
        raise DataUnavailable(f"{train}: no class subfolders")
    return found


def load(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 3, H, W] uint8, labels [N] int64) of one split."""
    names = classes(name)
    images, labels, shape = [], [], None
    for label, class_name in enumerate(names):
        folder = root(name) / split / class_name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES) if folder.is_dir() else []
        for path in files:
            pixels = _read(path)
            shape = shape or pixels.shape
            if pixels.shape != shape:
                raise DataUnavailable(f"{path}: {pixels.shape[2]}x{pixels.shape[1]} pixels, but the first image "
                                      f"of {root(name)} has {shape[2]}x{shape[1]}")
            images.append(pixels)
            labels.append(label)
            if len(images) > MAX_IMAGES:
                raise DataUnavailable(f"{root(name)}: more than {MAX_IMAGES} images")
    if not images:
        raise DataUnavailable(f"{root(name)}/{split}: no images")
    return np.stack(images), np.array(labels, dtype=np.int64)


def _read(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise DataUnavailable(f"{path}: {image.width}x{image.height} is too large")
            return np.moveaxis(np.asarray(image.convert("RGB"), dtype=np.uint8), -1, 0)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataUnavailable(f"{path}: cannot read the image ({exc})") from None


def normalization(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pixels = images.astype(np.float64) / 255.0
    mean = pixels.mean(axis=(0, 2, 3))
    std = np.maximum(pixels.std(axis=(0, 2, 3)), 1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
