"""Scenario NNs: deciding, without task ids, whether data belongs to a known mask or needs a new one.

With alpha uniform over the K candidate masks and nu = softmax(-dH/dalpha) (H the batch's mean
output entropy), the model is uncertain when K * max(nu) < 1 + epsilon: no mask explains the data
markedly better than the others, so a new mask is allocated (paper, section 3.4). With fewer than
MIN_CANDIDATES masks, untrained random masks fill the candidates, as in the paper's code: with a
single mask, nu would otherwise always be exactly uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from supsup_cli.engine import inference, module_inference, superposition
from supsup_cli.core import prng
from supsup_cli.engine.masks import binarize, pack, packed_counts, packed_dot
from supsup_cli.engine.models import MaskedNet
from supsup_cli.core.registry import MODULE
from supsup_cli.engine.training import TrainConfig, initial_scores

EPSILON = 2.0**-3
MIN_CANDIDATES = 5


@dataclass(frozen=True)
class Uncertainty:
    nu: torch.Tensor  # softmax(-dH/dalpha) over the K candidates, padding included

    @property
    def statistic(self) -> float:
        """K * max(nu): 1 when nu is uniform, K when one candidate takes it all."""
        return len(self.nu) * float(self.nu.max())

    def best(self, among: int | None = None) -> int:
        """The candidate with the largest nu, among the first `among` if given."""
        return int(self.nu[:among].argmax())


def padding_masks(net: MaskedNet, config: TrainConfig, count: int) -> list[torch.Tensor]:
    """`count` untrained masks (fresh random scores), bit-packed per site: [count, ceil(n/8)]."""
    generator = torch.Generator().manual_seed(prng.task_seed(config.seed, 0, "padding"))
    sites = [[] for _ in net.base()]
    for _ in range(count):
        for site, scores in enumerate(initial_scores(net, config, None, generator)):
            sites[site].append(pack(binarize(scores, config.density).reshape(-1)))
    return [torch.stack(rows) if rows else torch.zeros(0, 0, dtype=torch.uint8) for rows in sites]


class Candidates:
    """The masks a decision weighs, without copying or recounting the committed ones at every decision.

    The masks committed before the --auto call are read as they lie (bit-packed), and how many of them
    keep each weight is counted once; a decision passes only what differs: the committed masks it
    has trained since (their current bits replace their committed ones) and the masks added after
    them (new masks, then untrained padding). At thousands of masks this is what keeps a decision
    cheap beside training: before, each one stacked and recounted every mask."""

    def __init__(self, net: MaskedNet, committed: Sequence[torch.Tensor]) -> None:
        self.net = net
        self.committed = list(committed)
        self.committed_counts = [packed_counts(p, w.numel()).view(w.shape) for p, w in zip(committed, net.base())]

    @property
    def held(self) -> int:
        return self.committed[0].shape[0] if self.committed else 0

    def uncertainty(self, replaced: dict[int, list[torch.Tensor]], added: Sequence[torch.Tensor], x: torch.Tensor,
                    real_outputs: Sequence[int]) -> Uncertainty:
        """One-Shot on a batch over the committed masks (those in `replaced`, {task: packed row per site},
        with their new bits) followed by `added` (per site [extra, ceil(n/8)])."""
        device = x.device
        tasks = torch.tensor(sorted(replaced), dtype=torch.long, device=device)
        rows = [torch.stack([replaced[t][site] for t in sorted(replaced)]) if replaced else None
                for site in range(len(self.committed))]
        total = self.held + (added[0].shape[0] if added else 0)
        weights = []
        for site, weight in enumerate(self.net.base()):
            counts = self.committed_counts[site].clone()
            if rows[site] is not None:
                counts -= packed_counts(self.committed[site].index_select(0, tasks), weight.numel()).view(weight.shape)
                counts += packed_counts(rows[site], weight.numel()).view(weight.shape)
            if added:
                counts += packed_counts(added[site], weight.numel()).view(weight.shape)
            weights.append(weight * counts * (1.0 / total))  # W * sum_i alpha_i M^i at alpha = 1/K
        real = torch.zeros(self.net.spec.output_size, dtype=torch.bool, device=device)
        real[list(real_outputs)] = True
        gradient = torch.zeros(total, device=device)
        for site, (weight, grad) in enumerate(zip(self.net.base(), self._weight_gradients(x, weights, real))):
            # dH/dalpha_i summed over the batch: (dH/dW_mixed * W) read against each mask's packed bits
            values = (grad * weight).reshape(1, -1)
            per_mask = [packed_dot(self.committed[site], values)[0]] if self.held else []
            if rows[site] is not None:
                per_mask[0][tasks] = packed_dot(rows[site], values)[0]
            if added:
                per_mask.append(packed_dot(added[site], values)[0])
            gradient += torch.cat(per_mask)
        return Uncertainty(torch.softmax(-gradient / x.shape[0], dim=0).cpu())

    def _weight_gradients(self, x: torch.Tensor, weights: Sequence[torch.Tensor],
                          real: torch.Tensor) -> list[torch.Tensor]:
        """dH/dW for each mixed weight, H summed over the batch: written out for MLPs (delta^T h), by
        autograd for a module."""
        if self.net.spec.family == MODULE:
            return module_inference.summed_weight_gradients(self.net, x, weights, "entropy", real)
        with torch.enable_grad():
            logits, inputs, pre = inference.record_forward(self.net, x, weights)
            deltas = torch.autograd.grad(superposition.objective(logits, "entropy", real).sum(), pre)
        return [delta.T @ h for h, delta in zip(inputs, deltas)]
