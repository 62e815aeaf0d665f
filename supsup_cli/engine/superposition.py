"""The superposition of k tasks' masks over one network (the paper's section 3.1): the masks bit-packed,
the network with coefficients alpha, the objectives whose gradient finds the task, and each input's
logits under its own task. The searches are in inference.py (MLPs, written out) and
module_inference.py (any module, by autograd)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from supsup_cli.core import choices
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.engine.masks import SignedUnpacking, packed_counts, unpack
from supsup_cli.engine.models import MaskedNet
from supsup_cli.core.registry import mask_sites

DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class Superposition:
    """The k tasks' masks of a network, bit-packed on the inference device."""

    net: MaskedNet
    packed: list[torch.Tensor]  # per site: [k, ceil(n/8)] uint8
    real: torch.Tensor  # bool [output_size]: outputs that are some task's real class
    chunk: int  # tasks unpacked at a time
    stats: list[np.ndarray] | None = None  # per task: normalization statistics (residual networks)
    counts: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)  # site -> tasks
    # keeping each weight, computed once: all that the superposition at alpha = 1/k needs
    unpacked: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)  # site ->
    # [k, *shape] uint8 masks, kept by `hold_unpacked`
    signed: dict[int, SignedUnpacking | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tasks(self) -> int:
        return self.packed[0].shape[0]

    def first(self, count: int) -> "Superposition":
        """The superposition of tasks 0..count-1 only."""
        return replace(self, packed=[p[:count] for p in self.packed],
                       stats=None if self.stats is None else self.stats[:count], counts={}, unpacked={})

    def subset(self, tasks: torch.Tensor) -> "Superposition":
        """The superposition of these tasks only, in this order."""
        return replace(self, packed=[p.index_select(0, tasks) for p in self.packed],
                       stats=None if self.stats is None else [self.stats[int(t)] for t in tasks], counts={},
                       unpacked={})

    def task_chunks(self) -> list[tuple[int, int]]:
        return [(start, min(start + self.chunk, self.tasks)) for start in range(0, self.tasks, self.chunk)]

    def masks(self, site: int, start: int, stop: int) -> torch.Tensor:
        """Tasks start..stop-1 of one site, unpacked: [c, *site shape] float ([c, out, in] on weights)."""
        shape = mask_sites(self.net.spec)[site].shape
        held = self.unpacked.get(site)
        if held is not None:  # bytes, or W * M (never 0 where kept: base weights are +-c)
            return (held[start:stop] != 0).float()
        return unpack(self.packed[site][start:stop], math.prod(shape)).view(stop - start, *shape)

    def masked_weights(self, site: int, start: int, stop: int) -> torch.Tensor:
        """W * M^i for tasks start..stop-1 of one site: [c, out, in] float."""
        held = self.unpacked.get(site)
        if held is not None and held.is_floating_point():
            return held[start:stop]
        if held is not None:
            return held[start:stop] * self.net.base()[site]
        return self._unpack_masked(site, self.packed[site][start:stop])

    def masked_weights_of(self, site: int, tasks: torch.Tensor) -> torch.Tensor:
        """W * M^i for these tasks of one site: [len(tasks), out, in] float."""
        held = self.unpacked.get(site)
        if held is not None:
            chosen = held.index_select(0, tasks)
            return chosen if chosen.is_floating_point() else chosen * self.net.base()[site]
        return self._unpack_masked(site, self.packed[site].index_select(0, tasks))

    def _unpack_masked(self, site: int, packed: torch.Tensor) -> torch.Tensor:
        weight = self.net.base()[site]
        if site not in self.signed:
            self.signed[site] = SignedUnpacking.of(weight)
        signed = self.signed[site]
        if signed is None:
            return unpack(packed, weight.numel()).view(-1, *weight.shape) * weight
        return signed.unpack(packed).reshape(-1, *weight.shape)

    def hold_unpacked(self, sites: Sequence[int], budget: int = DEFAULT_CHUNK_BYTES) -> None:
        """Keep these sites' masks unpacked while this superposition lives, so that a search that reads
        them every round unpacks each mask once: as W * M (float) within 2 x `budget` bytes, else
        as a byte per bit within `budget`, else not at all."""
        sizes = {site: self.net.base()[site].numel() for site in sites if site not in self.unpacked}
        elements = self.tasks * sum(sizes.values())
        if elements > budget:
            return
        for site in sizes:
            weight = self.net.base()[site]
            if 4 * elements <= 2 * budget:
                self.unpacked[site] = self.masked_weights(site, 0, self.tasks)
            else:
                self.unpacked[site] = unpack(self.packed[site], weight.numel(), torch.uint8).view(-1, *weight.shape)

    def kept_by(self, site: int) -> torch.Tensor:
        """How many tasks keep each weight of a site ([out, in] float), counted once per superposition."""
        if site not in self.counts:
            shape = mask_sites(self.net.spec)[site].shape
            self.counts[site] = packed_counts(self.packed[site], math.prod(shape)).view(shape)
        return self.counts[site]


def superposition(net: MaskedNet, packed: Sequence[torch.Tensor], real_outputs: Sequence[int],
                  chunk: int | None = None, stats: list[np.ndarray] | None = None) -> Superposition:
    device = net.base()[0].device
    real = torch.zeros(net.spec.output_size, dtype=torch.bool, device=device)
    real[list(real_outputs)] = True
    if chunk is None:
        largest = max(w.numel() for w in net.base())
        chunk = max(1, DEFAULT_CHUNK_BYTES // (8 * largest))
    return Superposition(net, [p.to(device) for p in packed], real, chunk, stats)


def load_mixed_stats(sup: Superposition, alpha: torch.Tensor) -> None:
    """Batch norm in the superposition normalizes with the tasks' statistics mixed by alpha (their
    weighted mean; a task alone: its own). They are constants to the search: the task is read from
    the gradient with respect to the masks."""
    if sup.stats is None:
        return
    weights = alpha.detach().cpu().double().numpy()
    sup.net.load_stats((weights[:, None] * np.stack(sup.stats)).sum(axis=0).astype(np.float32))


def objective(logits: torch.Tensor, kind: str, real: torch.Tensor) -> torch.Tensor:
    """Per-input objective: entropy H of the softmax, or G = logsumexp with real classes detached."""
    if kind == "entropy":
        return -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum(dim=1)
    if kind == "g":
        if bool(real.all()):
            raise InvalidArgument("objective g needs superfluous output neurons (--output-size above the classes)")
        return torch.where(real, logits.detach(), logits).logsumexp(dim=1)
    raise InvalidArgument(f"--objective must be one of {', '.join(choices.OBJECTIVES)}, got {kind!r}")


def mixed_weights(sup: Superposition, alpha: torch.Tensor) -> list[torch.Tensor]:
    """W_l * sum_i alpha_i M_l^i for one alpha [k] shared by all inputs (at alpha = 1/k: W_l times
    the share of tasks keeping each weight, without unpacking a mask)."""
    if sup.tasks and bool((alpha == alpha[0]).all()):
        return [weight * sup.kept_by(site) * alpha[0] for site, weight in enumerate(sup.net.base())]
    mixed = []
    for site, weight in enumerate(sup.net.base()):
        total = torch.zeros_like(weight)
        for start, stop in sup.task_chunks():
            total += torch.tensordot(alpha[start:stop], sup.masks(site, start, stop), dims=1)
        mixed.append(total * weight)
    return mixed



def task_objective(logits: torch.Tensor, kind: str, real: torch.Tensor) -> torch.Tensor:
    """What `exhaustive` minimizes: H itself; for g, log of the probability on superfluous neurons.

    G's value is dominated by the real logits, which are detached in its gradient; what its
    gradient measures is the superfluous neurons' share, dG/dy_v = p_v, so that share is compared.
    """
    if kind == "g":
        objective(logits[:1], kind, real)  # the same check: g needs superfluous neurons
        return logits[:, ~real].logsumexp(dim=1) - logits.logsumexp(dim=1)
    return objective(logits, kind, real)



@torch.no_grad()
def task_logits(sup: Superposition, x: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
    """Each input's logits under its own task's mask (inputs grouped by task)."""
    logits = torch.empty(x.shape[0], sup.net.spec.output_size, device=x.device)
    sup.net.eval()  # residual networks: each task's own running statistics
    for task in torch.unique(tasks).tolist():
        chosen = tasks == task
        masks = [sup.masks(site, task, task + 1)[0] for site in range(len(sup.packed))]
        if sup.stats is not None:
            sup.net.load_stats(sup.stats[task])
        logits[chosen] = sup.net(x[chosen], masks)
    return logits
