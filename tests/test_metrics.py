import pytest

from supsup_cli.benchmark import metrics

# Three tasks, a checkpoint after each: task 0 decays 0.9 -> 0.7 -> 0.6, task 1 peaks at 0.8.
MATRIX = [
    [0.9, None, None],
    [0.7, 0.8, None],
    [0.6, 0.5, 0.95],
]


def test_average_accuracy_is_the_last_row_mean():
    assert metrics.average_accuracy(MATRIX) == pytest.approx((0.6 + 0.5 + 0.95) / 3)


def test_forgetting_is_the_drop_from_the_best_earlier_value():
    # task 0: best 0.9, now 0.6 -> 0.3; task 1: best 0.8, now 0.5 -> 0.3
    assert metrics.forgetting(MATRIX) == pytest.approx(0.3)


def test_backward_transfer_compares_with_right_after_learning():
    # task 0: 0.6 - 0.9; task 1: 0.5 - 0.8
    assert metrics.backward_transfer(MATRIX) == pytest.approx(-0.3)


def test_no_forgetting_for_a_constant_matrix_and_none_for_one_row():
    constant = [[0.9, None], [0.9, 0.8]]
    assert metrics.forgetting(constant) == 0 and metrics.backward_transfer(constant) == 0
    assert metrics.forgetting([[0.5]]) is None and metrics.backward_transfer([[0.5]]) is None


def test_sparse_checkpoints_use_the_first_row_where_a_task_exists():
    # checkpoints after 1 and 3 tasks: tasks 1 and 2 appear first in the last row
    sparse = [[0.9, None, None], [0.8, 0.7, 0.6]]
    assert metrics.backward_transfer(sparse) == pytest.approx(-0.1)
    assert metrics.forgetting(sparse) == pytest.approx(0.1)
