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

from supsup_cli import inference, prng
from supsup_cli.masks import binarize, pack
from supsup_cli.models import MaskedNet
from supsup_cli.training import TrainConfig, initial_scores

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


def uncertainty(net: MaskedNet, packed: Sequence[torch.Tensor], x: torch.Tensor,
                real_outputs: Sequence[int]) -> Uncertainty:
    """One-Shot on a batch, over candidate masks `packed` (per site [K, ceil(n/8)])."""
    sup = inference.superposition(net, packed, real_outputs)
    alpha = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
    gradient = inference.alpha_gradients(sup, x, alpha, "entropy", same_task=True)[0] / x.shape[0]
    return Uncertainty(torch.softmax(-gradient, dim=0).cpu())
