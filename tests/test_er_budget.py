"""The paper's layer-wise sparsity budget for SplitCIFAR-100 (issue 19): min(0.5, s * (c_out + c_in) / n)."""

import pytest
import torch

from supsup_cli import archive, registry
from supsup_cli.benchmark.experiment import suite_tasks
from supsup_cli.masks import er_densities, layer_densities
from supsup_cli.training import TrainConfig

NARROW = registry.resolve("resnet18-narrow")


def _by_name(scale):
    densities = TrainConfig(budget="er", er_scale=scale).site_densities(NARROW)
    return {site.name: d for site, d in zip(registry.mask_sites(NARROW), densities)}


def test_er_densities_of_resnet18_narrow_match_the_hand_computed_ones():
    one, many = _by_name(1), _by_name(32)
    # conv1: 20 x 3 x 3 x 3 = 540 weights, (20 + 3) / 540
    assert one["conv1"] == pytest.approx(23 / 540) and many["conv1"] == 0.5
    # layer1.0.conv1: 20 x 20 x 3 x 3 = 3600 weights, 40 / 3600 = 0.0111; x 32 = 0.3556
    assert one["layer1.0.conv1"] == pytest.approx(0.011111, abs=1e-6)
    assert many["layer1.0.conv1"] == pytest.approx(0.355556, abs=1e-6)
    # layer2.0.shortcut: 40 x 20 x 1 x 1 = 800 weights, 60 / 800 = 0.075; x 32 capped at 0.5
    assert one["layer2.0.shortcut"] == pytest.approx(0.075) and many["layer2.0.shortcut"] == 0.5
    # layer4.1.conv2: 160 x 160 x 3 x 3 = 230400 weights, 320 / 230400 = 0.001389; x 32 = 0.044444
    assert one["layer4.1.conv2"] == pytest.approx(0.0013889, abs=1e-7)
    assert many["layer4.1.conv2"] == pytest.approx(0.044444, abs=1e-6)
    # fc: 5 x 160 = 800 weights, 165 / 800 = 0.20625; x 32 capped
    assert one["fc"] == pytest.approx(0.20625) and many["fc"] == 0.5
    assert all(a <= b for a, b in zip(one.values(), many.values()))


def test_erk_is_the_old_global_budget_and_er_is_the_papers_rule():
    shapes = [site.shape for site in registry.mask_sites(NARROW)]
    sizes = [torch.Size(s).numel() for s in shapes]
    erk = layer_densities(shapes, 0.1, "erk")
    assert sum(d * n for d, n in zip(erk, sizes)) / sum(sizes) == pytest.approx(0.1)
    assert er_densities(shapes, 1) != erk


def test_learn_task_with_the_er_budget_keeps_those_fractions(cli, tmp_path):
    path = tmp_path / "er.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    result = cli("learn-task", path, "--permute", "1", "--steps", "5", "--density-budget", "er", "--er-scale", "2",
                 "--json")
    assert result.code == 0, result.err
    expected = er_densities([site.shape for site in registry.mask_sites(registry.resolve("lenet300-100"))], 2)
    with archive.Archive(path) as opened:
        assert opened.tasks[0].density == pytest.approx(tuple(expected), abs=1e-4)
        assert opened.tasks[0].training["budget"] == "er" and opened.tasks[0].training["er_scale"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--density-budget", "er"], "give a positive --er-scale"),
    (["--density-budget", "er", "--er-scale", "2", "--density", "0.1"], "--density has no effect with --density-budget er"),
    (["--er-scale", "2"], "--er-scale has no effect without --density-budget er"),
])
def test_er_flags_that_cannot_work_are_refused(cli, tmp_path, argv, message):
    path = tmp_path / "er.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    result = cli("learn-task", path, "--permute", "1", "--steps", "5", *argv)
    assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1


def test_the_split_cifar100_partition_is_drawn_by_the_seed():
    first, again, other = (suite_tasks("split-cifar100", 20, seed) for seed in (0, 0, 1))
    assert first == again and first != other
    for split in (first, other):
        classes = [c for task in split for c in task.classes]
        assert sorted(classes) == list(range(100)) and all(len(task.classes) == 5 for task in split)
