"""Task-identity inference by superposition, vectorized over tasks and inputs.

For masks on weights, the network with coefficients alpha over k tasks uses, in layer l, the weights
W_l * sum_i alpha_i M_l^i. With a_l the layer's pre-activation, h_{l-1} its input and
delta_l = dObjective/da_l (one row per input, from one backward pass), each input's gradient is

    dObjective_b / dalpha_i = sum_l sum_{v,u} delta_l[b, v] h_{l-1}[b, u] W_l[v, u] M_l^i[v, u],

a contraction with the stacked masks. Masks stay bit-packed ([k, ceil(n/8)] uint8 per site) and
are unpacked a chunk of tasks at a time, so memory does not grow with k and the result does not
depend on the chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from supsup_cli import choices
from supsup_cli.errors import InvalidArgument
from supsup_cli.masks import packed_counts, packed_dot, unpack
from supsup_cli.models import MaskedNet
from supsup_cli.registry import mask_sites

METHODS = choices.METHODS
OBJECTIVES = choices.OBJECTIVES
DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024
PACKED_DOT_MAX_INPUTS = 2  # up to here, reading packed bits beats unpacking (measured: 2.4x for one input)


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
        weight = self.net.base()[site]
        return (held[start:stop] if held is not None else self.masks(site, start, stop)) * weight

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
            bits = unpack(self.packed[site], weight.numel(), torch.uint8).view(-1, *weight.shape)
            self.unpacked[site] = bits * weight if 4 * elements <= 2 * budget else bits

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


def objective(logits: torch.Tensor, kind: str, real: torch.Tensor) -> torch.Tensor:
    """Per-input objective: entropy H of the softmax, or G = logsumexp with real classes detached."""
    if kind == "entropy":
        return -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum(dim=1)
    if kind == "g":
        if bool(real.all()):
            raise InvalidArgument("objective g needs superfluous output neurons (--output-size above the classes)")
        return torch.where(real, logits.detach(), logits).logsumexp(dim=1)
    raise InvalidArgument(f"--objective must be one of {', '.join(OBJECTIVES)}, got {kind!r}")


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


def mixed_layer(sup: Superposition, site: int, h: torch.Tensor, alpha: torch.Tensor,
                record: torch.Tensor | None = None) -> torch.Tensor:
    """a[b] = sum_i alpha[b, i] (W * M^i) h[b]: one network per input, never materialized. `record`
    ([k, B, out]) receives each task's (W * M^i) h[b]."""
    weight = sup.net.base()[site]
    out = torch.zeros(h.shape[0], weight.shape[0], device=h.device)
    for start, stop in sup.task_chunks():
        per_task = h @ sup.masked_weights(site, start, stop).transpose(1, 2)  # [c, B, out]
        out = out + torch.einsum("bc,cbo->bo", alpha[:, start:stop], per_task)
        if record is not None:
            record[start:stop] = per_task.detach()
    return out


def first_layer_outputs(sup: Superposition, x: torch.Tensor) -> torch.Tensor:
    """[k, B, out]: each task's first-layer pre-activation (W_0 * M_0^i) x_b. It does not depend on
    alpha, so a search that moves alpha computes it once, and the first layer's share of every
    gradient is then delta_0 . this, instead of a contraction with the layer's weights."""
    h = x.reshape(x.shape[0], -1)
    weight = sup.net.base()[0]
    outputs = torch.empty(sup.tasks, h.shape[0], weight.shape[0], device=x.device)
    for start, stop in sup.task_chunks():
        torch.matmul(h, sup.masked_weights(0, start, stop).transpose(1, 2), out=outputs[start:stop])
    return outputs


def forward_recording(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor, first: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor | None]]:
    """Logits, each layer's input h_{l-1}, each pre-activation a_l (which requires grad), and where
    the layer was mixed per input from every task's outputs, those outputs ([k, B, out], else None).
    With `first` (first_layer_outputs), the first layer is mixed from it."""
    shared = alpha.dim() == 1
    weights = mixed_weights(sup, alpha) if shared else None
    h = x.reshape(x.shape[0], -1)
    inputs, pre, outputs = [], [], []
    last = len(sup.net.base()) - 1
    for site in range(last + 1):
        inputs.append(h.detach())
        per_input = first is not None and not shared
        if site == 0 and per_input:
            a, record = torch.einsum("bi,ibo->bo", alpha, first), first
        else:
            record = torch.empty(sup.tasks, h.shape[0], sup.net.base()[site].shape[0], device=x.device) \
                if per_input else None
            a = F.linear(h, weights[site]) if shared else mixed_layer(sup, site, h, alpha, record)
        outputs.append(record)
        if not a.requires_grad:  # the first layer: weights and input are constants
            a.requires_grad_()
        pre.append(a)
        if site < last:
            h = F.relu(a) if sup.net.spec.activation == "relu" else F.silu(a)
    return pre[-1], inputs, pre, outputs


def alpha_gradients(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor, kind: str,
                    same_task: bool, first: torch.Tensor | None = None) -> torch.Tensor:
    """dObjective/dalpha at alpha: [B, k] per input, or [1, k] for the summed objective."""
    with torch.enable_grad():
        logits, inputs, pre, outputs = forward_recording(sup, x, alpha, first)
        deltas = torch.autograd.grad(objective(logits, kind, sup.real).sum(), pre)
    rows = 1 if same_task else x.shape[0]
    grads = torch.zeros(rows, sup.tasks, device=x.device)
    for site, (weight, h, delta, per_task) in enumerate(zip(sup.net.base(), inputs, deltas, outputs)):
        if per_task is not None:  # dObjective/dalpha_i = delta . (W * M^i) h, each already computed
            grads += torch.einsum("bo,ibo->bi", delta, per_task)
            continue
        if same_task:  # sum over inputs of delta_b h_b^T, times W: one vector, read against the packed bits
            grads += packed_dot(sup.packed[site], (delta.T @ h * weight).reshape(1, -1))
            continue
        if site == 0 and first is not None:  # round one of Binary: alpha shared, the first layer known
            grads += torch.einsum("bo,ibo->bi", delta, first)
            continue
        if rows <= PACKED_DOT_MAX_INPUTS:
            grads += packed_dot(sup.packed[site], (delta.unsqueeze(2) * h.unsqueeze(1) * weight).reshape(rows, -1))
            continue
        for start, stop in sup.task_chunks():
            grads[:, start:stop] += per_input_contraction(sup.masked_weights(site, start, stop), delta, h)
    return grads


def per_input_contraction(masked: torch.Tensor, delta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """[B, c]: sum_{v,u} delta[b, v] masked[i, v, u] h[b, u], through the smaller side of the layer."""
    chunk, out, inp = masked.shape
    if inp <= out:  # delta @ masked: [B, c, in], then dot with h
        through = (delta @ masked.permute(1, 0, 2).reshape(out, chunk * inp)).view(-1, chunk, inp)
        return (through * h.unsqueeze(1)).sum(dim=2)
    through = (h @ masked.permute(2, 0, 1).reshape(inp, chunk * out)).view(-1, chunk, out)
    return (through * delta.unsqueeze(1)).sum(dim=2)


def one_shot(sup: Superposition, x: torch.Tensor, kind: str, same_task: bool = False) -> torch.Tensor:
    """Algorithm 1: the task whose coefficient decreases the objective fastest, per input."""
    alpha = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
    scores = -alpha_gradients(sup, x, alpha, kind, same_task)
    return scores.argmax(dim=1).expand(x.shape[0])


def binary(sup: Superposition, x: torch.Tensor, kind: str, same_task: bool = False) -> torch.Tensor:
    """Algorithm 2: keep the half of the candidates with the largest -dObjective/dalpha, ceil(log2 k) times."""
    if same_task:
        return _binary_shared(sup, x, kind)
    if x.shape[0] <= PACKED_DOT_MAX_INPUTS:
        # An input alone is its own batch: each round superimposes only its remaining candidates,
        # read from the packed bits, so the work halves every round.
        return torch.cat([_binary_shared(sup, x[row : row + 1], kind) for row in range(x.shape[0])])
    if x.shape[0] > _binary_batch(sup):
        return torch.cat([binary(sup, part, kind) for part in x.split(_binary_batch(sup))])
    sup.hold_unpacked(range(1, len(sup.packed)))  # read every round
    first = first_layer_outputs(sup, x)
    candidates = torch.ones(x.shape[0], sup.tasks, dtype=torch.bool, device=x.device)
    remaining = sup.tasks  # known on the host every round: no device synchronization in the loop
    while remaining > 1:
        alpha = candidates.float() / remaining
        shared = remaining == sup.tasks  # one network for all inputs
        scores = -alpha_gradients(sup, x, alpha[0] if shared else alpha, kind, same_task=False, first=first)
        remaining = math.ceil(remaining / 2)
        keep = scores.masked_fill(~candidates, -math.inf).topk(remaining, dim=1).indices
        candidates = torch.zeros_like(candidates).scatter_(1, keep, True)
    return candidates.float().argmax(dim=1)


def _binary_batch(sup: Superposition) -> int:
    """Inputs searched together, so that every layer's outputs under every task fit in
    2 x DEFAULT_CHUNK_BYTES."""
    outputs = sum(w.shape[0] for w in sup.net.base())
    return max(1, 2 * DEFAULT_CHUNK_BYTES // (4 * sup.tasks * outputs))


def _binary_shared(sup: Superposition, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Algorithm 2 with one task for all inputs: a discarded task has alpha 0 and no longer counts,
    so each round superimposes the remaining candidates only, and the work halves with them."""
    candidates = torch.arange(sup.tasks, device=x.device)
    while len(candidates) > 1:
        remaining = sup.subset(candidates)
        alpha = torch.full((len(candidates),), 1.0 / len(candidates), device=x.device)
        scores = -alpha_gradients(remaining, x, alpha, kind, same_task=True)[0]
        keep = scores.topk(math.ceil(len(candidates) / 2)).indices
        candidates = candidates[keep.sort().values]
    return candidates.expand(x.shape[0])


@torch.no_grad()
def exhaustive_objectives(sup: Superposition, x: torch.Tensor, kind: str) -> torch.Tensor:
    """[B, k]: each input's objective under each task's own mask (k forward passes, batched)."""
    values = torch.empty(x.shape[0], sup.tasks, device=x.device)
    weights = sup.net.base()
    for start, stop in sup.task_chunks():
        h = x.reshape(x.shape[0], -1).unsqueeze(0)  # [1, B, in], then [c, B, features]
        for site, weight in enumerate(weights):
            h = h @ sup.masked_weights(site, start, stop).transpose(1, 2)
            if site < len(weights) - 1:
                h = F.relu(h) if sup.net.spec.activation == "relu" else F.silu(h)
        values[:, start:stop] = task_objective(h.reshape(-1, h.shape[-1]), kind, sup.real).view(stop - start, -1).T
    return values


def task_objective(logits: torch.Tensor, kind: str, real: torch.Tensor) -> torch.Tensor:
    """What `exhaustive` minimizes: H itself; for g, log of the probability on superfluous neurons.

    G's value is dominated by the real logits, which are detached in its gradient; what its
    gradient measures is the superfluous neurons' share, dG/dy_v = p_v, so that share is compared.
    """
    if kind == "g":
        objective(logits[:1], kind, real)  # the same check: g needs superfluous neurons
        return logits[:, ~real].logsumexp(dim=1) - logits.logsumexp(dim=1)
    return objective(logits, kind, real)


def check_superposable(sup: Superposition) -> None:
    if sup.net.spec.mask_on != "weights":
        raise InvalidArgument(f"{sup.net.spec.name} masks neurons: infer its tasks with --hopfield, or give --task")
    if sup.net.spec.family != "mlp":
        raise InvalidArgument(f"{sup.net.spec.name} archives are for scenario GG (per-task batch norm): give --task")


def check_choices(method: str, kind: str) -> None:
    if method not in METHODS:
        raise InvalidArgument(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if kind not in OBJECTIVES:
        raise InvalidArgument(f"--objective must be one of {', '.join(OBJECTIVES)}, got {kind!r}")


def infer_tasks(sup: Superposition, x: torch.Tensor, method: str, kind: str, same_task: bool = False) -> torch.Tensor:
    """The task of each input (with `same_task`, one task for all), inputs taken a batch at a time."""
    check_choices(method, kind)
    check_superposable(sup)
    objective(torch.zeros(1, sup.net.spec.output_size, device=x.device), kind, sup.real)  # g: needs s-neurons
    parts = x.split(_input_batch(sup))
    if method == "exhaustive":
        values = torch.cat([exhaustive_objectives(sup, part, kind) for part in parts])
        return values.sum(dim=0).argmin().expand(x.shape[0]) if same_task else values.argmin(dim=1)
    search = one_shot if method == "one-shot" else binary
    if same_task:
        return search(sup, x, kind, same_task=True)
    return torch.cat([search(sup, part, kind) for part in parts])


def _input_batch(sup: Superposition) -> int:
    """Inputs per pass, so that the largest intermediate stays within DEFAULT_CHUNK_BYTES."""
    weights = sup.net.base()
    per_input = 4 * sup.chunk * max(max(w.shape) for w in weights)  # a layer per input and task of a chunk
    return max(1, DEFAULT_CHUNK_BYTES // per_input)


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
