"""Straightforward task inference, one input at a time with autograd: what the vectorized code must match."""

from __future__ import annotations

import math

import torch

from supsup_cli.engine import superposition
from supsup_cli.engine.masks import unpack


def all_masks(sup: superposition.Superposition) -> list[torch.Tensor]:
    """[k, out, in] float masks per site, fully unpacked."""
    return [unpack(p, w.numel()).view(-1, *w.shape) for p, w in zip(sup.packed, sup.net.base())]


def alpha_gradient(sup, masks, x1: torch.Tensor, alpha: torch.Tensor, kind: str) -> torch.Tensor:
    sup.net.eval()
    superposition.load_mixed_stats(sup, alpha)  # a module's batch norm: the tasks' statistics mixed by alpha
    alpha = alpha.clone().requires_grad_()
    mixed = [torch.tensordot(alpha, m, dims=1) for m in masks]
    logits = sup.net(x1, mixed)
    return torch.autograd.grad(superposition.objective(logits, kind, sup.real).sum(), alpha)[0]


def one_shot(sup, x: torch.Tensor, kind: str) -> list[int]:
    masks, k = all_masks(sup), sup.tasks
    return [int((-alpha_gradient(sup, masks, x[b:b + 1], torch.full((k,), 1.0 / k), kind)).argmax())
            for b in range(x.shape[0])]


def binary(sup, x: torch.Tensor, kind: str) -> list[int]:
    masks, chosen = all_masks(sup), []
    for b in range(x.shape[0]):
        candidates = list(range(sup.tasks))
        while len(candidates) > 1:
            alpha = torch.zeros(sup.tasks)
            alpha[candidates] = 1.0 / len(candidates)
            scores = -alpha_gradient(sup, masks, x[b:b + 1], alpha, kind)
            ranked = sorted(candidates, key=lambda t: -float(scores[t]))
            candidates = sorted(ranked[: math.ceil(len(candidates) / 2)])
        chosen.append(candidates[0])
    return chosen


@torch.no_grad()
def exhaustive(sup, x: torch.Tensor, kind: str) -> list[int]:
    masks = all_masks(sup)
    sup.net.eval()

    def objective_of(task: int) -> torch.Tensor:
        if sup.stats is not None:
            sup.net.load_stats(sup.stats[task])
        return superposition.task_objective(sup.net(x, [m[task] for m in masks]), kind, sup.real)

    values = torch.stack([objective_of(t) for t in range(sup.tasks)], dim=1)
    return values.argmin(dim=1).tolist()


def one_shot_same_task(sup, x: torch.Tensor, kind: str) -> int:
    """One task for the whole batch: the gradient of the summed objective."""
    masks, k = all_masks(sup), sup.tasks
    return int((-alpha_gradient(sup, masks, x, torch.full((k,), 1.0 / k), kind)).argmax())


def binary_same_task(sup, x: torch.Tensor, kind: str) -> int:
    masks, candidates = all_masks(sup), list(range(sup.tasks))
    while len(candidates) > 1:
        alpha = torch.zeros(sup.tasks)
        alpha[candidates] = 1.0 / len(candidates)
        scores = -alpha_gradient(sup, masks, x, alpha, kind)
        candidates = sorted(sorted(candidates, key=lambda t: -float(scores[t]))[: math.ceil(len(candidates) / 2)])
    return candidates[0]
