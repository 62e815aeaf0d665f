"""Fault injection: kill -9 at random moments, concurrent writers, a full disk.

SUPSUP_FAULT_TRIALS (default 20) sets the number of kill -9 trials; raise it for a longer run.
"""

import os
import random
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from supsup_cli import archive, registry
from supsup_cli.archive import maskcodec
from tests.conftest import REPO, append_random_tasks, dummy_record, random_masks

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

HOP = registry.resolve("fc2048-2048-hop")


def _cli_process(*argv):
    return subprocess.Popen([sys.executable, "-m", "supsup_cli", *map(str, argv)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _kill_at_random(child, rng, latest):
    """SIGKILL at a uniform moment of the child's run (or after it ended, which is fine too)."""
    time.sleep(rng.uniform(0.0, latest))
    child.send_signal(signal.SIGKILL)
    child.wait()


def _masks_of(path, spec=SPEC):
    with archive.Archive(path) as opened:
        return [t.name for t in opened.tasks], [opened.packed_mask(i) for i in range(len(opened.tasks))]


def _no_leftovers(directory):
    assert not list(directory.glob(".*.tmp")) and not list(directory.glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(max(2, TRIALS // 10)))
def test_kill_9_during_merge_leaves_no_out_or_the_whole_merge(tmp_path, trial):
    parts = [tmp_path / "a.supsup", tmp_path / "b.supsup"]
    for start, part in zip((0, 2), parts):
        archive.create(part, SPEC, seed=0)
        append_random_tasks(part, 2, start_seed=start)
    out = tmp_path / "all.supsup"
    _kill_at_random(_cli_process("merge", out, *parts), random.Random(trial), 3.0)
    expected = [_masks_of(parts[0]), _masks_of(parts[1])]
    if out.exists():
        names, masks = _masks_of(out)
        assert names == expected[0][0] + expected[1][0]
        for got, want in zip(masks, expected[0][1] + expected[1][1]):
            assert all(np.array_equal(a, b) for a, b in zip(got, want))
    again = subprocess.run([sys.executable, "-m", "supsup_cli", "merge", out, *parts, "--force"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # the next writer goes on
    _no_leftovers(tmp_path)
    assert _masks_of(out)[0] == ["task-0", "task-1", "task-2", "task-3"]


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(max(2, TRIALS // 10)))
def test_kill_9_during_hopfield_store_leaves_the_old_or_the_new_archive(tmp_path, trial):
    path = tmp_path / "hop.supsup"
    archive.create(path, HOP, seed=0)
    for task in range(2):
        masks = random_masks(HOP, task)
        archive.append_task(path, dummy_record(f"task-{task}", HOP, masks), masks)
    before, (names, masks) = path.read_bytes(), _masks_of(path, HOP)
    _kill_at_random(_cli_process("hopfield-store", path), random.Random(trial), 4.0)
    if path.read_bytes() != before:  # then it is the new one: every task kept, and all in the reservoir
        with archive.Archive(path) as opened:
            assert [t.name for t in opened.tasks] == names and opened.reservoir_info.tasks == 2
            for task, want in enumerate(masks):
                assert all(np.array_equal(a, b) for a, b in zip(opened.packed_mask(task), want))
    again = subprocess.run([sys.executable, "-m", "supsup_cli", "hopfield-store", path], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    _no_leftovers(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(max(2, TRIALS // 10)))
def test_kill_9_during_init_force_leaves_the_old_or_an_empty_archive(lenet_archive, trial):
    append_random_tasks(lenet_archive, 2)
    before = lenet_archive.read_bytes()
    _kill_at_random(_cli_process("init", lenet_archive, "--arch", "lenet300-100", "--force"),
                    random.Random(trial), 2.0)
    if lenet_archive.read_bytes() != before:
        with archive.Archive(lenet_archive) as opened:
            assert opened.tasks == []
    else:
        _assert_tasks_intact(lenet_archive, [2])
    append_random_tasks(lenet_archive, 1, start_seed=len(_masks_of(lenet_archive)[0]))  # the next writer
    _no_leftovers(lenet_archive.parent)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(max(2, TRIALS // 10)))
def test_kill_9_during_a_many_task_learn_task_keeps_a_prefix(lenet_archive, trial):
    append_random_tasks(lenet_archive, 1)
    _kill_at_random(_cli_process("learn-task", lenet_archive, "--permute", "1-6", "--steps", "40"),
                    random.Random(trial), 12.0)
    names, _ = _masks_of(lenet_archive)
    assert names == ["task-0"] + [f"mnist-permute-{p}" for p in range(1, len(names))]  # committed in order
    _assert_tasks_intact_first(lenet_archive)
    done = subprocess.run([sys.executable, "-m", "supsup_cli", "inspect", lenet_archive, "--verify"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # every committed mask matches its digest
    append_random_tasks(lenet_archive, 1, start_seed=50)
    _no_leftovers(lenet_archive.parent)


def _assert_tasks_intact_first(path):
    with archive.Archive(path) as opened:
        for bits, packed in zip(random_masks(SPEC, 0), opened.packed_mask(0)):
            assert np.array_equal(maskcodec.unpack(packed, bits.size), bits.reshape(-1))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(max(2, TRIALS // 10)))
def test_two_writers_killed_while_one_waits_for_the_lock(lenet_archive, trial):
    rng = random.Random(trial)
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(lenet_archive), str(start)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True) for start in (0, 1000)]
    for writer in writers:
        writer.stdout.readline()  # each has committed once: from now on they contend for the lock
    time.sleep(rng.uniform(0.0, 0.5))
    for writer in writers:
        writer.send_signal(signal.SIGKILL)
    for writer in writers:
        writer.wait()
    with archive.Archive(lenet_archive) as opened:
        names = [t.name for t in opened.tasks]
        for task, name in enumerate(names):
            seed = int(name.split("-")[1])
            for bits, packed in zip(random_masks(SPEC, seed), opened.packed_mask(task)):
                assert np.array_equal(maskcodec.unpack(packed, bits.size), bits.reshape(-1))
    assert len(set(names)) == len(names) >= 2
    append_random_tasks(lenet_archive, 1, start_seed=5000)  # the lock was released with its holder
    _no_leftovers(lenet_archive.parent)
