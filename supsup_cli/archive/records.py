"""A task's metadata: plain JSON data, validated field by field when read from an archive."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from supsup_cli.core.errors import ArchiveCorrupt

MAX_RECORD_BYTES = 64 * 1024
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class TaskRecord:
    name: str
    data: dict[str, Any]  # the data spec, as written by supsup_cli.data.transforms.TaskData.to_plain
    classes: tuple[int, ...]  # the label of each real output neuron, in order
    mean: tuple[float, ...]  # per-channel normalization of inputs in [0, 1]
    std: tuple[float, ...]
    density: tuple[float, ...]  # fraction of ones in each mask site
    test_accuracy: float | None = None
    mask_sha256: str | None = None  # of the packed mask bits of every site, in order: identifies the mask
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    training: dict[str, Any] = field(default_factory=dict)  # free-form: steps, lr, seed, seconds...

    def to_json(self) -> bytes:
        plain = asdict(self)
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    def overall_density(self, site_sizes: list[int]) -> float:
        """Fraction of ones over all mask sites together."""
        return sum(d * n for d, n in zip(self.density, site_sizes)) / sum(site_sizes)

    @staticmethod
    def from_json(raw: bytes, sites: int) -> "TaskRecord":
        try:
            plain = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ArchiveCorrupt(f"task record is not valid JSON ({type(exc).__name__})") from None
        return _validated(plain, sites)


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or name.strip() != name:
        raise ValueError(f"task names must be 1-{MAX_NAME_CHARS} printable characters without surrounding spaces")
    if name.isdecimal():
        raise ValueError("task names must not be all digits (they would read as task indices)")
    return name


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... (shortened to stay a valid name) if it is taken."""
    if base not in taken:
        return base
    suffix = 2
    while True:
        tail = f"-{suffix}"
        candidate = base[: MAX_NAME_CHARS - len(tail)].rstrip() + tail
        if candidate not in taken:
            return candidate
        suffix += 1


def _validated(plain: Any, sites: int) -> TaskRecord:
    def fail(what: str) -> ArchiveCorrupt:
        return ArchiveCorrupt(f"task record: {what}")

    if not isinstance(plain, dict):
        raise fail("not an object")
    try:
        name = check_name(plain["name"]) if isinstance(plain.get("name"), str) else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if name is None:
        raise fail("missing name")
    for key in ("data", "training"):
        if not isinstance(plain.get(key), dict):
            raise fail(f"{key} is not an object")
    classes = _int_list(plain.get("classes"), fail, "classes")
    if not 1 <= len(classes) <= 100_000 or min(classes) < 0:
        raise fail("classes must be 1 to 100000 non-negative integers")
    mean = _float_list(plain.get("mean"), fail, "mean")
    std = _float_list(plain.get("std"), fail, "std")
    if not 1 <= len(mean) == len(std) <= 16 or min(std) <= 0:
        raise fail("mean/std must be matching per-channel lists with positive std")
    density = _float_list(plain.get("density"), fail, "density")
    if len(density) != sites or not all(0.0 <= d <= 1.0 for d in density):
        raise fail(f"density must list {sites} fractions")
    accuracy = plain.get("test_accuracy")
    if accuracy is not None and not (_is_number(accuracy) and 0.0 <= accuracy <= 1.0):
        raise fail("test_accuracy must be null or a fraction")
    mask_digest = plain.get("mask_sha256")
    if mask_digest is not None and not (isinstance(mask_digest, str) and len(mask_digest) == 64
                                        and all(c in "0123456789abcdef" for c in mask_digest)):
        raise fail("mask_sha256 must be null or 64 lowercase hex digits")
    created = plain.get("created")
    if not isinstance(created, str) or len(created) > 64 or not _is_time(created):
        raise fail("created is not an ISO 8601 time of at most 64 characters")
    problem = data_spec_problem(plain["data"], tuple(classes))
    if problem is not None:
        raise fail(f"data: {problem}")
    return TaskRecord(
        name=name,
        data=plain["data"],
        classes=tuple(classes),
        mean=tuple(mean),
        std=tuple(std),
        density=tuple(density),
        test_accuracy=None if accuracy is None else float(accuracy),
        mask_sha256=mask_digest,
        created=created,
        training=plain["training"],
    )


BUILT_IN_DATASETS = ("mnist", "fashion-mnist", "kmnist", "cifar100")
_TRANSFORM_FIELDS = {"dataset", "permute", "rotate", "classes", "resample"}
_ARRAYS_FIELDS = {"dataset", "images", "sha256"}
RESAMPLINGS = ("bilinear", "nearest")


def data_spec_problem(data: dict[str, Any], classes: tuple[int, ...]) -> str | None:
    """What is wrong with a record's data spec (formats/supsup-v4.md, 3.5.1), or None.

    A built-in dataset or `folder:ROOT` with its transform fields; or `arrays` (a task learned from
    images in memory) with the count and digest of its training examples. A field this list does
    not know, an unknown dataset, `resample` without `rotate`, a sampling other than bilinear and
    nearest, or `classes` other than the record's make the record, and so the archive, damaged."""
    dataset = data.get("dataset")
    if not isinstance(dataset, str):
        return "dataset is not a string"
    if dataset == "arrays":
        unknown = set(data) - _ARRAYS_FIELDS
        if unknown:
            return f"fields this supsup does not know ({', '.join(sorted(unknown))})"
        images, digest = data.get("images"), data.get("sha256")
        if not (isinstance(images, int) and not isinstance(images, bool) and images >= 1):
            return "arrays: images must be a positive integer (the number of training images)"
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            return "arrays: sha256 must be 64 lowercase hex digits"
        return None
    if dataset not in BUILT_IN_DATASETS and not (dataset.startswith("folder:") and len(dataset) > len("folder:")):
        return f"unknown dataset {dataset!r}"
    unknown = set(data) - _TRANSFORM_FIELDS
    if unknown:
        return f"fields this supsup does not know ({', '.join(sorted(unknown))})"
    permute, rotate = data.get("permute"), data.get("rotate")
    if permute is not None and not (isinstance(permute, int) and not isinstance(permute, bool)
                                    and 0 <= permute < 2**64):
        return "permute must be an integer seed in [0, 2**64)"
    if rotate is not None and not _is_number(rotate):
        return "rotate must be a finite number of degrees"
    if permute is not None and rotate is not None:
        return "permute and rotate together (a task has one pixel transform)"
    if "resample" in data:
        if data["resample"] not in RESAMPLINGS:
            return f"resample must be one of {', '.join(RESAMPLINGS)}, got {data['resample']!r}"
        if rotate is None:
            return "resample without rotate"
    if "classes" in data:
        listed = data["classes"]
        if not isinstance(listed, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in listed) \
                or tuple(listed) != classes:
            return "classes must list the record's classes, in order"
    return None


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_list(value: Any, fail, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise fail(f"{what} is not a list of integers")
    return value


def _float_list(value: Any, fail, what: str) -> list[float]:
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        raise fail(f"{what} is not a list of numbers")
    return [float(v) for v in value]


def mask_sha256(packed: list) -> str:
    """SHA-256 of the bit-packed masks (little-endian bit order) of every site, concatenated."""
    digest = hashlib.sha256()
    for site in packed:
        digest.update(bytes(site))
    return digest.hexdigest()
