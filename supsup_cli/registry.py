"""Architectures as plain data: one literal registry of frozen specs.

An archive stores the resolved spec as JSON; on open it must equal what this registry
resolves for the same name and options, so an archive can never carry code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from supsup_cli.errors import ArchiveCorrupt, InvalidArgument


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # "mlp" | "resnet"
    input_shape: tuple[int, int, int]  # channels, height, width
    widths: tuple[int, ...]  # mlp: hidden sizes; resnet: stage widths
    blocks: tuple[int, ...]  # resnet: blocks per stage; () for mlp
    block: str  # resnet: "basic" | "bottleneck"; "" for mlp
    output_size: int
    activation: str  # "relu" | "swish"
    norm: str  # "none" | "batch" (batch statistics, nothing stored) | "running" (stats per task)
    mask_on: str  # "weights" | "neurons"
    labels: str  # "per-task": output j is the task's j-th class; "global": output c is class c


@dataclass(frozen=True)
class WeightLayer:
    name: str
    shape: tuple[int, ...]  # torch layout: (out, in) or (out, in, kh, kw)
    stride: int = 1

    @property
    def fan_in(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class MaskSite:
    name: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


_MNIST = (1, 28, 28)
MIN_OUTPUT_SIZE = 2
MAX_OUTPUT_SIZE = 100_000

REGISTRY: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("lenet300-100", "mlp", _MNIST, (300, 100), (), "", 100, "relu", "none", "weights", "per-task"),
        ArchSpec("fc1024-1024", "mlp", _MNIST, (1024, 1024), (), "", 500, "relu", "none", "weights", "per-task"),
        ArchSpec("fc2048-2048-hop", "mlp", _MNIST, (2048, 2048), (), "", 10, "swish", "batch", "neurons", "global"),
    )
}


def resolve(name: str, output_size: int | None = None) -> ArchSpec:
    if name not in REGISTRY:
        raise InvalidArgument(f"unknown architecture {name!r}; known: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name]
    if output_size is None:
        return spec
    if not MIN_OUTPUT_SIZE <= output_size <= MAX_OUTPUT_SIZE:
        raise InvalidArgument(f"--output-size must be between {MIN_OUTPUT_SIZE} and {MAX_OUTPUT_SIZE}, got {output_size}")
    return replace(spec, output_size=output_size)


def weight_layers(spec: ArchSpec) -> tuple[WeightLayer, ...]:
    """Every weight tensor of the base network, in the order used for generation and hashing."""
    if spec.family != "mlp":
        raise InvalidArgument(f"family {spec.family!r} has no layer list")
    sizes = (math.prod(spec.input_shape), *spec.widths, spec.output_size)
    return tuple(
        WeightLayer(f"fc{i + 1}", (fan_out, fan_in))
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]))
    )


def mask_sites(spec: ArchSpec) -> tuple[MaskSite, ...]:
    """What one task's mask covers: every weight tensor, or every hidden layer's neurons."""
    if spec.mask_on == "weights":
        return tuple(MaskSite(layer.name, layer.shape) for layer in weight_layers(spec))
    return tuple(MaskSite(f"fc{i + 1}", (width,)) for i, width in enumerate(spec.widths))


def stats_size(spec: ArchSpec) -> int:
    """Floats of per-task normalization statistics the archive stores beside each mask."""
    return 0


def to_json(spec: ArchSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> ArchSpec:
    """Parse a stored spec and check that it is exactly a registry entry (up to output size)."""
    try:
        plain: Any = json.loads(text)
    except ValueError as exc:
        raise ArchiveCorrupt(f"architecture spec is not valid JSON ({exc})") from None
    if not isinstance(plain, dict) or not isinstance(plain.get("name"), str):
        raise ArchiveCorrupt("architecture spec is not an object with a name")
    if plain["name"] not in REGISTRY:
        raise ArchiveCorrupt(f"architecture {plain['name']!r} is not known to this version of supsup")
    output_size = plain.get("output_size")
    if not isinstance(output_size, int):
        raise ArchiveCorrupt("architecture spec has no integer output_size")
    try:
        spec = resolve(plain["name"], output_size)
    except InvalidArgument as exc:
        raise ArchiveCorrupt(f"architecture spec: {exc}") from None
    if json.loads(to_json(spec)) != plain:
        raise ArchiveCorrupt(f"architecture spec differs from the registry entry {spec.name!r}")
    return spec
