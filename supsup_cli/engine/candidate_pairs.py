"""The (input, candidate) pairs of a round of Binary on a batch, grouped by task.

From its second round on, each input of a batch has its own remaining candidates. A layer's
products are then needed for those pairs only: grouped by task, each layer runs as one small matrix
product per task over the inputs still holding it, so a round costs in proportion to the candidates
left. The searches themselves are in inference.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from supsup_cli.engine.superposition import Superposition

PIECE_BYTES = 16 * 2**20  # gathered inputs, or masked weights, taken at a time


@dataclass(frozen=True)
class _Bin:
    tasks: torch.Tensor  # [T] task indices
    inputs: torch.Tensor  # [T, width]: the inputs holding each task, padded with B
    pairs: torch.Tensor  # [T, width]: the same pairs as indices b * m + j into chosen, B * m at the padding


@dataclass(frozen=True)
class CandidatePairs:
    """A round's (input, candidate) pairs grouped by task. Tasks held by similar numbers of inputs
    (within a factor of two) share a bin, padded to its largest, so the padding stays under half the
    work whether the inputs agree on their candidates (a few tasks held by all) or not (every task
    held by a few)."""

    bins: list[_Bin]
    batch: int
    m: int

    @classmethod
    def of(cls, chosen: torch.Tensor, tasks: int) -> "CandidatePairs":
        batch, m = chosen.shape
        task = chosen.reshape(-1)
        order = torch.argsort(task, stable=True)  # pair indices, grouped by task
        counts = torch.bincount(task, minlength=tasks)
        starts = counts.cumsum(0) - counts
        slot = torch.arange(task.numel(), device=task.device) - starts[task[order]]
        by_count = torch.argsort(counts, descending=True, stable=True)
        sorted_counts = counts[by_count].tolist()
        bins, first = [], 0
        while first < tasks and sorted_counts[first] > 0:
            width = sorted_counts[first]
            last = first
            while last < tasks and 2 * sorted_counts[last] > width:
                last += 1
            members = by_count[first:last].sort().values  # in task order: all k of them are a plain slice
            rank = torch.full((tasks,), -1, dtype=torch.long, device=task.device)
            rank[members] = torch.arange(last - first, device=task.device)
            inside = rank[task[order]] >= 0
            pairs = torch.full((last - first, width), batch * m, dtype=torch.long, device=task.device)
            pairs[rank[task[order][inside]], slot[inside]] = order[inside]
            bins.append(_Bin(members, torch.where(pairs < batch * m, pairs // m, batch), pairs))
            first = last
        return cls(bins, batch, m)

    def sum_per_input(self, per_pair: list[torch.Tensor]) -> torch.Tensor:
        """Per bin [T, width, f] -> [B, f]: each input's sum over its pairs."""
        total = per_pair[0].new_zeros(self.batch + 1, per_pair[0].shape[2])
        for b, values in zip(self.bins, per_pair):
            total.index_add_(0, b.inputs.reshape(-1), values.reshape(-1, values.shape[2]))
        return total[: self.batch]

    def dots(self, per_pair: list[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        """[B, m]: delta_b . values of each pair, in the order of chosen."""
        out = delta.new_zeros(self.batch * self.m + 1)
        padded = _padded(delta)
        for b, values in zip(self.bins, per_pair):
            step = max(1, PIECE_BYTES // (4 * values[0].numel()))  # the gathered deltas
            for start in range(0, len(b.tasks), step):
                stop = start + step
                dots = torch.linalg.vecdot(values[start:stop], padded[b.inputs[start:stop]])
                out[b.pairs[start:stop].reshape(-1)] = dots.reshape(-1)  # the padding lands on the extra slot
        return out[:-1].view(self.batch, self.m)

    def products(self, sup: Superposition, site: int, h: torch.Tensor) -> list[torch.Tensor]:
        """Per bin [T, width, out]: (W * M^i) h_b for every pair."""
        padded, results = _padded(h), []
        for b in self.bins:
            out = h.new_empty(*b.inputs.shape, sup.net.base()[site].shape[0])
            for start, stop in self._chunks(sup, site, b):
                masked = self._masked_weights(sup, site, b, start, stop)
                torch.bmm(padded[b.inputs[start:stop]], masked.transpose(1, 2), out=out[start:stop])
            results.append(out)
        return results

    def transposed_sum(self, sup: Superposition, site: int, delta: torch.Tensor) -> torch.Tensor:
        """[B, in]: each input's sum over its pairs of (W * M^i)^T delta_b."""
        padded = _padded(delta)
        total = delta.new_zeros(self.batch + 1, sup.net.base()[site].shape[1])
        for b in self.bins:
            for start, stop in self._chunks(sup, site, b):
                masked = self._masked_weights(sup, site, b, start, stop)
                through = torch.bmm(padded[b.inputs[start:stop]], masked)
                total.index_add_(0, b.inputs[start:stop].reshape(-1), through.reshape(-1, through.shape[2]))
        return total[: self.batch]

    @staticmethod
    def _chunks(sup: Superposition, site: int, b: _Bin) -> list[tuple[int, int]]:
        """Tasks of a bin taken together: their gathered inputs and their masked weights each within
        PIECE_BYTES."""
        out, inp = sup.net.base()[site].shape
        step = max(1, min(PIECE_BYTES // (4 * b.inputs.shape[1] * max(out, inp)), PIECE_BYTES // (4 * out * inp)))
        return [(start, min(start + step, len(b.tasks))) for start in range(0, len(b.tasks), step)]

    @staticmethod
    def _masked_weights(sup: Superposition, site: int, b: _Bin, start: int, stop: int) -> torch.Tensor:
        if len(b.tasks) == sup.tasks:  # every task, in order: read in place
            return sup.masked_weights(site, start, stop)
        return sup.masked_weights_of(site, b.tasks[start:stop])


def _padded(per_input: torch.Tensor) -> torch.Tensor:
    """[B, f] with a row of zeros appended: what the padding of a bin reads."""
    return torch.cat([per_input, per_input.new_zeros(1, per_input.shape[1])])
