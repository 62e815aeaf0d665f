"""HopSupSup: neuron masks stored as attractors of fixed-size Hopfield networks (paper, section 3.5, appendix B).

Per masked layer of width d there is one network Psi (d x d) and a running mean mu of the stored
z = 2m - 1. Storing a mask applies the Storkey rule,

    Psi <- Psi + (z z^T - z h^T - h z^T - I) / d,   h = Psi z,      mu <- ((k - 1) mu + z) / k,

and the energy E(z) = -1/2 z^T Psi z has the stored z as minima. Recovery starts from mu and
descends for T steps, over batches of the inputs (cycling through them when they are fewer than T),
on (gamma t/T) E(z) + (1 - t/T) H(p): the
entropy first pulls z towards the mask that explains the data, the energy then settles it on a
stored attractor. The mask in the forward pass is binary, m = [score >= 0], with a
straight-through gradient, as in the paper's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from supsup_cli.engine.masks import straight_through
from supsup_cli.engine.models import MaskedNet, batches_of

GAMMA = 1.5e-3
LR = 500.0
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
BATCH = 64
# The paper's T is about 30 (one pass over a SplitMNIST test split in batches of 64). With it, 4 of 5
# SplitMNIST masks were recovered exactly here (88% accuracy); with 100 steps, which cycle over the
# inputs about three times, all 5 were, for every input order tried. Hence the longer default.
STEPS = 100
PAPER_STEPS = 30


@dataclass
class Reservoir:
    psi: list[torch.Tensor]  # per masked layer: [d, d]
    mu: list[torch.Tensor]  # per masked layer: [d]
    tasks: int  # masks stored so far

    @staticmethod
    def empty(widths: Sequence[int]) -> "Reservoir":
        return Reservoir([torch.zeros(d, d) for d in widths], [torch.zeros(d) for d in widths], 0)

    def store(self, masks: Sequence[torch.Tensor]) -> None:
        """Add one task's neuron masks (0/1 per layer) as attractors."""
        self.tasks += 1
        for layer, mask in enumerate(masks):
            z = 2 * mask.float().reshape(-1) - 1
            psi, d = self.psi[layer], z.numel()
            h = psi @ z
            update = torch.outer(z, z) - torch.outer(z, h) - torch.outer(h, z) - torch.eye(d)
            self.psi[layer] = psi + update / d
            self.mu[layer] = self.mu[layer] * ((self.tasks - 1) / self.tasks) + z / self.tasks

    def energy(self, zs: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(-0.5 * z @ psi @ z for z, psi in zip(zs, self.psi))


@dataclass(frozen=True)
class Recovery:
    masks: list[torch.Tensor]  # bool, per masked layer
    distances: list[list[int]]  # per step: Hamming distance to each of `compare_with` (empty if none given)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    return -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum(dim=1).mean()


def recover(net: MaskedNet, reservoir: Reservoir, x: torch.Tensor, gamma: float = GAMMA, lr: float = LR,
            momentum: float = MOMENTUM, weight_decay: float = WEIGHT_DECAY, batch: int = BATCH, steps: int = STEPS,
            compare_with: Sequence[Sequence[torch.Tensor]] = ()) -> Recovery:
    """Hopfield recovery in T = max(steps, one pass) steps over batches of `x`, cycling when x is short."""
    device = x.device
    psi = [p.to(device) for p in reservoir.psi]
    held = Reservoir(psi, reservoir.mu, reservoir.tasks)
    scores = [mu.to(device).clone().requires_grad_() for mu in reservoir.mu]
    optimizer = torch.optim.SGD(scores, lr=lr, momentum=momentum, weight_decay=weight_decay)
    parts = batches_of(x, batch)
    total = max(steps, len(parts))
    distances = []
    for step in range(1, total + 1):
        masks = [straight_through(s, None) for s in scores]
        part = parts[(step - 1) % len(parts)]
        objective = gamma * step / total * held.energy([2 * m - 1 for m in masks]) + \
            (1 - step / total) * entropy(net(part, masks))
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if compare_with:
            current = [(s.detach() >= 0).cpu() for s in scores]
            distances.append([hamming(current, other) for other in compare_with])
    return Recovery([(s.detach() >= 0).cpu() for s in scores], distances)


def hamming(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> int:
    return sum(int((x.reshape(-1).bool() != y.reshape(-1).bool()).sum()) for x, y in zip(a, b))


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Psi or mu of every layer, concatenated as the archive stores them."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(values: torch.Tensor, widths: Sequence[int], squared: bool) -> list[torch.Tensor]:
    sizes = [d * d if squared else d for d in widths]
    parts = values.split(sizes)
    return [p.reshape(d, d) if squared else p for p, d in zip(parts, widths)]
