"""Fault injection: kill -9 at random moments, concurrent writers, a full disk.

SUPSUP_FAULT_TRIALS (default 20) sets the number of kill -9 trials; raise it for a longer run.
"""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.archive import maskcodec
from supsup_cli.archive.verify import verify
from tests.conftest import REPO, append_random_tasks, dummy_record, random_masks
from tests.zygote import Zygote, kill

pytestmark = pytest.mark.fault
TRIALS = int(os.environ.get("SUPSUP_FAULT_TRIALS", "20"))
SPEC = registry.resolve("lenet300-100")

APPENDER = """
import sys
from pathlib import Path
from tests.conftest import append_random_tasks
path, start = Path(sys.argv[1]), int(sys.argv[2])
for i in range(start, start + 1000):
    append_random_tasks(path, 1, start_seed=i)
    print(i, flush=True)
"""


def _assert_tasks_intact(path, expected_count_range):
    """The archive opens, holds a committed prefix of tasks, and every mask is bit-for-bit as written."""
    with archive.Archive(path) as opened:
        count = len(opened.tasks)
        assert count in expected_count_range
        assert [t.name for t in opened.tasks] == [f"task-{i}" for i in range(count)]
        for task in range(count):
            for bits, packed in zip(random_masks(SPEC, task), opened.packed_mask(task)):
                assert np.array_equal(maskcodec.unpack(packed, bits.size), bits.reshape(-1))
    return count


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_at_a_random_moment_of_appending(lenet_archive, trial):
    rng = random.Random(trial)
    committed = rng.randrange(3)
    append_random_tasks(lenet_archive, committed)
    child = subprocess.Popen([sys.executable, "-c", APPENDER, str(lenet_archive), str(committed)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == str(committed)  # one more task is in
    time.sleep(rng.uniform(0.0, 0.5))
    child.send_signal(signal.SIGKILL)
    reported = committed + 1 + len(child.stdout.read().split())
    child.wait()
    count = _assert_tasks_intact(lenet_archive, range(reported, reported + 2))  # the last may land unreported
    append_random_tasks(lenet_archive, 1, start_seed=count)  # the next writer cleans up and goes on
    assert not list(lenet_archive.parent.glob(".*.tmp"))
    _assert_tasks_intact(lenet_archive, [count + 1])


@pytest.mark.parametrize("trial", range(max(2, TRIALS // 5)))
def test_kill_9_during_learn_task(lenet_archive, trial):
    append_random_tasks(lenet_archive, 1)
    before = lenet_archive.read_bytes()
    child = subprocess.Popen([sys.executable, "-m", "supsup_cli", "learn-task", str(lenet_archive),
                              "--permute", "5", "--steps", "300", "--name", "task-1"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(trial).uniform(0.5, 4.0))
    child.send_signal(signal.SIGKILL)
    child.wait()
    with archive.Archive(lenet_archive) as opened:
        names = [t.name for t in opened.tasks]
        assert names in (["task-0"], ["task-0", "task-1"])
        for bits, packed in zip(random_masks(SPEC, 0), opened.packed_mask(0)):
            assert np.array_equal(maskcodec.unpack(packed, bits.size), bits.reshape(-1))
    if names == ["task-0"]:
        assert lenet_archive.read_bytes() == before


def _learn(path, *argv):
    return subprocess.Popen([sys.executable, "-m", "supsup_cli", "learn-task", str(path), "--steps", "40", *argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_writers_at_once_both_commit(lenet_archive):
    first, second = _learn(lenet_archive, "--permute", "1"), _learn(lenet_archive, "--permute", "2")
    assert first.wait(120) == 0 and second.wait(120) == 0
    with archive.Archive(lenet_archive) as opened:
        assert sorted(t.name for t in opened.tasks) == ["mnist-permute-1", "mnist-permute-2"]


def test_two_writers_with_one_name_one_is_refused_clearly(lenet_archive):
    first, second = _learn(lenet_archive, "--permute", "1", "--name", "same"), \
        _learn(lenet_archive, "--permute", "2", "--name", "same")
    codes = sorted([first.wait(120), second.wait(120)])
    errors = first.stderr.read() + second.stderr.read()
    assert codes == [0, 12] and "a task named 'same' already exists" in errors
    with archive.Archive(lenet_archive) as opened:
        assert [t.name for t in opened.tasks] == ["same"]


@pytest.mark.parametrize("room", [0, 300, 5000, 20000])
def test_full_disk_during_a_commit_leaves_the_archive_as_before(lenet_archive, room):
    append_random_tasks(lenet_archive, 2)
    before = lenet_archive.read_bytes()
    limit = len(before) + room  # the new archive needs about 34 KB more than the old one

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "supsup_cli", "learn-task", str(lenet_archive), "--steps", "3"],
                          cwd=REPO, capture_output=True, text=True, preexec_fn=small_disk, timeout=120)
    assert done.returncode == 13, done.stderr
    progress, error = done.stderr.strip().splitlines()
    assert progress.startswith("learn-task: learning mnist")
    assert error == f"supsup: error: {lenet_archive}: no space left to write the archive; it is unchanged"
    assert lenet_archive.read_bytes() == before
    assert not list(lenet_archive.parent.glob(".*.tmp"))


# --- kill -9 on every other write path (issue 21) ------------------------------------------------------
#
# Each path runs in children of one zygote (tests/zygote.py), so a trial costs the command's own run.
# A trial kills the command at a uniform moment of an uninterrupted run's duration (or just after it
# ends) and checks that the archive under its name is the old one or the new one and that every task
# committed before is there bit for bit. Each trial's command is also the next writer after the
# previous trial's crash; the last run goes uninterrupted and must leave nothing behind.

HOP = registry.resolve("fc2048-2048-hop")
PATH_TRIALS = max(3, TRIALS // 4)


@pytest.fixture(scope="module")
def zygote():
    forker = Zygote()
    yield forker
    forker.close()


def _kill_trials(zygote, seed, argv, prepare, check, trials=PATH_TRIALS):
    """`trials` killed runs of `supsup ARGV` between uninterrupted first and last ones; `prepare()`
    before each run, `check(exit_code)` after it. Returns how many were killed while running."""
    rng = random.Random(seed)
    runs = []
    for _ in range(2):  # the second without the first's cold caches
        prepare()
        runs.append(zygote.run(*argv))
        assert runs[-1][0] == 0
        check(0)
    seconds = runs[-1][1]
    killed = 0
    for _ in range(trials):
        prepare()
        code = zygote.kill_after(rng.uniform(0.0, 1.1 * seconds), *argv)
        assert code in (0, -signal.SIGKILL), code
        killed += code == -signal.SIGKILL
        check(code)
    prepare()
    assert zygote.run(*argv)[0] == 0
    check(0)
    assert killed >= 1
    print(f"kill -9 during {seed}: {trials} trials, {killed} killed while running")  # for long runs (-s)
    return killed


def _masks_of(path):
    with archive.Archive(path) as opened:
        return [t.name for t in opened.tasks], [opened.packed_mask(i) for i in range(len(opened.tasks))]


def _same_masks(got, want):
    return len(got) == len(want) and all(all(np.array_equal(a, b) for a, b in zip(g, w)) for g, w in zip(got, want))


def _no_leftovers(directory):
    assert not [p.name for p in directory.rglob("*.tmp")]


def _verified(path):
    report = verify(path)
    assert report["content_sha256_ok"] and report["structure_ok"] and not report["damaged"], report
    return report


@pytest.mark.slow
def test_kill_9_during_merge_leaves_no_out_or_the_whole_merge(zygote, tmp_path):
    parts = [tmp_path / "a.supsup", tmp_path / "b.supsup"]
    for start, part in zip((0, 2), parts):
        archive.create(part, SPEC, seed=0)
        append_random_tasks(part, 2, start_seed=start)
    expected = [_masks_of(parts[0]), _masks_of(parts[1])]
    out = tmp_path / "all.supsup"

    def check(code):
        assert out.exists() or code != 0
        if out.exists():
            names, masks = _masks_of(out)
            assert names == expected[0][0] + expected[1][0]
            assert _same_masks(masks, expected[0][1] + expected[1][1])

    _kill_trials(zygote, "merge", ["merge", out, *parts], lambda: out.unlink(missing_ok=True), check)
    _no_leftovers(tmp_path)


@pytest.mark.slow
def test_kill_9_during_hopfield_store_leaves_the_old_or_the_new_archive(zygote, tmp_path):
    path = tmp_path / "hop.supsup"
    archive.create(path, HOP, seed=0)
    for task in range(2):
        masks = random_masks(HOP, task)
        archive.append_task(path, dummy_record(f"task-{task}", HOP, masks), masks)
    old, (names, masks) = path.read_bytes(), _masks_of(path)

    def check(code):
        if path.read_bytes() == old:
            assert code != 0
            return
        with archive.Archive(path) as opened:  # the new one: every task kept, and all in the reservoir
            assert [t.name for t in opened.tasks] == names and opened.reservoir_info.tasks == 2
            assert _same_masks([opened.packed_mask(i) for i in range(2)], masks)

    _kill_trials(zygote, "hopfield-store", ["hopfield-store", path], lambda: path.write_bytes(old), check)
    _no_leftovers(tmp_path)


@pytest.mark.slow
def test_kill_9_during_init_force_leaves_the_old_or_an_empty_archive(zygote, lenet_archive):
    append_random_tasks(lenet_archive, 2)
    old, (_, masks) = lenet_archive.read_bytes(), _masks_of(lenet_archive)

    def check(code):
        if lenet_archive.read_bytes() == old:
            assert code != 0
            assert _same_masks(_masks_of(lenet_archive)[1], masks)
            return
        with archive.Archive(lenet_archive) as opened:
            assert opened.tasks == [] and opened.spec.name == "lenet300-100"

    _kill_trials(zygote, "init", ["init", lenet_archive, "--arch", "lenet300-100", "--force"],
                 lambda: lenet_archive.write_bytes(old), check)
    _no_leftovers(lenet_archive.parent)


@pytest.mark.slow
def test_kill_9_during_a_many_task_learn_task_keeps_a_prefix(zygote, lenet_archive):
    append_random_tasks(lenet_archive, 1)
    old, (_, first) = lenet_archive.read_bytes(), _masks_of(lenet_archive)
    learned = []

    def check(code):
        names, masks = _masks_of(lenet_archive)
        assert names == ["task-0"] + [f"mnist-permute-{p}" for p in range(1, len(names))]  # committed in order
        assert len(names) == 4 or code != 0
        assert _same_masks(masks[:1], first)
        _verified(lenet_archive)  # every committed mask matches its digest
        learned.append(len(names) - 1)

    _kill_trials(zygote, "learn-task", ["learn-task", lenet_archive, "--permute", "1-3", "--steps", "5"],
                 lambda: lenet_archive.write_bytes(old), check)
    _no_leftovers(lenet_archive.parent)
    assert 0 in learned  # some trials were killed before the first commit


@pytest.mark.slow
def test_two_writers_killed_while_one_waits_for_the_lock(zygote, lenet_archive):
    append_random_tasks(lenet_archive, 1)
    old, (_, first) = lenet_archive.read_bytes(), _masks_of(lenet_archive)
    rng = random.Random("two writers")
    writers = [["learn-task", lenet_archive, "--permute", str(p), "--steps", "3", "--name", f"writer-{p}"]
               for p in (1, 2)]

    def check():
        names, masks = _masks_of(lenet_archive)
        assert names[0] == "task-0" and sorted(names[1:]) in ([], ["writer-1"], ["writer-2"], ["writer-1", "writer-2"])
        assert _same_masks(masks[:1], first)
        _verified(lenet_archive)
        return names

    alone = zygote.run(*writers[0])[1]
    for _ in range(PATH_TRIALS):
        lenet_archive.write_bytes(old)
        pids = [zygote.start(*argv) for argv in writers]
        time.sleep(rng.uniform(0.0, 2.2 * alone))
        for pid in pids:
            kill(pid)
        codes = [zygote.wait(pid) for pid in pids]
        assert all(code in (0, -signal.SIGKILL) for code in codes)
        check()
    lenet_archive.write_bytes(old)
    pids = [zygote.start(*argv) for argv in writers]
    assert [zygote.wait(pid) for pid in pids] == [0, 0]  # the lock was released with its holder
    assert len(check()) == 3
    _no_leftovers(lenet_archive.parent)


@pytest.mark.slow
def test_kill_9_during_a_resumable_benchmark_goes_on_to_the_uninterrupted_results(zygote, tmp_path):
    path, out = tmp_path / "bench.supsup", tmp_path / "out"
    argv = ["benchmark", "--tasks", "3", "--steps", "5", "--eval-images", "20", "--no-baselines", "--method",
            "one-shot", "--objective", "entropy", "--archive", path, "--out", out]
    code, _ = zygote.run(*argv)
    assert code == 0
    reference = _comparable(json.loads((out / "results.json").read_text()))
    digests = _digests(path)
    finished = [True]

    def prepare():
        if finished[-1]:  # start over; a killed run is resumed by the next trial
            path.unlink(missing_ok=True)
            shutil.rmtree(out, ignore_errors=True)

    def check(code):
        if path.exists():
            held = _digests(path)
            assert held == digests[: len(held)]  # nothing learned twice or otherwise
        finished.append(code == 0)
        if code == 0:
            assert _comparable(json.loads((out / "results.json").read_text())) == reference

    _kill_trials(zygote, "benchmark", argv, prepare, check)
    _no_leftovers(tmp_path)


def _digests(path):
    with archive.Archive(path) as opened:
        return [t.mask_sha256 for t in opened.tasks]


def _comparable(results):
    return {key: results[key] for key in ("matrix_by_protocol", "task_inference_by_protocol", "checkpoints")}
