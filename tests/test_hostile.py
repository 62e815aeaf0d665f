"""Hostile archives on every read path (issue 21): forged HDF5 content with the header resealed.

Anyone who has read the spec can recompute the header (length, SHA-256, CRC-32) of damaged content,
so the HDF5 structure itself is the attack surface. Every command that reads an archive gets the same
corpus, built from archives of every kind: random bytes, truncations, bit flips and spliced blocks in
the HDF5 content. Each case must end in a documented exit code with one line on stderr, or succeed;
never exit 1 (an internal error), a traceback or a hang. SUPSUP_HOSTILE_CASES scales the corpus
(the cases of all commands together; 250 by default, 100,000 for a long run), spread so that the
commands that train or evaluate on data, the slow ones, get a fifth of the others' share;
SUPSUP_HOSTILE_SHARD=i/n runs a piece of them.
"""

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.archive import header
from supsup_cli.cli.exit_codes import BY_ERROR
from supsup_cli.api.hopfield_store import hopfield_store
from tests.conftest import REPO, dummy_record, random_masks

TOTAL_CASES = int(os.environ.get("SUPSUP_HOSTILE_CASES", "250"))
# "i/n": only the cases whose number is i modulo n, so that a long run can go in pieces that each end
# (each case draws from its own seed, so a piece is the same cases whichever others ran)
SHARD, SHARDS = (int(part) for part in os.environ.get("SUPSUP_HOSTILE_SHARD", "0/1").split("/"))
DOCUMENTED = {0} | set(BY_ERROR.values())  # 1 is "internal error": a bug
SECONDS_PER_CASE = 20  # of CPU time: a hang, not a speed limit (most cases take milliseconds), and
# unaffected by a loaded or paused machine; a case blocked without spinning meets the wall-clock limit
WALL_SECONDS_PER_CASE = 900


def _build_kinds(root: Path) -> dict[str, Path]:
    """One small archive of each kind the corpus starts from."""
    kinds = {}
    lenet = registry.resolve("lenet300-100")
    for name, density in (("bitpacked", 0.5), ("rice", 0.02)):
        path = kinds[name] = root / f"{name}.supsup"
        archive.create(path, lenet, seed=0)
        for task in range(2):
            masks = random_masks(lenet, task, density)
            archive.append_task(path, dummy_record(f"task-{task}", lenet, masks), masks)
    hop = registry.resolve("fc2048-2048-hop")
    path = kinds["hopfield"] = root / "hopfield.supsup"
    archive.create(path, hop, seed=0)
    for task in range(2):
        masks = random_masks(hop, task, 0.5)
        record = dummy_record(f"task-{task}", hop, masks)
        archive.append_task(path, record, masks)
    hopfield_store(path, drop_masks=True)
    resnet = registry.resolve("resnet18-narrow")
    path = kinds["resnet"] = root / "resnet.supsup"
    archive.create(path, resnet, seed=0)
    masks = random_masks(resnet, 0, 0.5)
    stats = np.random.default_rng(0).random(registry.stats_size(resnet)).astype(np.float32)
    record = dummy_record("task-0", resnet, masks)
    record = type(record)(**{**record.__dict__, "data": {"dataset": "cifar100", "classes": [0, 1]},
                             "classes": (0, 1), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    archive.append_task(path, record, masks, stats)
    return kinds


def _hostile(raw: bytes, rng: random.Random) -> bytes:
    """One forged variant of an archive's bytes, resealed so that the header check passes."""
    content = bytearray(raw)
    size = len(content)

    def somewhere() -> int:  # mostly in HDF5's own structures, at the start and the end of the file
        return rng.choice([rng.randrange(header.SIZE, min(size, header.SIZE + 16_000)),
                           rng.randrange(max(header.SIZE, size - 40_000), size), rng.randrange(header.SIZE, size)])

    damage = rng.choice(["random", "truncate", "flip", "splice"])
    if damage == "random":
        at = somewhere()
        content[at : at + rng.randint(1, 64)] = rng.randbytes(rng.randint(1, 64))
    elif damage == "truncate":
        del content[rng.randrange(header.SIZE, size) :]
    elif damage == "flip":
        for _ in range(rng.randint(1, 6)):
            content[somewhere()] ^= 1 << rng.randrange(8)
    else:
        start, length, to = somewhere(), rng.randint(8, 512), somewhere()
        block = content[start : start + length]
        content[to : to + len(block)] = block
    content[: header.SIZE] = header.sealed(content)
    return bytes(content)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    kinds = _build_kinds(root)
    images = root / "images"
    images.mkdir()
    np.save(images / "mnist.npy", np.zeros((2, 28, 28), np.uint8))
    np.save(images / "cifar.npy", np.zeros((2, 3, 32, 32), np.uint8))
    return root, kinds, {name: path.read_bytes() for name, path in kinds.items()}


def _image(root: Path, kind: str) -> Path:
    return root / "images" / ("cifar.npy" if kind == "resnet" else "mnist.npy")


# Each command as a user types it: A is the hostile archive (a fresh copy for writers), V a valid
# archive of the same kind, OUT a path that does not exist yet.
COMMANDS = {
    "inspect": ["inspect", "{A}"],
    "inspect --verify": ["inspect", "{A}", "--verify"],
    "infer": ["infer", "{A}", "{IMG}"],
    "infer --hopfield": ["infer", "{A}", "{IMG}", "--hopfield", "--hopfield-steps", "2"],
    "learn-task": ["learn-task", "{A}", "--permute", "5", "--steps", "1"],
    "learn-task --auto": ["learn-task", "{A}", "--permute", "5", "--steps", "2", "--auto", "--decide-every", "1"],
    "merge": ["merge", "{OUT}", "{A}", "{V}"],
    "size": ["size", "{A}"],
    "hopfield-store": ["hopfield-store", "{A}"],
    "benchmark --archive": ["benchmark", "--archive", "{A}", "--eval-images", "2", "--no-baselines",
                            "--method", "one-shot", "--objective", "entropy"],
}


SLOW = {"infer --hopfield", "learn-task", "learn-task --auto", "benchmark --archive"}
WEIGHTS = {command: 1 if command in SLOW else 5 for command in COMMANDS}


def _cases(command: str) -> int:
    return max(10, round(TOTAL_CASES * WEIGHTS[command] / sum(WEIGHTS.values())))


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_survives_the_hostile_corpus(cli, corpus, tmp_path, command):
    root, kinds, originals = corpus
    outcomes: dict[int, int] = {}
    previous = signal.signal(signal.SIGALRM, _alarm), signal.signal(signal.SIGPROF, _alarm)
    try:
        for case in range(SHARD, _cases(command), SHARDS):
            rng = random.Random(f"hostile/{command}/{case}")
            kind = list(originals)[case % len(originals)]
            path, out = tmp_path / f"case-{case}.supsup", tmp_path / f"out-{case}.supsup"
            path.write_bytes(_hostile(originals[kind], rng))
            argv = [a.format(A=path, V=kinds[kind], OUT=out, IMG=_image(root, kind)) for a in COMMANDS[command]]
            signal.setitimer(signal.ITIMER_PROF, SECONDS_PER_CASE)
            signal.alarm(WALL_SECONDS_PER_CASE)
            try:
                result = cli(*argv)
            except _Hang:
                pytest.fail(f"{command} on a forged {kind} archive (case {case}) ran past {SECONDS_PER_CASE} s "
                            f"of CPU time or {WALL_SECONDS_PER_CASE} s of wall time")
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.alarm(0)
            assert result.code in DOCUMENTED, f"{command}, {kind} case {case}: exit {result.code}: {result.err}"
            if result.code != 0:
                lines = result.err.strip().splitlines()
                assert lines and lines[-1].startswith("supsup: error:") and "Traceback" not in result.err, \
                    f"{command}, {kind} case {case}: {result.err}"
            outcomes[result.code] = outcomes.get(result.code, 0) + 1
            path.unlink(missing_ok=True)
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    finally:
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGPROF, previous[1])
    assert outcomes.get(5, 0) > 0  # the corpus did reach the damaged-archive checks
    print(f"{command}: exit codes {dict(sorted(outcomes.items()))}")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["infer", "size"])
def test_forged_archives_stay_within_an_address_space_limit(corpus, tmp_path, command):
    """A few cases in a fresh process whose address space is capped: a forged size must not make it
    allocate what the file cannot hold."""
    root, kinds, originals = corpus
    rng = random.Random(f"bounded/{command}")
    limit = 6 * 2**30  # torch's own reservations fit; a forged terabyte does not

    def bounded():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    for case, kind in enumerate(("rice", "resnet")):
        path = tmp_path / f"case-{case}.supsup"
        path.write_bytes(_hostile(originals[kind], rng))
        argv = [a.format(A=path, V=kinds[kind], OUT=tmp_path / "out", IMG=_image(root, kind))
                for a in COMMANDS[command]]
        done = subprocess.run([sys.executable, "-m", "supsup_cli", *argv], capture_output=True, text=True,
                              timeout=120, preexec_fn=bounded, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode in DOCUMENTED, done.stderr
        assert "Traceback" not in done.stderr
