"""Architectures as plain data: a literal registry of frozen specs, and specs of one's own.

An archive stores the resolved spec as JSON. A registry name must resolve to exactly the stored
spec; any other spec (`mlp:512-256`, or a JSON file's) is checked field by field against bounds
(`from_plain`). Either way an archive carries data, never code.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from supsup_cli.core.errors import ArchiveCorrupt, InvalidArgument


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
    # Family "module" only (a user's torch module; formats/supsup-v4.md, "Modules"), empty otherwise:
    sites: tuple[tuple[str, tuple[int, ...]], ...] = ()  # the masked parameters, by name and shape
    norms: tuple[tuple[str, int], ...] = ()  # batch-norm layers (name, channels): statistics per task
    weights: str = ""  # "random" (signed Kaiming constants from the seed) or "given" (the module's own)
    fingerprint: str = ""  # SHA-256 of the prepared module's parameters and buffers (module.fingerprint)
    label: str = ""  # what the user called the module, for people; never imported


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


PARAMETRIC_MLP = "mlp:"  # mlp:W1-W2-...: ReLU, no norm, masks on weights, per-task labels
DEFAULT_OUTPUT_SIZE = 10
MAX_LAYERS = 16
MAX_WIDTH = 65_536
MAX_WEIGHTS = 500_000_000  # of the base network: 2 GB as float32


def resolve(name: str, output_size: int | None = None, input_shape: tuple[int, ...] | None = None) -> ArchSpec:
    """A registry entry, or `mlp:W1-W2-...` (hidden widths; `input_shape` default 1 x 28 x 28), with
    `output_size` output neurons instead of the default."""
    if output_size is not None and not MIN_OUTPUT_SIZE <= output_size <= MAX_OUTPUT_SIZE:
        raise InvalidArgument(f"`output_size` must be between {MIN_OUTPUT_SIZE} and {MAX_OUTPUT_SIZE}, "
                              f"got {output_size}")
    if name.startswith(PARAMETRIC_MLP):
        widths = _widths(name[len(PARAMETRIC_MLP):])
        spec = ArchSpec(f"{PARAMETRIC_MLP}{'-'.join(map(str, widths))}", "mlp", tuple(input_shape or _MNIST), widths,
                        (), "", output_size or DEFAULT_OUTPUT_SIZE, "relu", "none", "weights", "per-task")
        return from_plain(json.loads(to_json(spec)), InvalidArgument)
    if name not in REGISTRY:
        raise InvalidArgument(f"unknown architecture {name!r}; known: {', '.join(sorted(REGISTRY))}, or "
                              f"{PARAMETRIC_MLP}W1-W2-... (hidden widths)")
    if input_shape is not None and tuple(input_shape) != REGISTRY[name].input_shape:
        raise InvalidArgument(f"`input_shape` has no effect with {name}: it takes "
                              f"{'x'.join(map(str, REGISTRY[name].input_shape))}")
    spec = REGISTRY[name]
    return spec if output_size is None else replace(spec, output_size=output_size)


def _widths(text: str) -> tuple[int, ...]:
    parts = text.split("-")
    if not text or not all(part.isdecimal() for part in parts):
        raise InvalidArgument(f"{PARAMETRIC_MLP} takes hidden widths like {PARAMETRIC_MLP}512-256, got "
                              f"{PARAMETRIC_MLP}{text}")
    return tuple(int(part) for part in parts)


_FIELDS = {"name": str, "family": str, "input_shape": list, "widths": list, "blocks": list, "block": str,
           "output_size": int, "activation": str, "norm": str, "mask_on": str, "labels": str}
_MODULE_FIELDS = {"sites": list, "norms": list, "weights": str, "fingerprint": str, "label": str}
MODULE = "module"
MAX_SITES = 1024
MAX_PARAMETER_NAME = 200


def from_plain(plain: Any, error: type[Exception] = InvalidArgument) -> ArchSpec:
    """A spec of one's own (or a registry entry), every field checked against its bounds; raises
    `error` (InvalidArgument for a user's file, ArchiveCorrupt for an archive's) naming the field."""
    def fail(what: str) -> Exception:
        return error(f"architecture spec: {what}")

    if not isinstance(plain, dict):
        raise fail("not an object")
    fields = {**_FIELDS, **_MODULE_FIELDS} if plain.get("family") == MODULE else _FIELDS
    if set(plain) != set(fields):
        missing, unknown = sorted(set(fields) - set(plain)), sorted(set(plain) - set(fields))
        raise fail(f"needs exactly the fields {', '.join(fields)}"
                   + (f"; missing {', '.join(missing)}" if missing else "")
                   + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    for key, kind in _FIELDS.items():
        value = plain[key]
        if not isinstance(value, kind) or isinstance(value, bool) or \
                (kind is list and not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise fail(f"{key} must be {'a list of integers' if kind is list else kind.__name__}")
    name = plain["name"]
    if not 1 <= len(name) <= 100 or not name.isprintable() or name != name.strip():
        raise fail("name must be 1-100 printable characters")
    if name in REGISTRY:
        expected = replace(REGISTRY[name], output_size=plain["output_size"])
        if plain != json.loads(to_json(expected)):
            raise fail(f"{name} is a registry name, and this is not its entry (choose another name)")
    family = plain["family"]
    choices = {"family": ("mlp", "resnet", MODULE), "activation": ("relu", "swish"),
               "labels": ("per-task", "global"), "norm": ("none", "batch") if family == "mlp" else ("running",),
               "mask_on": ("weights", "neurons") if family == "mlp" else ("weights",),
               "block": ("",) if family == "mlp" else ("basic", "bottleneck")}
    if family == MODULE:  # the module decides its activations and layers; masks on weights, per-task labels
        choices.update(activation=("",), labels=("per-task",), block=("",),
                       norm=("running",) if plain["norms"] else ("none",))
    for key, allowed in choices.items():
        if plain[key] not in allowed:
            raise fail(f"{key} must be {' or '.join(map(repr, allowed))} for family {family!r}, got {plain[key]!r}")
    channels, height, width = (plain["input_shape"] + [0, 0, 0])[:3] if len(plain["input_shape"]) == 3 else (0, 0, 0)
    if not (1 <= channels <= 16 and 1 <= height <= 4096 and 1 <= width <= 4096):
        raise fail("input_shape must be [channels 1-16, height 1-4096, width 1-4096]")
    widths, blocks = plain["widths"], plain["blocks"]
    if family == MODULE:
        if widths or blocks:
            raise fail("widths and blocks must be [] for a module (its sites give its layers)")
    elif not 1 <= len(widths) <= MAX_LAYERS or not all(1 <= w <= MAX_WIDTH for w in widths):
        raise fail(f"widths must be 1-{MAX_LAYERS} sizes of 1-{MAX_WIDTH}")
    if family == "mlp" and blocks:
        raise fail("blocks must be [] for an MLP")
    if family == "resnet" and (len(blocks) != len(widths) or not all(1 <= b <= 64 for b in blocks)):
        raise fail("blocks must give 1-64 blocks for each stage of widths")
    if not MIN_OUTPUT_SIZE <= plain["output_size"] <= MAX_OUTPUT_SIZE:
        raise fail(f"output_size must be between {MIN_OUTPUT_SIZE} and {MAX_OUTPUT_SIZE}")
    if family == "mlp" and plain["mask_on"] == "neurons" and plain["norm"] != "batch":
        raise fail("neuron masks are for MLPs with batch norm (as fc2048-2048-hop)")
    spec = ArchSpec(name, family, (channels, height, width), tuple(widths), tuple(blocks), plain["block"],
                    plain["output_size"], plain["activation"], plain["norm"], plain["mask_on"], plain["labels"])
    if family == MODULE:
        spec = replace(spec, **_module_fields(plain, fail))
    if sum(layer.numel for layer in weight_layers(spec)) > MAX_WEIGHTS:
        raise fail(f"the network would have more than {MAX_WEIGHTS:,} weights")
    return spec


def _module_fields(plain: dict[str, Any], fail: Any) -> dict[str, Any]:
    """A module's sites, norms, weights, fingerprint and label, checked."""
    for key, kind in _MODULE_FIELDS.items():
        if not isinstance(plain[key], kind):
            raise fail(f"{key} must be {'a list' if kind is list else kind.__name__}")

    def named(entry: Any, what: str) -> tuple[str, Any]:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and 1 <= len(entry[0]) <= MAX_PARAMETER_NAME and entry[0].isprintable()):
            raise fail(f"each of {what} must be [name of 1-{MAX_PARAMETER_NAME} printable characters, ...]")
        return entry[0], entry[1]

    sites = [named(entry, "sites") for entry in plain["sites"]]
    if not 1 <= len(sites) <= MAX_SITES or len({name for name, _ in sites}) != len(sites):
        raise fail(f"sites must name 1-{MAX_SITES} different parameters")
    for name, shape in sites:
        if not (isinstance(shape, list) and 2 <= len(shape) <= 5
                and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_WIDTH for d in shape)):
            raise fail(f"the shape of site {name!r} must be 2-5 sizes of 1-{MAX_WIDTH}")
    norms = [named(entry, "norms") for entry in plain["norms"]]
    if len(norms) > MAX_SITES or len({name for name, _ in norms}) != len(norms) or \
            not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_WIDTH for _, c in norms):
        raise fail(f"norms must name at most {MAX_SITES} different layers, each with 1-{MAX_WIDTH} channels")
    if plain["weights"] not in ("random", "given"):
        raise fail(f"weights must be 'random' or 'given', got {plain['weights']!r}")
    fingerprint = plain["fingerprint"]
    if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
        raise fail("fingerprint must be 64 lowercase hexadecimal digits (SHA-256)")
    if len(plain["label"]) > MAX_PARAMETER_NAME or not plain["label"].isprintable():
        raise fail(f"label must be at most {MAX_PARAMETER_NAME} printable characters")
    return {"sites": tuple((name, tuple(shape)) for name, shape in sites), "norms": tuple(norms),
            "weights": plain["weights"], "fingerprint": fingerprint, "label": plain["label"]}


def weight_layers(spec: ArchSpec) -> tuple[WeightLayer, ...]:
    """Every weight tensor of the base network, in the order used for generation and hashing (a
    module's: its masked parameters, in the module's order)."""
    if spec.family == MODULE:
        return tuple(WeightLayer(name, shape) for name, shape in spec.sites)
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
    if spec.family == MODULE:
        return tuple(channels for _, channels in spec.norms)
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
    plain = asdict(spec)
    if spec.family != MODULE:  # the fields of the first families, as every version stored them
        for key in _MODULE_FIELDS:
            del plain[key]
    return json.dumps(plain, sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> ArchSpec:
    """Parse a stored spec: exactly a registry entry (up to output size), or one's own within bounds."""
    try:
        plain: Any = json.loads(text)
    except ValueError as exc:
        raise ArchiveCorrupt(f"architecture spec is not valid JSON ({exc})") from None
    if not isinstance(plain, dict) or not isinstance(plain.get("name"), str):
        raise ArchiveCorrupt("architecture spec is not an object with a name")
    if plain["name"] not in REGISTRY:
        return from_plain(plain, ArchiveCorrupt)  # one's own: checked field by field
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
