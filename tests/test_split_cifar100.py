"""SplitCIFAR-100 as the paper runs it (issue 19): the layer-wise ER budget min(0.5, s * (c_out + c_in) / n),
the seeded class split, the recipe (250 epochs, top-k masks by scale s), on tiny synthetic CIFAR files."""

import json

import numpy as np
import pytest
import torch

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.benchmark import baselines
from supsup_cli.cli import output
from supsup_cli.benchmark.config import BenchmarkConfig, with_suite_recipe
from supsup_cli.benchmark.suites import suite_tasks
from supsup_cli.data import datasets
from supsup_cli.data.tasks import load_task
from supsup_cli.engine.masks import er_densities, layer_densities
from supsup_cli.engine.training import TrainConfig, task_tensors
from supsup_cli.core.weights import base_weights

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


def test_the_suite_recipe_is_the_papers_unless_the_run_asks_otherwise():
    paper = with_suite_recipe(BenchmarkConfig(suite="split-cifar100", arch="resnet18-narrow"))
    assert (paper.epochs, paper.budget, paper.er_scale, paper.density) == (250, "er", 8.0, None)
    mine = with_suite_recipe(BenchmarkConfig(suite="split-cifar100", arch="resnet18-narrow", steps=50, er_scale=2))
    assert (mine.epochs, mine.budget, mine.er_scale) == (None, "er", 2)
    dense = with_suite_recipe(BenchmarkConfig(suite="split-cifar100", arch="resnet18-narrow", density=0.1))
    assert (dense.budget, dense.er_scale) == ("uniform", None)
    assert with_suite_recipe(BenchmarkConfig()).budget == "uniform"


@pytest.fixture
def all_classes_cifar(tmp_path, monkeypatch):
    """Tiny CIFAR-100 binary files with every one of the 100 classes (6 training, 2 test images each)."""
    folder = tmp_path / "cifar100" / "cifar-100-binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, per_class in (("train.bin", 6), ("test.bin", 2)):
        labels = np.repeat(np.arange(100), per_class)
        images = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        rows = np.concatenate([np.zeros((len(labels), 1), np.uint8), labels[:, None].astype(np.uint8), images], 1)
        (folder / name).write_bytes(rows.tobytes())
    monkeypatch.setenv("SUPSUP_DATA", str(tmp_path))
    datasets._load.cache_clear()
    yield tmp_path
    datasets._load.cache_clear()


def test_the_split_cifar100_preset_runs_and_says_what_ran(cli, all_classes_cifar, tmp_path):
    shown = cli("benchmark", "--suite", "split-cifar100", "--arch", "resnet18-narrow", "--tasks", "2", "--epochs", "1",
                "--no-baselines", "--seed", "3", "--out", tmp_path / "out")
    assert shown.code == 0, shown.err
    recipe = json.loads((tmp_path / "out" / "results.json").read_text())["recipe"]
    assert recipe["epochs"] == 1 and recipe["steps"] == 1  # 30 images a task, one batch
    assert recipe["masks"] == "top-k, paper's ER budget at s = 8" and recipe["optimizer"] == "adam"
    assert recipe["weight_decay"] == 1e-4 and recipe["schedule"] == "cosine" and recipe["split_seed"] == 3
    assert "recipe: 1 epochs (1 steps)" in shown.out and "ER budget at s = 8" in shown.out
    assert "classes split by seed 3" in shown.out


def test_learn_task_epochs_set_the_steps_from_the_number_of_examples(cli, tmp_path, monkeypatch):
    path = tmp_path / "e.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    totals = []  # the progress bar's, as a terminal would show it
    real_bar = output.progress_bar
    monkeypatch.setattr(output, "progress_bar", lambda label, total: totals.append(total) or real_bar(label, total))
    result = cli("learn-task", path, "--classes", "0,1", "--epochs", "1", "--json")
    assert result.code == 0, result.err
    examples = 5923 + 6742  # MNIST training images of classes 0 and 1
    assert result.json_lines()[0]["steps"] == -(-examples // 128) == totals[0]
    with archive.Archive(path) as opened:
        assert opened.tasks[0].training["epochs"] == 1 and opened.tasks[0].training["steps"] == -(-examples // 128)
    both = cli("learn-task", path, "--classes", "2,3", "--epochs", "1", "--steps", "10")
    assert both.code == 2 and "--steps has no effect with --epochs" in both.err


def test_separate_heads_train_only_their_heads_and_keep_each_tasks_statistics(all_classes_cifar):
    """On a frozen trunk, each task's head and batch-norm statistics are its own: training the next
    task changes neither the trunk nor what an earlier task predicts."""
    spec = registry.resolve("resnet18-narrow")
    weights = base_weights(spec, 0)
    heads = baselines.FixedTrunk(baselines.fresh_dense(spec, weights, torch.device("cpu")), torch.from_numpy(weights[-1]))
    tasks = [task_tensors(load_task(d, "train"), spec, torch.device("cpu"))
             for d in suite_tasks("split-cifar100", 2, seed=0)]
    probe = tasks[0].inputs(torch.arange(12))
    heads.train_task(tasks[0], TrainConfig(steps=3, seed=0))
    first = heads.net.eval()(probe).clone()
    heads.train_task(tasks[1], TrainConfig(steps=3, seed=1))
    assert all(torch.equal(layer, torch.from_numpy(w)) for layer, w in zip(heads.net.layers[:-1], weights[:-1]))
    assert not torch.equal(heads.tasks[0][0], heads.tasks[1][0])  # heads differ
    assert not np.array_equal(heads.tasks[0][1], heads.tasks[1][1])  # and so do the statistics
    assert torch.equal(heads.with_head(0).eval()(probe), first)


def test_the_preset_trains_every_table_2_baseline_in_the_same_run(cli, all_classes_cifar, tmp_path):
    shown = cli("benchmark", "--suite", "split-cifar100", "--arch", "resnet18-narrow", "--tasks", "2", "--epochs", "1",
                "--seed", "3", "--out", tmp_path / "out")
    assert shown.code == 0, shown.err
    matrix = json.loads((tmp_path / "out" / "results.json").read_text())["matrix"]
    for name in ("upper-bound", "lower-bound", "separate-heads", "separate-heads-rand-w"):
        assert all(0 <= value <= 1 for value in matrix[name][-1]), name
    assert matrix["separate-heads"][-1][0] == matrix["upper-bound"][-1][0]  # its trunk is task 0's own model
    assert "Separate Heads - Rand W" in shown.out and "separate-heads-rand-w" in shown.out
    sizes = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]["storage"]["baseline_bytes"]
    stats = 4 * registry.stats_size(registry.resolve("resnet18-narrow"))
    assert sizes["separate-heads-rand-w"] == 2 * (4 * 160 * 5 + stats)  # two heads of 160 x 5, and statistics


def test_benchmark_reads_the_data_from_data_dir(cli, all_classes_cifar, tmp_path, monkeypatch):
    """benchmark --data-dir, as learn-task --data-dir (issue 27); refused where MNIST ships with supsup."""
    monkeypatch.setenv("SUPSUP_DATA", str(tmp_path / "elsewhere"))
    shown = cli("benchmark", "--suite", "split-cifar100", "--arch", "resnet18-narrow", "--tasks", "1", "--epochs", "1",
                "--no-baselines", "--data-dir", all_classes_cifar, "--json")
    assert shown.code == 0, shown.err
    refused = cli("benchmark", "--tasks", "1", "--data-dir", all_classes_cifar)
    assert refused.code == 2 and "--data-dir has no effect with --suite permuted-mnist" in refused.err
