"""A flag that would have no effect is refused (exit 2, one line naming both flags), not ignored."""

import numpy as np
import pytest

from supsup_cli import archive
from supsup_cli.engine.masks import unpack
import torch

REFUSED = [
    (["learn-task", "{a}", "--decide-every", "50"], "--decide-every has no effect without --auto"),
    (["learn-task", "{a}", "--epsilon", "0.2"], "--epsilon has no effect without --auto"),
    (["learn-task", "{a}", "--max-masks", "3"], "--max-masks has no effect without --auto"),
    (["learn-task", "{a}", "--density-budget", "erk"], "--density-budget has no effect without --density"),
    (["infer", "{a}", "{img}", "--task", "0", "--method", "binary"], "--method has no effect with --task"),
    (["infer", "{a}", "{img}", "--task", "0", "--objective", "g"], "--objective has no effect with --task"),
    (["infer", "{a}", "{img}", "--task", "0", "--same-task"], "--same-task has no effect with --task"),
    (["infer", "{a}", "{img}", "--hopfield", "--method", "binary"], "--method has no effect with --hopfield"),
    (["infer", "{a}", "{img}", "--hopfield", "--same-task"], "--same-task has no effect with --hopfield"),
    (["infer", "{a}", "{img}", "--hopfield-steps", "5"], "--hopfield-steps has no effect without --hopfield"),
    (["benchmark", "--suite", "speed", "--fail-under", "0.5"], "--fail-under has no effect with --suite speed"),
    (["benchmark", "--suite", "speed", "--method", "binary"], "--method has no effect with --suite speed"),
    (["benchmark", "--hopfield-steps", "5"], "--hopfield-steps has no effect without --hopfield"),
    (["benchmark", "--density-budget", "erk"], "--density-budget has no effect without --density"),
    (["benchmark", "--arch", "resnet18-narrow", "--method", "binary"], "--method has no effect with --arch resnet18"),
    (["benchmark", "--max-masks", "5"], "--max-masks is the mask budget of --scenario nns"),
    (["benchmark", "--protocol", "paper", "--same-task"], "--same-task infers one task per batch"),
    (["learn-task", "{a}", "--permute", "2", "--resample", "nearest"], "--resample chooses how --rotate samples"),
    (["learn-task", "{a}", "--permute", "2-3", "--auto", "--tasks-per-step", "2"],
     "--tasks-per-step has no effect with --auto"),
    (["benchmark", "--scenario", "nns", "--tasks-per-step", "2"], "nns decides which mask each batch trains"),
    (["benchmark", "--suite", "speed", "--quick"], "--quick has no effect with --suite speed"),
]


@pytest.fixture
def one_task(cli, tmp_path):
    path = tmp_path / "f.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    assert cli("learn-task", path, "--permute", "1", "--steps", "5").code == 0
    image = tmp_path / "x.npy"
    np.save(image, np.zeros((1, 28, 28), np.uint8))
    return path, image


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a[:1] + a[2:4]) for a, _ in REFUSED])
def test_a_flag_without_effect_is_refused(cli, one_task, argv, message):
    path, image = one_task
    result = cli(*[a.format(a=path, img=image) for a in argv])
    assert result.code == 2, result.err
    assert message in result.err and len(result.err.strip().splitlines()) == 1
    with archive.Archive(path) as opened:
        assert opened.index.tasks == 1  # nothing was learned


def test_init_mean_needs_masks_to_average(cli, tmp_path):
    path = tmp_path / "empty.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    for extra in ([], ["--auto"]):
        result = cli("learn-task", path, "--permute", "1", "--steps", "5", "--init", "mean", *extra)
        assert result.code == 2 and "has none yet" in result.err


def test_auto_starts_new_masks_from_the_mean_with_init_mean(cli, one_task):
    path, _ = one_task

    def bits(task):
        with archive.Archive(path) as opened:
            return np.concatenate([unpack(torch.from_numpy(p), s.numel).numpy()
                                   for p, s in zip(opened.packed_mask(task), opened.sites)])

    for extra in ([], ["--init", "mean"]):
        result = cli("learn-task", path, "--permute", "9", "--steps", "1", "--auto", "--name", f"n{len(extra)}",
                     *extra, "--json")
        assert result.code == 0 and result.json()["allocated"], result.err
    first, fresh, from_mean = bits(0), bits(1), bits(2)
    assert 0.45 < np.mean(first == fresh) < 0.55  # an independent draw
    agreed = first == fresh  # where the mean of tasks 0 and 1 is 0 or 1, a mask started from it keeps that bit
    assert np.mean(from_mean[agreed] == first[agreed]) > 0.99


def test_quick_keeps_the_steps_it_is_given(cli):
    result = cli("benchmark", "--quick", "--steps", "0")
    assert result.code == 2 and "--steps" in result.err
