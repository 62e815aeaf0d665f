"""Continual-learning metrics of an accuracy matrix.

R[r][j] is the accuracy on task j after the first c_r tasks were learned (rows are checkpoints
c_0 < c_1 < ... < c_last = T; an entry is None where task j was not learned yet). With
first(j) the first row at which task j had been learned:

    average accuracy     A = mean_j R[last][j]                                   over j < T
    forgetting           F = mean_j ( max_{r < last, j learned} R[r][j] - R[last][j] )   over j < c_{last-1}
    backward transfer  BWT = mean_j ( R[last][j] - R[first(j)][j] )                 over j < c_{last-1}

The standard error of A, with n_j test images scored on task j, is
    SE = sqrt( sum_j R[last][j] (1 - R[last][j]) / n_j ) / T
(each task's accuracy a binomial proportion; the paper protocol's images are scored in batches
that share one inferred task, so there it is a lower bound).

F and BWT average over the tasks learned before the last checkpoint; with a single checkpoint
they are None. When every task is a checkpoint, first(j) is "right after learning j" and these
are the usual definitions (Lopez-Paz and Ranzato 2017; Chaudhry et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Matrix = Sequence[Sequence[float | None]]


def average_accuracy(matrix: Matrix) -> float:
    last = [value for value in matrix[-1] if value is not None]
    return sum(last) / len(last)


def standard_error(last_row: Sequence[float | None], images: Sequence[int]) -> float | None:
    pairs = [(a, n) for a, n in zip(last_row, images) if a is not None and n]
    if not pairs:
        return None
    return math.sqrt(sum(a * (1 - a) / n for a, n in pairs)) / len(pairs)


def forgetting(matrix: Matrix) -> float | None:
    drops = []
    for j in _earlier_tasks(matrix):
        best = max(row[j] for row in matrix[:-1] if row[j] is not None)
        drops.append(best - matrix[-1][j])
    return sum(drops) / len(drops) if drops else None


def backward_transfer(matrix: Matrix) -> float | None:
    changes = []
    for j in _earlier_tasks(matrix):
        first = next(row[j] for row in matrix if row[j] is not None)
        changes.append(matrix[-1][j] - first)
    return sum(changes) / len(changes) if changes else None


def _earlier_tasks(matrix: Matrix) -> list[int]:
    """Tasks already learned at the second-to-last checkpoint."""
    if len(matrix) < 2:
        return []
    return [j for j, value in enumerate(matrix[-2]) if value is not None]
