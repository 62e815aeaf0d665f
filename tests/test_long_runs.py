"""Long runs: many tasks in one call, benchmarks that resume after kill -9, per-task evaluation
images, the paper's protocol beside ours, and the lower bound with a head per task."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.engine import superposition
from supsup_cli.benchmark import baselines
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.benchmark.evaluation import EvalSet, Timed, paper_gg_accuracy, paper_gnu_accuracy, sample_rows
from supsup_cli.api import learn
from supsup_cli.api.learn import LearnRequest, learn_tasks
from supsup_cli.engine.models import build
from supsup_cli.engine.training import TrainConfig, task_tensors
from tests.conftest import REPO


def test_one_call_learns_a_range_of_tasks_and_commits_each(cli, lenet_archive):
    result = cli("learn-task", lenet_archive, "--permute", "3-4,9", "--steps", "20", "--json")
    assert result.code == 0, result.err
    reports = result.json_lines()
    assert [(r["index"], r["name"]) for r in reports] == [(0, "mnist-permute-3"), (1, "mnist-permute-4"),
                                                           (2, "mnist-permute-9")]
    assert "3/3 done" in result.err and "tasks/min" in result.err
    with archive.Archive(lenet_archive) as opened:
        assert [t.data for t in opened.tasks] == [{"dataset": "mnist", "permute": p} for p in (3, 4, 9)]
    assert cli("learn-task", lenet_archive, "--permute", "5,6", "--name", "x").code == 2
    assert cli("learn-task", lenet_archive, "--permute", "6-5").code == 2
    assert cli("learn-task", lenet_archive, "--rotate", "0-20/0").code == 2


def test_a_call_for_many_tasks_gives_the_masks_of_one_call_per_task(tmp_path, monkeypatch):
    monkeypatch.setattr(learn, "COMMIT_RATIO", 10**9)  # grouped: every task in one commit at the end
    digests = []
    for layout in ("together", "grouped", "apart"):
        path = tmp_path / f"{layout}.supsup"
        archive.create(path, registry.resolve("lenet300-100"), seed=0)
        requests = [LearnRequest(path, TaskData("mnist", permute=p), TrainConfig(steps=15)) for p in (1, 2, 3)]
        if layout == "apart":
            reports = [report for request in requests for report in learn_tasks([request])]
        else:
            reports = list(learn_tasks(requests, grouped_commits=layout == "grouped"))
        with archive.Archive(path) as opened:
            digests.append([(t.name, t.mask_sha256, t.training["task_seed"]) for t in opened.tasks])
        assert [(r.index, r.name) for r in reports] == [(i, t[0]) for i, t in enumerate(digests[-1])], layout
    assert digests[0] == digests[1] == digests[2]


def test_grouped_commits_store_each_task_in_a_hopfield_reservoir_as_one_commit_each_would(tmp_path, monkeypatch):
    from supsup_cli.api.hopfield_store import hopfield_store

    monkeypatch.setattr(learn, "COMMIT_RATIO", 10**9)  # grouped: the first task alone, the next two together
    commits = []
    commit = learn._commit
    monkeypatch.setattr(learn, "_commit", lambda path, tasks, digest: commits.append(len(tasks)) or
                        commit(path, tasks, digest))
    stored = []
    for layout in ("grouped", "apart"):
        path = tmp_path / f"{layout}.supsup"
        archive.create(path, registry.resolve("fc2048-2048-hop"), seed=0)
        list(learn_tasks([LearnRequest(path, TaskData("mnist", classes=(0, 1)), TrainConfig(steps=3))]))
        hopfield_store(path, drop_masks=layout == "grouped")
        requests = [LearnRequest(path, TaskData("mnist", classes=c), TrainConfig(steps=3))
                    for c in ((2, 3), (4, 5), (6, 7))]
        commits.clear()
        if layout == "apart":
            list(report for request in requests for report in learn_tasks([request]))
        else:
            list(learn_tasks(requests, grouped_commits=True))
        assert commits == ([1, 2] if layout == "grouped" else [1, 1, 1])
        with archive.Archive(path) as opened:
            assert opened.reservoir_info.tasks == 4
            stored.append(([t.mask_sha256 for t in opened.tasks], [a.copy() for a in opened.reservoir()]))
            masks_kept = (opened.index.mask_codec != 0).any(axis=1).tolist()
        assert masks_kept == ([False] * 4 if layout == "grouped" else [True] * 4)
    (grouped_digests, grouped_reservoir), (apart_digests, apart_reservoir) = stored
    assert grouped_digests == apart_digests
    assert all(np.array_equal(a, b) for a, b in zip(grouped_reservoir, apart_reservoir))


def test_grouped_commits_keep_the_tasks_learned_before_an_interruption(tmp_path, monkeypatch):
    monkeypatch.setattr(learn, "COMMIT_RATIO", 10**9)
    path = tmp_path / "cut.supsup"
    archive.create(path, registry.resolve("lenet300-100"), seed=0)

    def started(position, request, steps):
        if position == 2:
            raise KeyboardInterrupt

    requests = [LearnRequest(path, TaskData("mnist", permute=p), TrainConfig(steps=15)) for p in (1, 2, 3)]
    with pytest.raises(KeyboardInterrupt):
        list(learn_tasks(requests, started=started, grouped_commits=True))
    with archive.Archive(path) as opened:
        assert [t.name for t in opened.tasks] == ["mnist-permute-1", "mnist-permute-2"]


def test_each_task_gets_its_own_spread_draw_of_test_images():
    first, second = sample_rows(10_000, 20, seed=1), sample_rows(10_000, 20, seed=2)
    assert len(set(first)) == 20 and not np.array_equal(first, second)
    assert all(i * 500 <= r < (i + 1) * 500 for i, r in enumerate(first))  # one in each twentieth
    assert np.array_equal(sample_rows(10_000, 20, seed=1), first)
    assert np.array_equal(sample_rows(7, 20, seed=1), np.arange(7))


def _benchmark(archive_path, out, extra=()):
    return [sys.executable, "-m", "supsup_cli", "benchmark", "--tasks", "4", "--steps", "60", "--eval-images", "40",
            "--no-baselines", "--method", "one-shot", "--objective", "entropy", "--protocol", "both",
            "--archive", str(archive_path), "--out", str(out), "--json", *extra]


def _comparable(results):
    return {key: results[key] for key in ("matrix_by_protocol", "task_inference_by_protocol", "checkpoints")}


def _kill_when(command, ready, timeout=120):
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + timeout
        while not ready() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def _tasks_in(path):
    try:
        with archive.Archive(path) as opened:
            return opened.index.tasks
    except Exception:
        return 0


@pytest.mark.slow
@pytest.mark.fault
def test_a_benchmark_killed_twice_finishes_with_the_results_of_an_uninterrupted_run(tmp_path):
    whole = subprocess.run(_benchmark(tmp_path / "whole.supsup", tmp_path / "whole"), cwd=REPO, capture_output=True,
                           text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert whole.returncode == 0, whole.stderr
    cut_archive, cut_out = tmp_path / "cut.supsup", tmp_path / "cut"
    # While learning: the first task is committed alone, the next ones in a group (grouped commits)
    _kill_when(_benchmark(cut_archive, cut_out), lambda: _tasks_in(cut_archive) >= 1)
    learned = _tasks_in(cut_archive)
    assert 1 <= learned < 4 or (cut_out / "checkpoints").exists()
    # The rest in batched steps: the same masks, so the same results (tests/test_batched_training.py).
    _kill_when(_benchmark(cut_archive, cut_out, ("--tasks-per-step", "2")),
               lambda: (cut_out / "checkpoints" / "2.json").exists())  # evaluating
    with archive.Archive(cut_archive) as opened:
        before = [t.mask_sha256 for t in opened.tasks]
    resumed = subprocess.run(_benchmark(cut_archive, cut_out, ("--tasks-per-step", "2")), cwd=REPO, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert resumed.returncode == 0, resumed.stderr
    assert "evaluating after 1 tasks" not in resumed.stderr  # kept in --out, not evaluated again
    with archive.Archive(cut_archive) as opened:
        assert [t.mask_sha256 for t in opened.tasks][: len(before)] == before  # nothing retrained
    assert _comparable(json.loads(resumed.stdout)) == _comparable(json.loads(whole.stdout))
    changed = subprocess.run(_benchmark(cut_archive, cut_out, ("--eval-images", "50")), cwd=REPO,
                             capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert changed.returncode == 2 and "other settings (eval_images 40 vs 50)" in changed.stderr


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory):
    path = tmp_path_factory.mktemp("protocols") / "two.supsup"
    archive.create(path, registry.resolve("lenet300-100"), seed=0)
    datas = [TaskData("mnist", permute=p) for p in (1, 2)]
    list(learn_tasks([LearnRequest(path, d, TrainConfig(steps=150)) for d in datas]))
    with archive.Archive(path) as opened:
        spec, net = opened.spec, build(opened.spec, opened.base_weights())
        packed = [torch.from_numpy(p) for p in opened.packed_masks()]
    evals = [EvalSet.of(load_task(d, "test"), 300, spec, torch.device("cpu")) for d in datas]
    return superposition.superposition(net, packed, range(10)), evals


def test_the_paper_protocol_scores_whole_batches_by_their_first_image(two_tasks):
    sup, evals = two_tasks
    accuracy, found = paper_gnu_accuracy(sup, evals, "one-shot", "entropy", Timed(), seeds=[5, 6])
    assert found == [1.0, 1.0]  # 300 images: batches of 128, 128 and 44, each of the right task
    assert accuracy == [paper_gg_accuracy(sup, j, e) for j, e in enumerate(evals)]
    swapped, none_found = paper_gnu_accuracy(sup, evals, "one-shot", "entropy", Timed(), [5, 6], masks=[1, 0])
    assert swapped == [0.0, 0.0] and none_found == [0.0, 0.0]  # a wrong task makes its batch count 0
    shared, _ = paper_gnu_accuracy(sup, evals, "one-shot", "entropy", Timed(), [5, 6], masks=[1, 0],
                                   shared_labels=True)
    assert shared == accuracy  # scenario NNs: the class counts, whichever mask answered


def test_paper_classes_are_the_arg_max_over_all_outputs(two_tasks):
    sup, evals = two_tasks
    e = evals[0]
    logits = superposition.task_logits(sup, e.x, torch.zeros(len(e.labels), dtype=torch.int64))
    expected = float((logits.argmax(1) == e.labels).float().mean())
    assert paper_gg_accuracy(sup, 0, e) == pytest.approx(expected)


def test_the_lower_bound_keeps_a_head_per_task_and_a_shared_trunk():
    spec = registry.resolve("lenet300-100")
    from supsup_cli.core.weights import base_weights

    weights = base_weights(spec, 0)
    lower = baselines.SeparateHeads(spec, weights, torch.device("cpu"))
    for permute in (1, 2):
        tensors = task_tensors(load_task(TaskData("mnist", permute=permute), "train"), spec, torch.device("cpu"))
        lower.train_task(tensors, TrainConfig(steps=10, seed=permute))
    assert len(lower.heads) == 2 and not torch.equal(lower.heads[0], lower.heads[1])
    trunk = [w.detach().clone() for w in lower.net.layers[:-1]]
    assert torch.equal(lower.with_head(0).layers[-1], lower.heads[0])
    assert all(torch.equal(a, b) for a, b in zip(trunk, lower.with_head(1).layers[:-1]))
    assert not torch.equal(trunk[0], torch.from_numpy(weights[0]))  # the trunk was trained


@pytest.mark.slow
def test_benchmark_reports_both_protocols_with_the_same_methods(cli):
    result = cli("benchmark", "--tasks", "2", "--steps", "100", "--eval-images", "60", "--protocol", "both",
                 "--method", "one-shot", "--json")
    assert result.code == 0, result.err
    report = result.json()
    by_protocol = report["summary"]["avg_accuracy_by_protocol"]
    assert set(by_protocol) == {"per-image", "paper"}
    assert set(by_protocol["paper"]) == set(by_protocol["per-image"]) == set(report["summary"]["avg_accuracy"])
    assert report["summary"]["avg_accuracy"] == by_protocol["per-image"]
    assert set(report["matrix_by_protocol"]) == {"per-image", "paper"}
    assert all(0 < v < 0.05 for v in report["summary"]["standard_error"].values())
    assert cli("benchmark", "--protocol", "paper", "--same-task", "--tasks", "1").code == 2
    assert cli("benchmark", "--max-masks", "3", "--tasks", "1").code == 2
