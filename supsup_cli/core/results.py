"""The results of the library's verbs: dataclasses whose `to_dict()` is exactly what `--json` prints.

Torch-free. Each one shows a short summary as its `repr` (a notebook cell stays readable); the
whole result is in its fields and in `to_dict()`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

_R = TypeVar("_R", bound="_Result")


class _Result:
    _shown: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready values, key for key what the command's --json prints."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[_R], plain: dict[str, Any]) -> _R:
        """The result of a command's --json (or of `to_dict()`)."""
        return cls(**plain)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True, repr=False)
class StorageReport(_Result):
    """`supsup size`: bytes on disk and per task, beside the entropy bound, the paper's scheme and dense weights."""

    path: str
    tasks: int
    bytes_on_disk: int
    mask_bytes: int
    entropy_bound_bytes: float
    mask_to_entropy_bound: float | None
    csc_int16_bytes: int
    paper_scheme: dict[str, Any]
    dense_fp32_bytes_per_task: int
    base_network_fp32_bytes: int
    mask_bytes_per_task: float | None
    bytes_per_task: float | None
    bits_per_weight: float | None
    breakdown: dict[str, Any]
    layers: list[dict[str, Any]]
    _shown = ("tasks", "bytes_on_disk", "bytes_per_task", "bits_per_weight", "mask_to_entropy_bound")


@dataclass(frozen=True, repr=False)
class VerifyReport(_Result):
    """`supsup inspect --verify`: every checksum, and which tasks are damaged."""

    path: str
    content_sha256_ok: bool
    structure_ok: bool
    weights_sha256_ok: bool | None
    tasks: list[dict[str, Any]]
    damaged: list[int]
    problem: str | None
    ok: bool
    _shown = ("ok", "damaged", "problem")


@dataclass(frozen=True, repr=False)
class MergeResult(_Result):
    """`supsup merge`: the merged archive, its tasks, and per input what was renamed or skipped."""

    out: str
    tasks: int
    inputs: list[dict[str, Any]]
    _shown = ("out", "tasks")


@dataclass(frozen=True, repr=False)
class HopfieldStored(_Result):
    """`supsup hopfield-store`: the tasks in the reservoir and what the archive now costs."""

    tasks: int
    stored_now: int
    explicit_masks: bool
    reservoir_bytes: int
    bytes_on_disk: int
    _shown = ("tasks", "stored_now", "explicit_masks", "bytes_on_disk")


@dataclass(frozen=True, repr=False)
class AutoLearned(_Result):
    """`supsup learn-task --auto` (scenario NNs): the mask trained most, and every decision taken."""

    index: int
    name: str
    test_accuracy: float | None
    train_seconds: float
    steps: int
    density: float
    auto: bool
    decisions: list[dict[str, Any]]
    allocated: list[int]
    reused: list[int]
    masks: int
    budget_reached: bool
    ranks: int
    data: dict[str, Any]
    _shown = ("index", "name", "test_accuracy", "allocated", "reused", "masks")
