"""Image files: task examples exported as 8-bit PNGs, and users' inputs read back, defensively."""

from __future__ import annotations

import csv
import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from supsup_cli.data.tasks import TaskExamples
from supsup_cli.core.errors import BadInput, InputNotFound, SupsupError


def export_examples(examples: TaskExamples, count: int, out: Path) -> list[tuple[str, int]]:
    """Write the first `count` examples as PNGs plus labels.csv (file,label); returns the rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(min(count, len(examples.labels))):
        name = f"{index:05d}.png"
        Image.fromarray(_as_hwc(examples.images[index])).save(out / name)
        rows.append((name, int(examples.labels[index])))
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # join and awk expect \n, not csv's \r\n
        writer.writerow(["file", "label"])
        writer.writerows(rows)
    return rows


def _as_hwc(image: np.ndarray) -> np.ndarray:
    """[H, W] stays grayscale; [C, H, W] becomes [H, W, C] (or [H, W] for one channel)."""
    if image.ndim == 3:
        image = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    return np.ascontiguousarray(image)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
MAX_ARRAY_ROWS = 1_000_000


@dataclass(frozen=True)
class InputImage:
    """One input: pixels as float32 [C, H, W] in [0, 1], or the reason it could not be read."""

    name: str
    pixels: np.ndarray | None = None
    error: SupsupError | None = None


def read_inputs(paths: list[Path], shape: tuple[int, int, int], resize: bool = False) -> list[InputImage]:
    """Image files, folders of them, and .npy arrays; each bad one is reported, not fatal."""
    inputs: list[InputImage] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            inputs.extend(_read_one(file, shape, resize) for file in files)
        elif path.suffix.lower() == ".npy":
            inputs.extend(_read_array(path, shape))
        else:
            inputs.append(_read_one(path, shape, resize))
    return inputs


def _read_one(path: Path, shape: tuple[int, int, int], resize: bool) -> InputImage:
    try:
        return InputImage(str(path), pixels=_decode(path, shape, resize))
    except SupsupError as error:
        return InputImage(str(path), error=error)


def _decode(path: Path, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    channels, height, width = shape
    _check_file(path)
    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG"):
                raise BadInput(f"{path}: not a PNG or JPEG image ({image.format})")
            if image.width * image.height > MAX_PIXELS:
                raise BadInput(f"{path}: {image.width}x{image.height} pixels is more than an input may have")
            if (image.width, image.height) != (width, height) and not resize:
                raise BadInput(f"{path}: image is {image.width}x{image.height}, the archive's network takes "
                               f"{width}x{height} (--resize to resize)")
            image.load()
            converted = image.convert("L" if channels == 1 else "RGB")
            if converted.size != (width, height):
                converted = converted.resize((width, height), Image.BILINEAR)
            pixels = np.asarray(converted, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInput(f"{path}: cannot decode the image ({_first_line(exc)})") from None
    return pixels[None] if channels == 1 else np.moveaxis(pixels, -1, 0)


def _read_array(path: Path, shape: tuple[int, int, int]) -> list[InputImage]:
    """An N x H x W or N x (H*W) array, uint8 or float in [0, 1]; its rows are named file.npy[i]."""
    try:
        _check_file(path)
        array = _load_npy(path, shape)
    except SupsupError as error:
        return [InputImage(str(path), error=error)]
    return [InputImage(f"{path}[{row}]", pixels=array[row]) for row in range(array.shape[0])]


def _load_npy(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    channels, height, width = shape
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            declared, _, dtype = reader(handle)
            payload = path.stat().st_size - handle.tell()
    except (ValueError, OSError, SyntaxError, TypeError, KeyError, IndexError, tokenize.TokenError) as exc:
        # numpy parses the header with ast.literal_eval: damaged headers fail in many ways
        raise BadInput(f"{path}: not a valid .npy file ({_first_line(exc)})") from None
    pixels = channels * height * width
    wanted = {(height, width), (pixels,)} if channels == 1 else {(channels, height, width), (pixels,)}
    if len(declared) < 2 or tuple(declared[1:]) not in wanted:
        raise BadInput(f"{path}: array of shape {tuple(declared)}; expected N x {height} x {width} or N x {pixels}")
    if dtype not in (np.dtype("u1"), np.dtype("<f4"), np.dtype("<f8")):
        raise BadInput(f"{path}: array dtype {dtype}; expected uint8 or float in [0, 1]")
    if not 0 < declared[0] <= MAX_ARRAY_ROWS:
        raise BadInput(f"{path}: {declared[0]} rows; between 1 and {MAX_ARRAY_ROWS} are accepted")
    if payload != declared[0] * pixels * dtype.itemsize:
        raise BadInput(f"{path}: not a valid .npy file (it holds {payload} bytes of data, "
                       f"its header declares {declared[0] * pixels * dtype.itemsize})")
    array = np.load(path, allow_pickle=False).reshape(declared[0], channels, height, width)
    if dtype == np.dtype("u1"):
        return array.astype(np.float32) / 255.0
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise BadInput(f"{path}: float pixels must be finite and within [0, 1]")
    return array.astype(np.float32)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputNotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise BadInput(f"{path}: {size} bytes is more than an input may have")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
