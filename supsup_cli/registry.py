"""Architectures as plain data: one literal registry of frozen specs.

An archive stores the resolved spec as JSON; on open it must equal what this registry
resolves for the same name and options, so an archive can never carry code.
"""

from __future__ import annotations

import functools
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
    def padding(self) -> int:
        return self.shape[-1] // 2 if len(self.shape) == 4 else 0

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


@dataclass(frozen=True)
class Block:
    """A residual block: its convolutions along the main path, and its projection shortcut if any
    (indices into weight_layers). Every convolution is followed by non-affine batch norm."""

    convs: tuple[int, ...]
    shortcut: int | None


@dataclass(frozen=True)
class ResNetPlan:
    stem: int
    pool: bool  # a 3x3 max pool of stride 2 after the stem (the ImageNet stem)
    blocks: tuple[Block, ...]
    fc: int


_MNIST = (1, 28, 28)
MIN_OUTPUT_SIZE = 2
MAX_OUTPUT_SIZE = 100_000

REGISTRY: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("lenet300-100", "mlp", _MNIST, (300, 100), (), "", 100, "relu", "none", "weights", "per-task"),
        ArchSpec("fc1024-1024", "mlp", _MNIST, (1024, 1024), (), "", 500, "relu", "none", "weights", "per-task"),
        ArchSpec("fc2048-2048-hop", "mlp", _MNIST, (2048, 2048), (), "", 10, "swish", "batch", "neurons", "global"),
        ArchSpec("resnet18-narrow", "resnet", (3, 32, 32), (20, 40, 80, 160), (2, 2, 2, 2), "basic", 5, "relu",
                 "running", "weights", "per-task"),
        ArchSpec("resnet50", "resnet", (3, 224, 224), (64, 128, 256, 512), (3, 4, 6, 3), "bottleneck", 10, "relu",
                 "running", "weights", "per-task"),
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
    if spec.family == "resnet":
        return _resnet(spec)[0]
    sizes = (math.prod(spec.input_shape), *spec.widths, spec.output_size)
    return tuple(
        WeightLayer(f"fc{i + 1}", (fan_out, fan_in))
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]))
    )


def resnet_plan(spec: ArchSpec) -> ResNetPlan:
    return _resnet(spec)[1]


@functools.lru_cache(maxsize=16)
def _resnet(spec: ArchSpec) -> tuple[tuple[WeightLayer, ...], ResNetPlan]:
    """Basic blocks: the CIFAR stem (3x3, stride 1); bottleneck blocks (expansion 4): the ImageNet stem
    (7x7, stride 2, then a 3x3 max pool of stride 2). Stages 2-4 start with stride 2; a block gets a
    1x1 projection shortcut when its stride or width changes. Then global average pooling and fc."""
    layers: list[WeightLayer] = []

    def add(name: str, shape: tuple[int, ...], stride: int = 1) -> int:
        layers.append(WeightLayer(name, shape, stride))
        return len(layers) - 1

    bottleneck = spec.block == "bottleneck"
    expansion = 4 if bottleneck else 1
    channels = spec.input_shape[0]
    width = spec.widths[0]
    stem = add("conv1", (width, channels, 7, 7), 2) if bottleneck else add("conv1", (width, channels, 3, 3))
    blocks, inputs = [], width
    for stage, (planes, count) in enumerate(zip(spec.widths, spec.blocks), start=1):
        for index in range(count):
            stride = 2 if stage > 1 and index == 0 else 1
            name = f"layer{stage}.{index}"
            if bottleneck:
                convs = (add(f"{name}.conv1", (planes, inputs, 1, 1)),
                         add(f"{name}.conv2", (planes, planes, 3, 3), stride),
                         add(f"{name}.conv3", (planes * expansion, planes, 1, 1)))
            else:
                convs = (add(f"{name}.conv1", (planes, inputs, 3, 3), stride),
                         add(f"{name}.conv2", (planes, planes, 3, 3)))
            shortcut = None
            if stride != 1 or inputs != planes * expansion:
                shortcut = add(f"{name}.shortcut", (planes * expansion, inputs, 1, 1), stride)
            blocks.append(Block(convs, shortcut))
            inputs = planes * expansion
    fc = add("fc", (spec.output_size, inputs))
    return tuple(layers), ResNetPlan(stem, bottleneck, tuple(blocks), fc)


def norm_channels(spec: ArchSpec) -> tuple[int, ...]:
    """Channels of each batch-norm layer whose running statistics are stored per task, in order:
    one after every convolution of a residual network (the final fc has none)."""
    if spec.norm != "running":
        return ()
    return tuple(layer.shape[0] for layer in weight_layers(spec) if len(layer.shape) == 4)


def mask_sites(spec: ArchSpec) -> tuple[MaskSite, ...]:
    """What one task's mask covers: every weight tensor, or every hidden layer's neurons."""
    if spec.mask_on == "weights":
        return tuple(MaskSite(layer.name, layer.shape) for layer in weight_layers(spec))
    return tuple(MaskSite(f"fc{i + 1}", (width,)) for i, width in enumerate(spec.widths))


def stats_size(spec: ArchSpec) -> int:
    """Floats of per-task normalization statistics the archive stores beside each mask: every
    batch-norm layer's running means, then every one's running variances."""
    return 2 * sum(norm_channels(spec))


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
