"""An opened archive's base network: regenerated from its seed, or the user's module bound to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supsup_cli.core import registry
from supsup_cli.archive import Archive
from supsup_cli.core.errors import InvalidArgument, ModuleRequired, WeightsMismatch
from supsup_cli.engine.models import MaskedNet, build
from supsup_cli.core.weights import weights_sha256

if TYPE_CHECKING:
    from torch import nn


def base_network(opened: Archive, module: "nn.Module | None" = None) -> MaskedNet:
    """The frozen network the archive's masks apply to, on the CPU. A module archive needs its
    module (ModuleRequired without it, WeightsMismatch when it is another); any other refuses one."""
    spec = opened.spec
    if spec.family != registry.MODULE:
        if module is not None:
            raise InvalidArgument(f"`module` has no effect: {opened.path} holds {spec.name}, not a module of one's own")
        return build(spec, opened.base_weights())
    if module is None:
        raise ModuleRequired(f"{opened.path} is over a module of one's own ({spec.label or 'unlabelled'}): "
                             "give that module (`module`)")
    from supsup_cli.engine import user_module

    net = user_module.bind(spec, opened.seed, module)
    weights = user_module.base_weights(net, spec)
    if weights_sha256(weights) != opened.weights_sha256:
        raise WeightsMismatch(f"{opened.path}: the module's masked weights do not hash to the stored SHA-256")
    chain = user_module.mlp_equivalent(net, spec)
    return build(chain, weights) if chain is not None else user_module.ModuleNet(spec, weights, net)
