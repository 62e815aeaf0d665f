"""Task inference over any network (a user's module): the same searches as inference.py, with each
layer's gradient taken by autograd instead of written out, so convolutions, norms and skips need
nothing of their own.

With W_l the base weights of masked parameter l and G_l = dObjective/d(W_l * sum_i alpha_i M_l^i)
the gradient with respect to the mixed weights (per input: torch.func.vmap over inputs),

    dObjective / dalpha_i = sum_l sum_j G_l[j] W_l[j] M_l^i[j],

a contraction with the packed masks, a chunk of tasks at a time (as for MLPs). Batch norm uses the
tasks' statistics mixed by the same alpha (superposition.load_mixed_stats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from supsup_cli.engine.masks import packed_dot
from supsup_cli.engine.models import MaskedNet
from supsup_cli.engine.superposition import DEFAULT_CHUNK_BYTES, Superposition, load_mixed_stats, mixed_weights, objective, \
    task_objective

PACKED_DOT_MAX_INPUTS = 2  # up to here, reading the packed bits beats unpacking them


def infer_tasks(sup: Superposition, x: torch.Tensor, method: str, kind: str, same_task: bool = False) -> torch.Tensor:
    """The task of each input (with `same_task`, one task for all)."""
    sup.net.eval()
    if method == "exhaustive":
        values = torch.cat([exhaustive_objectives(sup, part, kind) for part in x.split(_input_batch(sup))])
        return values.sum(dim=0).argmin().expand(x.shape[0]) if same_task else values.argmin(dim=1)
    if method == "one-shot":
        uniform = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
        if same_task:
            return (-alpha_gradients(sup, x, uniform, kind, per_input=False)).argmax(dim=1).expand(x.shape[0])
        return torch.cat([(-alpha_gradients(sup, part, uniform, kind, per_input=True)).argmax(dim=1)
                          for part in x.split(_input_batch(sup))])
    if same_task:
        return binary_shared(sup, x, kind).expand(x.shape[0])
    return torch.cat([binary(sup, part, kind) for part in x.split(_input_batch(sup))])


def weight_gradients(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor, kind: str,
                     per_input: bool) -> list[torch.Tensor]:
    """G_l at alpha for every masked parameter: [B, *shape] per input, or [1, *shape] for the
    objective summed over the inputs."""
    weights = mixed_weights(sup, alpha)
    load_mixed_stats(sup, alpha)
    net, real = sup.net, sup.real
    if not per_input:
        return [g.unsqueeze(0) for g in summed_weight_gradients(net, x, weights, kind, real)]

    def one(mixed: list[torch.Tensor], x1: torch.Tensor) -> torch.Tensor:
        return objective(net.run(x1.unsqueeze(0), mixed), kind, real).sum()

    with torch.enable_grad():
        return list(torch.func.vmap(torch.func.grad(one), in_dims=(None, 0))(weights, x))


def summed_weight_gradients(net: MaskedNet, x: torch.Tensor, weights: Sequence[torch.Tensor], kind: str,
                            real: torch.Tensor) -> list[torch.Tensor]:
    """The gradient of the objective summed over x with respect to each of these weights."""
    with torch.enable_grad():
        leaves = [w.detach().requires_grad_() for w in weights]
        total = objective(net.run(x, leaves), kind, real).sum()
        return list(torch.autograd.grad(total, leaves))


def alpha_gradients(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor, kind: str,
                    per_input: bool) -> torch.Tensor:
    """dObjective/dalpha at alpha: [B, k] per input, or [1, k] for the summed objective."""
    grads = weight_gradients(sup, x, alpha, kind, per_input)
    rows = grads[0].shape[0]
    out = torch.zeros(rows, sup.tasks, device=x.device)
    for site, (weight, grad) in enumerate(zip(sup.net.base(), grads)):
        values = (grad * weight).reshape(rows, -1)
        if rows <= PACKED_DOT_MAX_INPUTS:
            out += packed_dot(sup.packed[site], values)
            continue
        for start, stop in sup.task_chunks():
            out[:, start:stop] += values @ sup.masks(site, start, stop).reshape(stop - start, -1).T
    return out


def binary(sup: Superposition, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Algorithm 2 for each input, all inputs at once: round one is One-Shot's gradient at alpha =
    1/k; in each later round an input's alpha is 1/m on its own m remaining candidates (ties: the
    lower task index), so each input has its own mixed network, computed under vmap."""
    chosen = torch.arange(sup.tasks, device=x.device).expand(x.shape[0], -1)
    uniform = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
    scores = -alpha_gradients(sup, x, uniform, kind, per_input=True)
    while chosen.shape[1] > 1:
        keep = scores.sort(dim=1, descending=True, stable=True).indices[:, : math.ceil(chosen.shape[1] / 2)]
        chosen = chosen.gather(1, keep.sort(dim=1).values)
        if chosen.shape[1] == 1:
            break
        alpha = torch.zeros(x.shape[0], sup.tasks, device=x.device).scatter_(1, chosen, 1.0 / chosen.shape[1])
        scores = -_own_alpha_gradients(sup, x, alpha, kind).gather(1, chosen)
    return chosen[:, 0]


def _own_alpha_gradients(sup: Superposition, x: torch.Tensor, alpha: torch.Tensor, kind: str) -> torch.Tensor:
    """[B, k]: dObjective_b/dalpha at each input's own alpha [B, k] (its network mixed by it)."""
    net, real, base = sup.net, sup.real, sup.net.base()
    mixed = []
    for site, weight in enumerate(base):  # W * sum_i alpha_bi M^i, per input
        total = torch.zeros(x.shape[0], weight.numel(), device=x.device)
        for start, stop in sup.task_chunks():
            total += alpha[:, start:stop] @ sup.masks(site, start, stop).reshape(stop - start, -1)
        mixed.append(total.view(-1, *weight.shape) * weight)
    stats = torch.zeros(x.shape[0], 0, device=x.device) if sup.stats is None else \
        alpha @ torch.from_numpy(np.stack(sup.stats)).to(x.device)

    def one(weights: list[torch.Tensor], mixed_stats: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        logits = net.run_with_stats(x1.unsqueeze(0), weights, mixed_stats) if sup.stats is not None else \
            net.run(x1.unsqueeze(0), weights)
        return objective(logits, kind, real).sum()

    with torch.enable_grad():
        grads = torch.func.vmap(torch.func.grad(one), in_dims=(0, 0, 0))(mixed, stats, x)
    out = torch.zeros(x.shape[0], sup.tasks, device=x.device)
    for site, (weight, grad) in enumerate(zip(base, grads)):
        values = (grad * weight).reshape(x.shape[0], -1)
        for start, stop in sup.task_chunks():
            out[:, start:stop] += values @ sup.masks(site, start, stop).reshape(stop - start, -1).T
    return out


def binary_shared(sup: Superposition, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Algorithm 2 with one task for all of x: each round superimposes the remaining candidates only
    (the others have alpha 0), keeps the half with the largest -dObjective/dalpha (ties: lower index)."""
    candidates = torch.arange(sup.tasks, device=x.device)
    while len(candidates) > 1:
        remaining = sup.subset(candidates)
        alpha = torch.full((len(candidates),), 1.0 / len(candidates), device=x.device)
        scores = -alpha_gradients(remaining, x, alpha, kind, per_input=False)[0]
        ranked = scores.sort(descending=True, stable=True).indices[: math.ceil(len(candidates) / 2)]
        candidates = candidates[ranked.sort().values]
    return candidates[:1]


@torch.no_grad()
def exhaustive_objectives(sup: Superposition, x: torch.Tensor, kind: str) -> torch.Tensor:
    """[B, k]: each input's objective under each task's own mask and statistics."""
    values = torch.empty(x.shape[0], sup.tasks, device=x.device)
    for start, stop in sup.task_chunks():
        masked = [sup.masked_weights(site, start, stop) for site in range(len(sup.packed))]
        for offset, task in enumerate(range(start, stop)):
            if sup.stats is not None:
                sup.net.load_stats(sup.stats[task])
            logits = sup.net.run(x, [m[offset] for m in masked])
            values[:, task] = task_objective(logits, kind, sup.real)
    return values


def _input_batch(sup: Superposition) -> int:
    """Inputs per pass, so that their per-input gradients stay within DEFAULT_CHUNK_BYTES."""
    return max(1, DEFAULT_CHUNK_BYTES // (4 * sum(w.numel() for w in sup.net.base())))
