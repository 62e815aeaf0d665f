"""Convolutional networks in scenario GG, on a small synthetic dataset in CIFAR-100's binary format."""

import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from supsup_cli import archive
from supsup_cli.core import registry, weights
from supsup_cli.data import datasets
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import build
from supsup_cli.archive.records import TaskRecord
from supsup_cli.engine.training import TrainConfig, task_tensors, train_masks


def _records(count: int, rng: np.random.Generator) -> bytes:
    """CIFAR-100 binary records: classes 0-4 get a bright colour patch in a class-specific place."""
    labels = rng.integers(0, 5, count)
    images = rng.integers(0, 80, (count, 3, 32, 32), dtype=np.uint8)
    for image, label in zip(images, labels):
        image[label % 3, 6 * label : 6 * label + 8, 4:28] = 250
    rows = np.concatenate([np.zeros((count, 1), np.uint8), labels[:, None].astype(np.uint8),
                           images.reshape(count, -1)], axis=1)
    return rows.tobytes()


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    folder = root / "cifar100" / "cifar-100-binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (folder / "train.bin").write_bytes(_records(600, rng))
    (folder / "test.bin").write_bytes(_records(200, rng))
    datasets._load.cache_clear()
    yield root
    datasets._load.cache_clear()


@pytest.fixture
def conv_archive(cli, tmp_path):
    path = tmp_path / "conv.supsup"
    assert cli("init", path, "--arch", "resnet18-narrow").code == 0
    return path


def test_registry_shapes_of_the_residual_networks():
    narrow = registry.resolve("resnet18-narrow")
    layers = registry.weight_layers(narrow)
    assert layers[0].shape == (20, 3, 3, 3) and layers[-1].shape == (5, 160)
    assert sum(layer.numel for layer in layers) == 1_090_940
    assert registry.stats_size(narrow) == 2 * sum(layer.shape[0] for layer in layers[:-1])
    big = registry.resolve("resnet50")
    assert sum(layer.numel for layer in registry.weight_layers(big)) == 23_475_392
    net = build(big, weights.base_weights(big, 0))
    net.eval()
    with torch.no_grad():
        logits = net(torch.zeros(1, 3, 224, 224), [torch.ones(layer.shape) for layer in registry.weight_layers(big)])
    assert logits.shape == (1, 10)


def test_train_and_infer_a_conv_archive_end_to_end(cli, conv_archive, cifar_dir, tmp_path):
    learned = cli("learn-task", conv_archive, "--data", "cifar100", "--classes", "0,1,2,3,4", "--steps", "40",
                  "--batch-size", "32", "--data-dir", cifar_dir, "--json")
    assert learned.code == 0, learned.err
    assert learned.json()["test_accuracy"] > 0.6  # five classes: chance is 0.2
    out = tmp_path / "png"
    assert cli("data", "export", "--data", "cifar100", "--classes", "0,1,2,3,4", "-n", "50", "--out", out,
               "--data-dir", cifar_dir).code == 0
    assert Image.open(out / "00000.png").mode == "RGB"
    inferred = cli("infer", conv_archive, out, "--task", "0", "--json")
    assert inferred.code == 0 and len(inferred.json_lines()) == 50
    import csv

    with open(out / "labels.csv") as handle:
        truth = {row["file"]: int(row["label"]) for row in csv.DictReader(handle)}
    rows = inferred.json_lines()
    assert np.mean([r["class"] == truth[r["input"].rsplit("/", 1)[1]] for r in rows]) > 0.6
    refused = cli("infer", conv_archive, out)
    assert refused.code == 2 and "give --task" in refused.err
    with archive.Archive(conv_archive) as opened:
        assert opened.stats(0).shape == (registry.stats_size(opened.spec),)


def test_batch_norm_statistics_survive_the_archive(conv_archive, cifar_dir):
    """The outputs of the network as training left it equal those rebuilt from the archive."""
    data = TaskData("cifar100", classes=(0, 1, 2, 3, 4))
    spec = registry.resolve("resnet18-narrow")
    net = build(spec, weights.base_weights(spec, 0))
    trained = train_masks(net, task_tensors(load_task(data, "train", cifar_dir), spec, torch.device("cpu")),
                          TrainConfig(steps=15, batch_size=32))
    x = task_tensors(load_task(data, "test", cifar_dir), spec, torch.device("cpu")).inputs(slice(0, 64))
    float_masks = [m.float() for m in trained.masks]
    net.eval()  # the running statistics training left in the network
    with torch.no_grad():
        before = net(x, float_masks)
    record = TaskRecord(name="t", data=data.to_plain(), classes=(0, 1, 2, 3, 4), mean=(0.5,) * 3, std=(0.25,) * 3,
                        density=tuple(float(m.float().mean()) for m in trained.masks))
    archive.append_task(conv_archive, record, [m.numpy() for m in trained.masks], trained.stats)

    with archive.Archive(conv_archive) as opened:
        rebuilt = build(opened.spec, opened.base_weights())
        rebuilt.load_stats(opened.stats(0))
        masks = [torch.from_numpy(np.unpackbits(p, count=s.numel, bitorder="little").astype(np.float32))
                 .view(s.shape) for p, s in zip(opened.packed_mask(0), opened.sites)]
    rebuilt.eval()
    with torch.no_grad():
        after = rebuilt(x, masks)
    assert not np.allclose(trained.stats[:100], 0)  # running means were learned, not left at their start
    assert torch.equal(before, after)
    fresh = build(spec, weights.base_weights(spec, 0)).eval()  # without the statistics, outputs differ
    with torch.no_grad():
        assert not torch.allclose(fresh(x, float_masks), before)


def test_erdos_renyi_budget_keeps_more_of_small_layers(cli, conv_archive, cifar_dir):
    result = cli("learn-task", conv_archive, "--data", "cifar100", "--classes", "0,1,2,3,4", "--steps", "5",
                 "--batch-size", "16", "--density", "0.1", "--density-budget", "erk", "--data-dir", cifar_dir,
                 "--json")
    assert result.code == 0, result.err
    assert abs(result.json()["density"] - 0.1) < 0.01
    with archive.Archive(conv_archive) as opened:
        density = opened.tasks[0].density
    assert density[0] > 0.5 and density[19] < 0.1  # the 3x3x3 stem versus the widest 3x3 conv


def test_cifar_tarball_is_read_in_place_and_verified(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, count in (("train", 30), ("test", 10)):
            data = _records(count, rng)
            info = tarfile.TarInfo(f"cifar-100-binary/{name}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "cifar100" / "cifar-100-binary.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(buffer.getvalue())
    spec = datasets.DATASETS["cifar100"]
    monkeypatch.setitem(datasets.DATASETS, "cifar100",
                        datasets.DatasetSpec(**{**spec.__dict__,
                                                "md5": {"cifar-100-binary.tar.gz": hashlib.md5(buffer.getvalue()).hexdigest()}}))
    datasets._load.cache_clear()
    images, labels = datasets.load("cifar100", "test", tmp_path)
    assert images.shape == (10, 3, 32, 32) and labels.max() < 5
    monkeypatch.setitem(datasets.DATASETS, "cifar100", spec)  # the real checksum: this tarball is refused
    datasets._load.cache_clear()
    with pytest.raises(Exception, match="checksum"):
        datasets.load("cifar100", "train", tmp_path)
    datasets._load.cache_clear()


def test_users_image_folders(cli, conv_archive, tmp_path):
    rng = np.random.default_rng(2)
    for split, count in (("train", 40), ("test", 10)):
        for label, name in enumerate(("cats", "dogs")):
            folder = tmp_path / "pets" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                pixels[:, :, label] += 150
                Image.fromarray(pixels).save(folder / f"{i}.png")
    result = cli("learn-task", conv_archive, "--data", f"folder:{tmp_path / 'pets'}", "--steps", "20",
                 "--batch-size", "16", "--json")
    assert result.code == 0, result.err
    assert result.json()["test_accuracy"] > 0.8
    with archive.Archive(conv_archive) as opened:
        record = opened.tasks[0]
    assert record.classes == (0, 1) and record.mean[0] != record.mean[1]  # measured, per channel
    wrong = cli("learn-task", conv_archive, "--data", "mnist", "--steps", "2")
    assert wrong.code == 2 and "1x28x28" in wrong.err and "3x32x32" in wrong.err


def test_no_task_free_learning_on_residual_networks(cli, conv_archive, cifar_dir):
    result = cli("learn-task", conv_archive, "--auto", "--data", "cifar100", "--classes", "0,1", "--steps", "2",
                 "--data-dir", cifar_dir)
    assert result.code == 2 and "statistics per task" in result.err
    with archive.Archive(conv_archive) as opened:
        assert opened.tasks == []
