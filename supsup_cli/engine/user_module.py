"""A user's own `torch.nn.Module` as the frozen base network (formats/supsup-v4.md, "Modules").

The archive stores which parameters are masked (by name and shape), how the weights were made
("random": signed Kaiming constants from the archive's seed, biases zero, norm layers the identity;
"given": the module's own, pretrained say) and a fingerprint of every parameter and buffer: never
the module's code, never its weights. Whoever opens the archive brings the module again; it is
prepared the same way and must give the same fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from supsup_cli.core import registry
from supsup_cli.core.errors import InvalidArgument, WeightsMismatch
from supsup_cli.engine.models import MaskedNet
from supsup_cli.core.registry import ArchSpec, WeightLayer
from supsup_cli.core.weights import layer_weight

WEIGHTS = ("random", "given")
MASKED_LAYERS = (nn.Linear, nn.Conv2d)  # whose `weight` is masked unless the user names the parameters
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def fingerprint(module: nn.Module) -> str:
    """SHA-256 over every parameter, then every buffer, in the module's order: for each, a line
    "parameter|buffer NAME DTYPE SHAPE" and then its bytes (little-endian, row-major)."""
    digest = hashlib.sha256()
    for kind, items in (("parameter", module.named_parameters()), ("buffer", module.named_buffers())):
        for name, tensor in items:
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{kind} {name} {str(flat.dtype).removeprefix('torch.')} "
                          f"{'x'.join(map(str, tensor.shape))}\n".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def prepare(module: nn.Module, input_shape: Sequence[int], weights: str = "random", seed: int = 0,
            mask: Sequence[str] | None = None, label: str = "") -> tuple[ArchSpec, nn.Module]:
    """The spec of `module` as a base network, and a frozen copy of it with its base weights (the
    user's module itself is left as it was).

    Masks go over the weights of every nn.Linear and nn.Conv2d, or over the parameters named in
    `mask`; every other parameter and buffer is frozen. Raises InvalidArgument for a module that
    cannot be one (nothing to mask, a parameter that random weights cannot set, a forward pass that
    does not map [N, *input_shape] to [N, outputs])."""
    if not isinstance(module, nn.Module):
        raise InvalidArgument(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    if weights not in WEIGHTS:
        raise InvalidArgument(f"`weights` must be 'random' or 'given', got {weights!r}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3:
        raise InvalidArgument(f"`input_shape` must be (channels, height, width), got {tuple(input_shape)}")
    net = copy.deepcopy(module).cpu().float().requires_grad_(False).eval()
    sites = _sites(net, mask)
    if weights == "random":
        _randomize(net, sites, seed)
    norms = [(name, int(layer.num_features)) for name, layer in net.named_modules()
             if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats]
    outputs = _outputs(net, shape)
    spec = ArchSpec(f"module:{label}"[:100] if label else "module", registry.MODULE, shape, (), (), "", outputs, "",
                    "running" if norms else "none", "weights", "per-task",
                    tuple((name, tuple(p.shape)) for name, p in sites), tuple(norms), weights, fingerprint(net), label)
    return registry.from_plain(json.loads(registry.to_json(spec))), net


def bind(spec: ArchSpec, seed: int, module: nn.Module) -> nn.Module:
    """The module prepared as the archive's network was, checked against its fingerprint (raises
    WeightsMismatch when it differs: another class, other shapes, other given weights)."""
    shapes = {name: tuple(p.shape) for name, p in module.named_parameters()} if isinstance(module, nn.Module) else {}
    differing = [name for name, shape in spec.sites if shapes.get(name) != shape]
    if differing:
        raise WeightsMismatch(f"the module given is not this archive's network ({spec.label or 'a module'}): it has "
                              f"no parameter {differing[0]!r} of shape {list(dict(spec.sites)[differing[0]])}")
    again, net = prepare(module, spec.input_shape, spec.weights, seed, [name for name, _ in spec.sites], spec.label)
    if again.fingerprint != spec.fingerprint:
        raise WeightsMismatch(f"the module given is not this archive's network ({spec.label or 'a module'}): the "
                              "fingerprint of its parameters and buffers differs"
                              + (" (with weights='given', its weights must be the very ones it was created with)"
                                 if spec.weights == "given" else ""))
    return net


def base_weights(net: nn.Module, spec: ArchSpec) -> list[np.ndarray]:
    """The masked parameters' values, float32, in the sites' order."""
    parameters = dict(net.named_parameters())
    return [parameters[name].detach().numpy().astype(np.float32, copy=True) for name, _ in spec.sites]


def mlp_equivalent(net: nn.Module, spec: ArchSpec) -> ArchSpec | None:
    """The registry-style MLP that `net` computes operation for operation, if it is exactly a chain
    nn.Flatten, then bias-free nn.Linear layers with nn.ReLU between them (LeNet 300-100 written as
    a module, say): such a module runs on the MLPs' written-out paths, with the same results."""
    layers = list(net.children()) if type(net) is nn.Sequential else []
    if not layers or type(layers[0]) is not nn.Flatten or (layers[0].start_dim, layers[0].end_dim) != (1, -1):
        return None
    body = layers[1:]
    linear = body[0::2]
    if len(body) % 2 == 0 or not all(type(layer) is nn.Linear and layer.bias is None for layer in linear) \
            or not all(type(layer) is nn.ReLU for layer in body[1::2]):
        return None
    if [name for name, _ in spec.sites] != [f"{i}.weight" for i in range(1, len(layers), 2)]:
        return None
    widths = tuple(int(layer.out_features) for layer in linear[:-1] if isinstance(layer, nn.Linear))
    return ArchSpec(spec.name, "mlp", spec.input_shape, widths, (), "", spec.output_size, "relu", "none", "weights",
                    "per-task")


def _sites(net: nn.Module, mask: Sequence[str] | None) -> list[tuple[str, nn.Parameter]]:
    parameters = list(net.named_parameters())
    if mask is None:
        owners = dict(net.named_modules())
        sites = [(name, p) for name, p in parameters
                 if name.rpartition(".")[2] == "weight" and isinstance(owners[name.rpartition(".")[0]], MASKED_LAYERS)]
        if not sites:
            raise InvalidArgument("the module has no nn.Linear or nn.Conv2d weight to mask: name the parameters "
                                  "to mask with `mask`")
        return sites
    if isinstance(mask, str) or not mask:
        raise InvalidArgument("`mask` must be a list of parameter names")
    known = dict(parameters)
    unknown = [name for name in mask if name not in known]
    if unknown:
        raise InvalidArgument(f"`mask` names no parameter of the module: {', '.join(map(repr, unknown))}")
    if len(set(mask)) != len(mask):
        raise InvalidArgument("`mask` names a parameter twice")
    flat = [name for name in mask if known[name].dim() < 2]
    if flat:
        raise InvalidArgument(f"`mask`: {', '.join(map(repr, flat))} has fewer than 2 dimensions (mask weights, "
                              "not biases or norm scales)")
    return [(name, p) for name, p in parameters if name in set(mask)]


def _randomize(net: nn.Module, sites: Sequence[tuple[str, nn.Parameter]], seed: int) -> None:
    """Masked weights: the seed's signed Kaiming constants; biases zero; norm layers the identity,
    their running statistics reset. Any other parameter cannot be made from the seed: refused."""
    masked = {name for name, _ in sites}
    for index, (name, parameter) in enumerate(sites):
        drawn = layer_weight(seed, index, WeightLayer(name, tuple(parameter.shape)))
        parameter.copy_(torch.from_numpy(drawn))
    owners = dict(net.named_modules())
    for name, parameter in net.named_parameters():
        if name in masked:
            continue
        owner_name, _, leaf = name.rpartition(".")
        if leaf == "bias":
            parameter.zero_()
        elif isinstance(owners[owner_name], NORM_LAYERS) and leaf == "weight":
            parameter.fill_(1.0)
        else:
            raise InvalidArgument(f"weights='random' makes masked weights, biases and norm layers from the seed; "
                                  f"{name!r} is none of them: mask it (`mask`), or use weights='given'")
    for layer in net.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            layer.reset_running_stats()


def _outputs(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    probe = torch.zeros(2, *input_shape)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as exc:  # the user's code: any failure means it does not take these inputs
        raise InvalidArgument(f"the module fails on inputs of shape {list(probe.shape)} "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidArgument(f"the module must map inputs [N, {', '.join(map(str, input_shape))}] to logits "
                              f"[N, outputs]; for N = 2 it gave {got}")
    return int(out.shape[1])


class ModuleNet(MaskedNet):
    """The user's module with masked parameters replaced at every call (torch.func.functional_call);
    its batch-norm layers' running statistics belong to a task, as a residual network's do."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray], module: nn.Module) -> None:
        super().__init__(spec, weights)
        self.module = module
        self.site_names = [name for name, _ in spec.sites]
        self.norm_layers = [module.get_submodule(name) for name, _ in spec.norms]
        self.initial_stats = self.stats_vector()

    def run(self, x: torch.Tensor, weights: Sequence[torch.Tensor],
            neuron_masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        out: torch.Tensor = torch.func.functional_call(self.module, dict(zip(self.site_names, weights)), (x,))
        return out

    def run_with_stats(self, x: torch.Tensor, weights: Sequence[torch.Tensor], stats: torch.Tensor) -> torch.Tensor:
        """`run` with these batch-norm statistics (a vector in the stored order) instead of the
        module's own: what a search over inputs that each mix tasks differently calls (under vmap)."""
        names = [f"{name}.running_{kind}" for kind in ("mean", "var") for name, _ in self.spec.norms]
        sizes = [channels for _ in ("mean", "var") for _, channels in self.spec.norms]
        replaced = {**dict(zip(self.site_names, weights)), **dict(zip(names, torch.split(stats, sizes)))}
        out: torch.Tensor = torch.func.functional_call(self.module, replaced, (x,))
        return out

    def baked(self, masks: Sequence[torch.Tensor]) -> nn.Module:
        """A copy of the module with each site's weights times its mask as its own parameters and
        the current statistics: a task's network as ordinary layers (to export, or to trace)."""
        module = copy.deepcopy(self.module).eval()
        parameters = dict(module.named_parameters())
        with torch.no_grad():
            for name, weight, mask in zip(self.site_names, self.base(), masks):
                parameters[name].copy_(weight * mask.to(weight.dtype).reshape(weight.shape))
        return module

    def _stat_buffers(self) -> list[torch.Tensor]:
        """Every norm layer's running mean, then every one's running variance (the stored order)."""
        return [getattr(layer, f"running_{kind}") for kind in ("mean", "var") for layer in self.norm_layers]

    def reset_stats(self) -> None:
        """Back to the module's own statistics (random weights: zero means, unit variances)."""
        self.load_stats(self.initial_stats)
        for layer in self.norm_layers:
            tracked = layer.num_batches_tracked
            if isinstance(tracked, torch.Tensor):
                tracked.zero_()

    def stats_vector(self) -> np.ndarray:
        buffers = self._stat_buffers()
        if not buffers:
            return np.zeros(0, dtype=np.float32)
        return torch.cat(buffers).detach().cpu().numpy().astype(np.float32)

    def load_stats(self, vector: np.ndarray) -> None:
        buffers = self._stat_buffers()
        values = torch.as_tensor(np.asarray(vector, dtype=np.float32))
        for buffer, part in zip(buffers, torch.split(values, [b.numel() for b in buffers])):
            buffer.copy_(part)


def describe(module: Any) -> str:
    """A label for people: the module's class."""
    return type(module).__name__
