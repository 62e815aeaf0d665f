"""Task-identity inference by superposition, vectorized over tasks and inputs.

For masks on weights, the network with coefficients alpha over k tasks uses, in layer l, the weights
W_l * sum_i alpha_i M_l^i. With a_l the layer's pre-activation, h_{l-1} its input and
delta_l = dObjective/da_l (one row per input, from one backward pass), each input's gradient is

    dObjective_b / dalpha_i = sum_l sum_{v,u} delta_l[b, v] h_{l-1}[b, u] W_l[v, u] M_l^i[v, u],

a contraction with the stacked masks. Masks stay bit-packed ([k, ceil(n/8)] uint8 per site) and
are unpacked a chunk of tasks at a time, so memory does not grow with k and the result does not
depend on the chunk size.

Binary on a batch runs its first round on one network for all inputs; from the second on, each
input has its own candidates, and a round works on the (input, candidate) pairs only, grouped by
task (CandidatePairs), so the whole search costs about twice its first round instead of log2 k
times it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from supsup_cli.core import choices
from supsup_cli.engine import module_inference
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.engine.candidate_pairs import CandidatePairs
from supsup_cli.engine.masks import packed_dot
from supsup_cli.engine.models import MaskedNet
from supsup_cli.core.registry import MODULE
from supsup_cli.engine.superposition import DEFAULT_CHUNK_BYTES, Superposition, mixed_weights, objective, task_objective

METHODS = choices.METHODS
OBJECTIVES = choices.OBJECTIVES
PACKED_DOT_MAX_INPUTS = 2  # up to here, reading packed bits beats unpacking (measured: 2.4x for one input)


def first_layer_outputs(sup: Superposition, x: torch.Tensor) -> torch.Tensor:
    """[B, k, out]: each task's first-layer pre-activation (W_0 * M_0^i) x_b. It does not depend on
    alpha, so a search that moves alpha computes it once; the first layer's part of a round is then
    alpha . this, and its share of every gradient delta_0 . this."""
    h = x.reshape(x.shape[0], -1)
    weight = sup.net.base()[0]
    outputs = torch.empty(h.shape[0], sup.tasks, weight.shape[0], device=x.device)
    for start, stop in sup.task_chunks():  # one matrix product per chunk: h against c * out rows
        masked = sup.masked_weights(0, start, stop).reshape(-1, weight.shape[1])
        outputs[:, start:stop] = (h @ masked.T).view(h.shape[0], stop - start, -1)
    return outputs


def forward_recording(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor
                      ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """With one alpha [k] for all inputs: logits, each layer's input h_{l-1}, and each
    pre-activation a_l (which requires grad)."""
    return record_forward(sup.net, x, mixed_weights(sup, alpha))


def record_forward(net: MaskedNet, x: torch.Tensor, weights: Sequence[torch.Tensor]
                   ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """An MLP with these (mixed) weights: logits, each layer's input, each pre-activation (with grad)."""
    h = x.reshape(x.shape[0], -1)
    inputs, pre = [], []
    for site, weight in enumerate(weights):
        inputs.append(h.detach())
        a = F.linear(h, weight)
        if not a.requires_grad:  # the first layer: weights and input are constants
            a.requires_grad_()
        pre.append(a)
        if site < len(weights) - 1:
            h = _activation(net, a)
    return pre[-1], inputs, pre


def _activation(net: MaskedNet, a: torch.Tensor) -> torch.Tensor:
    return F.relu(a) if net.spec.activation == "relu" else F.silu(a)


def alpha_gradients(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor, kind: str,
                    same_task: bool, first: torch.Tensor | None = None) -> torch.Tensor:
    """dObjective/dalpha at one alpha [k] for all inputs: [B, k] per input, or [1, k] for the summed
    objective. With `first` (first_layer_outputs), the first layer's share is read from it."""
    with torch.enable_grad():
        logits, inputs, pre = forward_recording(sup, x, alpha)
        deltas = torch.autograd.grad(objective(logits, kind, sup.real).sum(), pre)
    rows = 1 if same_task else x.shape[0]
    grads = torch.zeros(rows, sup.tasks, device=x.device)
    for site, (weight, h, delta) in enumerate(zip(sup.net.base(), inputs, deltas)):
        if same_task:  # sum over inputs of delta_b h_b^T, times W: one vector, read against the packed bits
            grads += packed_dot(sup.packed[site], (delta.T @ h * weight).reshape(1, -1))
        elif site == 0 and first is not None:  # dObjective/dalpha_i = delta_0 . (W_0 * M_0^i) x
            grads += torch.bmm(first, delta.unsqueeze(2)).squeeze(2)
        elif rows <= PACKED_DOT_MAX_INPUTS:
            grads += packed_dot(sup.packed[site], (delta.unsqueeze(2) * h.unsqueeze(1) * weight).reshape(rows, -1))
        else:
            for start, stop in sup.task_chunks():
                grads[:, start:stop] += per_input_contraction(sup.masked_weights(site, start, stop), delta, h)
    return grads


def per_input_contraction(masked: torch.Tensor, delta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """[B, c]: sum_{v,u} delta[b, v] masked[i, v, u] h[b, u], through the smaller side of the layer,
    each a single matrix product on the masks as they lie in memory, then one batched dot per input
    (no elementwise product of that product's size)."""
    chunk, out, inp = masked.shape
    if inp <= out:  # delta @ masked: [c, B, in], then dot with h
        through = torch.matmul(delta, masked).transpose(0, 1)
        return torch.bmm(through, h.unsqueeze(2)).squeeze(2)
    through = (h @ masked.reshape(chunk * out, inp).T).view(-1, chunk, out)
    return torch.bmm(through, delta.unsqueeze(2)).squeeze(2)


def one_shot(sup: Superposition, x: torch.Tensor, kind: str, same_task: bool = False) -> torch.Tensor:
    """Algorithm 1: the task whose coefficient decreases the objective fastest, per input."""
    alpha = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
    scores = -alpha_gradients(sup, x, alpha, kind, same_task)
    return scores.argmax(dim=1).expand(x.shape[0])


def binary(sup: Superposition, x: torch.Tensor, kind: str, same_task: bool = False) -> torch.Tensor:
    """Algorithm 2: keep the half of the candidates with the largest -dObjective/dalpha, ceil(log2 k) times
    (ties go to the lower task index)."""
    if same_task:
        return _binary_shared(sup, x, kind)
    if x.shape[0] <= PACKED_DOT_MAX_INPUTS:
        # An input alone is its own batch: each round superimposes only its remaining candidates,
        # read from the packed bits, so the work halves every round.
        return torch.cat([_binary_shared(sup, x[row : row + 1], kind) for row in range(x.shape[0])])
    if x.shape[0] > _binary_batch(sup):
        return torch.cat([binary(sup, part, kind) for part in x.split(_binary_batch(sup))])
    chosen = torch.arange(sup.tasks, device=x.device).expand(x.shape[0], -1)
    if sup.tasks == 1:
        return chosen[:, 0]
    sup.hold_unpacked(range(1, len(sup.packed)))  # read every round
    first = first_layer_outputs(sup, x)
    uniform = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
    scores = -alpha_gradients(sup, x, uniform, kind, same_task=False, first=first)  # round one: one network
    while True:
        keep = scores.sort(dim=1, descending=True, stable=True).indices[:, : math.ceil(chosen.shape[1] / 2)]
        keep = keep.sort(dim=1).values  # each row in task order
        chosen = chosen.gather(1, keep)
        if chosen.shape[1] == 1:
            return chosen[:, 0]
        first = first.gather(1, keep.unsqueeze(2).expand(-1, -1, first.shape[2]))  # the candidates' only
        scores = -candidate_gradients(sup, first, chosen, kind)


def _binary_batch(sup: Superposition) -> int:
    """Inputs searched together, so that the first layer's outputs under every task fit in
    3 x DEFAULT_CHUNK_BYTES."""
    return max(1, 3 * DEFAULT_CHUNK_BYTES // (4 * sup.tasks * sup.net.base()[0].shape[0]))


def candidate_gradients(sup: Superposition, first: torch.Tensor, chosen: torch.Tensor, kind: str) -> torch.Tensor:
    """[B, m]: dObjective_b/dalpha_i for each input's own m remaining candidates chosen[b] (alpha = 1/m
    on them, 0 elsewhere), and for those only. `first` [B, m, out] holds the candidates' first-layer
    outputs; each later layer runs as one small product per task over the inputs still holding it
    (CandidatePairs), so a round costs in proportion to the candidates left, not to k, and the
    search about twice its first round."""
    batch, m = chosen.shape
    pairs = CandidatePairs.of(chosen, sup.tasks)
    pre, per_pair = [first.sum(dim=1) / m], []
    for site in range(1, len(sup.packed)):
        per_pair.append(pairs.products(sup, site, _activation(sup.net, pre[-1])))  # (W * M^i) h_b per pair
        pre.append(pairs.sum_per_input(per_pair[-1]) / m)
    with torch.enable_grad():
        logits = pre[-1].requires_grad_()
        delta = torch.autograd.grad(objective(logits, kind, sup.real).sum(), logits)[0]
    grads = torch.zeros(batch, m, device=first.device)
    for site in range(len(sup.packed) - 1, 0, -1):
        grads += pairs.dots(per_pair[site - 1], delta)
        delta = _activation_backward(sup, pre[site - 1], pairs.transposed_sum(sup, site, delta) / m)
    return grads + torch.bmm(first, delta.unsqueeze(2)).squeeze(2)


def _activation_backward(sup: Superposition, a: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """upstream times the activation's derivative at a (written out: autograd given an upstream
    gradient imports torch.fx on its first call, 1.6 s of a command's start-up)."""
    if sup.net.spec.activation == "relu":
        return upstream * (a > 0)
    sigmoid = torch.sigmoid(a)
    return upstream * sigmoid * (1 + a * (1 - sigmoid))


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


def check_superposable(sup: Superposition) -> None:
    if sup.net.spec.mask_on != "weights":
        raise InvalidArgument(f"{sup.net.spec.name} masks neurons: infer its tasks with --hopfield, or give --task")
    if sup.net.spec.family == "resnet":
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
    if sup.net.spec.family == MODULE:
        return module_inference.infer_tasks(sup, x, method, kind, same_task)
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
