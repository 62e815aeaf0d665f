"""learn-task on real MNIST: accuracy, isolation of earlier tasks, and nothing committed on failure."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from supsup_cli import archive
from supsup_cli.core import registry
from tests.conftest import REPO


@pytest.mark.slow
def test_learn_task_reaches_paper_accuracy_and_keeps_task_0(cli, lenet_archive):
    first = cli("learn-task", lenet_archive, "--data", "mnist", "--permute", "7", "--json")
    assert first.code == 0, first.err
    report = first.json()
    for key in ("index", "name", "test_accuracy", "train_seconds", "steps", "density"):
        assert key in report
    assert report["index"] == 0 and report["steps"] == 1000
    assert report["test_accuracy"] >= 0.93  # paper: about 93.7% for LeNet 300-100 after 1000 batches
    assert 0.45 < report["density"] < 0.55  # threshold masks on Kaiming-uniform scores
    with archive.Archive(lenet_archive) as opened:
        task0 = [m.copy() for m in opened.packed_mask(0)]

    second = cli("learn-task", lenet_archive, "--permute", "8", "--steps", "50", "--json")
    assert second.code == 0 and second.json()["index"] == 1
    with archive.Archive(lenet_archive) as opened:
        assert all(np.array_equal(a, b) for a, b in zip(task0, opened.packed_mask(0)))
        assert opened.tasks[0].test_accuracy == report["test_accuracy"]
        assert [t.data for t in opened.tasks] == [{"dataset": "mnist", "permute": 7},
                                                   {"dataset": "mnist", "permute": 8}]


def test_split_tasks_with_top_k_density_and_mean_init(cli, lenet_archive):
    assert cli("learn-task", lenet_archive, "--classes", "0,1", "--steps", "30").code == 0
    sparse = cli("learn-task", lenet_archive, "--classes", "2,3", "--steps", "30", "--density", "0.1", "--json")
    assert sparse.code == 0, sparse.err
    assert abs(sparse.json()["density"] - 0.1) < 1e-3
    assert sparse.json()["test_accuracy"] > 0.8  # two classes, even after 30 batches
    transfer = cli("learn-task", lenet_archive, "--classes", "4,5", "--steps", "30", "--init", "mean", "--json")
    assert transfer.code == 0 and transfer.json()["test_accuracy"] > 0.8
    with archive.Archive(lenet_archive) as opened:
        assert opened.tasks[1].classes == (2, 3) and opened.tasks[2].training["init"] == "mean"


@pytest.mark.parametrize("argv, code, fragment", [
    (["--data", "cifar"], 2, "unknown dataset"),
    (["--permute", "1", "--rotate", "10"], 2, "conflict"),
    (["--classes", "0,12"], 2, "out of range"),
    (["--classes", "a,b"], 2, "comma-separated"),
    (["--steps", "0"], 2, "--steps"),
    (["--density", "0"], 2, "--density"),
    (["--density", "1.5"], 2, "--density"),
    (["--name", "12"], 2, "digits"),
])
def test_bad_arguments_leave_the_archive_untouched(cli, lenet_archive, argv, code, fragment):
    before = lenet_archive.read_bytes()
    result = cli("learn-task", lenet_archive, *argv)
    assert result.code == code and fragment in result.err and len(result.err.strip().splitlines()) == 1
    assert lenet_archive.read_bytes() == before


def test_duplicate_task_name_is_refused(cli, lenet_archive):
    assert cli("learn-task", lenet_archive, "--permute", "3", "--steps", "5").code == 0
    before = lenet_archive.read_bytes()
    result = cli("learn-task", lenet_archive, "--permute", "3", "--steps", "5")
    assert result.code == 12 and "already exists" in result.err
    assert lenet_archive.read_bytes() == before


@pytest.mark.parametrize("delay", [0.6, 4.0])
def test_sigint_during_training_commits_nothing(lenet_archive, cli, delay):
    assert cli("learn-task", lenet_archive, "--permute", "1", "--steps", "5").code == 0
    before = lenet_archive.read_bytes()
    child = subprocess.Popen([sys.executable, "-m", "supsup_cli", "learn-task", str(lenet_archive), "--permute", "2",
                              "--steps", "1000000"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)  # somewhere in start-up, data loading or training: every moment must be safe
    child.send_signal(signal.SIGINT)
    try:
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()  # a lost Ctrl-C would leave it training a million steps after the test failed
    assert child.returncode == 130
    assert err.strip().splitlines()[-1].startswith("supsup: error: interrupted") and "Traceback" not in err
    assert lenet_archive.read_bytes() == before


def test_a_ctrl_c_that_python_swallows_still_stops_training(lenet_archive, cli, monkeypatch):
    """Python drops a KeyboardInterrupt raised inside a finalizer, and h5py's weakref callbacks run
    often while an archive is read: that Ctrl-C must still stop the command before it commits."""
    import supsup_cli.api.learn as learn

    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: swallowed.append(unraisable.exc_type))

    class InterruptedWhileFinalized:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)
            sum(range(1000))  # the handler runs here, between bytecodes

    real_train_masks = learn.train_masks

    def train_after_a_lost_ctrl_c(*args, **kwargs):
        InterruptedWhileFinalized()
        return real_train_masks(*args, **kwargs)

    monkeypatch.setattr(learn, "train_masks", train_after_a_lost_ctrl_c)
    before = lenet_archive.read_bytes()
    result = cli("learn-task", lenet_archive, "--permute", "2", "--steps", "200")
    assert swallowed == [KeyboardInterrupt]
    assert result.code == 130 and result.err.startswith("supsup: error: interrupted")
    assert lenet_archive.read_bytes() == before


def test_transfer_starts_from_the_mean_mask_times_the_kaiming_fan_in_constant():
    """Appendix D.5: the running mean of the earlier masks, normalized by sqrt(2 / fan_in); top-k masks
    rank it as it is, threshold masks centre it at the threshold."""
    from supsup_cli.engine.models import build
    from supsup_cli.engine.training import TrainConfig, initial_scores
    from supsup_cli.core.weights import base_weights

    spec = registry.resolve("resnet18-narrow")
    net = build(spec, base_weights(spec, 0))
    means = [torch.rand(site.shape, generator=torch.Generator().manual_seed(i))
             for i, site in enumerate(registry.mask_sites(spec))]
    top_k = initial_scores(net, TrainConfig(density=0.1), means, torch.Generator().manual_seed(0))
    threshold = initial_scores(net, TrainConfig(), means, torch.Generator().manual_seed(0))
    for layer, mean, ranked, centred in zip(registry.weight_layers(spec), means, top_k, threshold):
        constant = (2 / layer.fan_in) ** 0.5
        jitter = 1e-3 / layer.fan_in ** 0.5
        assert torch.allclose(ranked, constant * mean, atol=jitter * 1.001, rtol=0)
        assert torch.allclose(centred, constant * (2 * mean - 1), atol=jitter * 1.001, rtol=0)
