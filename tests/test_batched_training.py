"""Tasks trained together in one batched step get the masks they get one at a time, bit for bit (issue 16)."""

import numpy as np
import pytest
import torch

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.engine.batched_training import stacking_refusal, train_masks_together
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import build
from supsup_cli.engine.training import TrainConfig, task_tensors, train_masks
from supsup_cli.core.weights import base_weights

STACKABLE = [name for name, spec in registry.REGISTRY.items()
             if stacking_refusal(spec, TrainConfig()) is None]
UNSTACKABLE = [name for name in registry.REGISTRY if name not in STACKABLE]


def _some_examples(data: TaskData, rows: int = 600):
    return load_task(data, "train", pick=lambda count: np.arange(0, count, count // rows)[:rows])


def test_every_weight_masked_mlp_can_be_stacked_and_the_others_are_refused():
    assert set(STACKABLE) == {"lenet300-100", "fc1024-1024"}
    for name in UNSTACKABLE:
        assert stacking_refusal(registry.REGISTRY[name], TrainConfig()) is not None
    assert stacking_refusal(registry.REGISTRY["lenet300-100"], TrainConfig(density=0.5)) is not None
    assert stacking_refusal(registry.REGISTRY["lenet300-100"], TrainConfig(), init="mean") is not None


@pytest.fixture
def threads():
    """One thread: with two, this CPU's BLAS may round a batched product otherwise than a single one
    (seen at batch 32, and on FC 1024-1024 at batch 128), and a few mask bits then differ."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield 1
    torch.set_num_threads(before)


@pytest.mark.parametrize("arch", STACKABLE)
def test_batched_masks_equal_one_at_a_time_bit_for_bit(arch, threads):
    """At the default batch of 128, with one thread."""
    spec = registry.resolve(arch, None)
    net = build(spec, base_weights(spec, 3))
    tasks = [task_tensors(_some_examples(data), spec, torch.device("cpu"))
             for data in (TaskData("mnist", permute=1), TaskData("mnist", permute=2), TaskData("mnist", rotate=30.0))]
    configs = [TrainConfig(steps=30, seed=seed) for seed in (11, 12, 13)]

    together = train_masks_together(net, tasks, configs)
    alone = [train_masks(net, task, config) for task, config in zip(tasks, configs)]

    for joint, single in zip(together, alone):
        for a, b in zip(joint.masks, single.masks):
            assert a.dtype == torch.bool and torch.equal(a, b)
        assert joint.final_loss == pytest.approx(single.final_loss, rel=1e-5)
    # The tasks learned different masks: the equality above is not that of three copies of one.
    assert not torch.equal(together[0].masks[0], together[1].masks[0])


def test_learn_task_tasks_per_step_commits_the_masks_of_one_at_a_time(cli, tmp_path):
    paths = [tmp_path / "alone.supsup", tmp_path / "together.supsup"]
    for path in paths:
        assert cli("init", path, "--arch", "lenet300-100").code == 0
    common = ("--permute", "1-3", "--steps", "30", "--json")
    assert cli("learn-task", paths[0], *common).code == 0
    result = cli("learn-task", paths[1], *common, "--tasks-per-step", "2")
    assert result.code == 0, result.err
    assert [line["index"] for line in result.json_lines()] == [0, 1, 2]

    with archive.Archive(paths[0]) as alone, archive.Archive(paths[1]) as together:
        assert [t.mask_sha256 for t in alone.tasks] == [t.mask_sha256 for t in together.tasks]
        assert [t.training["task_seed"] for t in alone.tasks] == [t.training["task_seed"] for t in together.tasks]
        assert len({t.mask_sha256 for t in together.tasks}) == 3


def test_tasks_per_step_is_refused_where_it_cannot_hold(cli, tmp_path):
    path = tmp_path / "hop.supsup"
    assert cli("init", path, "--arch", "fc2048-2048-hop").code == 0
    refused = cli("learn-task", path, "--classes", "0,1", "--permute", "1-2", "--tasks-per-step", "2", "--steps", "2")
    assert refused.code == 2 and "cannot share a step" in refused.err and len(refused.err.strip().splitlines()) == 1
    with archive.Archive(path) as opened:
        assert opened.tasks == []

    lenet = tmp_path / "lenet.supsup"
    assert cli("init", lenet, "--arch", "lenet300-100").code == 0
    auto = cli("learn-task", lenet, "--permute", "1", "--auto", "--tasks-per-step", "2")
    assert auto.code == 2 and "--tasks-per-step has no effect with --auto" in auto.err
