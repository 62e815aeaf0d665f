"""The benchmark's suites: their tasks and the settings the paper used for each."""

from __future__ import annotations

from supsup_cli.core import choices, prng
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument

SUITES = choices.SUITES
DEFAULT_TASKS = {"permuted-mnist": 10, "rotated-mnist": 36, "split-mnist": 5, "split-cifar100": 20}
DEFAULT_OUTPUT_SIZES = {"rotated-mnist": 200}  # the paper's code for Table 6; elsewhere the architecture's
# Table 2 as the paper's code runs it (appendix D.1): 250 epochs, and top-k masks with the ER budget at
# a scale s of 1-32 (here 8 unless --er-scale says otherwise); Adam, cosine decay, crops and flips
# are the residual networks' own defaults (training.TrainConfig.resolved).
SPLIT_CIFAR100_RECIPE = {"epochs": 250, "budget": "er", "er_scale": 8.0}
# Where the paper's Figure 2 sets supermasks beside heads on a fixed trunk (trained or random).
SEPARATE_HEADS_SUITES = {"split-cifar100"}


def suite_tasks(suite: str, count: int, seed: int = 0) -> list[TaskData]:
    if suite == "permuted-mnist":
        return [TaskData("mnist", permute=i) for i in range(count)]
    if suite == "rotated-mnist":
        return [TaskData("mnist", rotate=10.0 * i, resample="nearest") for i in range(count)]  # as the paper's code
    if suite == "split-mnist":
        if count > 5:
            raise InvalidArgument("split-mnist has 5 tasks")
        return [TaskData("mnist", classes=(2 * i, 2 * i + 1)) for i in range(count)]
    if suite == "split-cifar100":  # 20 five-way tasks of classes partitioned at random by --seed, as the paper
        if count > 20:
            raise InvalidArgument("split-cifar100 has 20 tasks")
        order = prng.permutation(seed, 100).tolist()
        return [TaskData("cifar100", classes=tuple(order[5 * i : 5 * i + 5])) for i in range(count)]
    raise InvalidArgument(f"--suite must be one of {', '.join(SUITES)} or speed, got {suite!r}")
