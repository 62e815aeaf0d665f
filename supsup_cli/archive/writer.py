"""Every write is a transaction: change an in-memory copy, seal it, write it beside the archive,
fsync, and rename it over the original.

A crash or kill -9 at any moment leaves either the old archive or the new one under the archive's
name, never a mixture. HDF5 only ever writes to memory, so a full disk surfaces as our own write's
ENOSPC, never as a half-flushed HDF5 file. Writers are serialized by a lock on `<archive>.lock`.
"""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import filelock
import h5py
import numpy as np

from supsup_cli import __version__
from supsup_cli.core import choices
from supsup_cli.archive import header as header_
from supsup_cli.archive import layout
from supsup_cli.archive.reader import FORMAT_NAME, Archive, StoredTask
from supsup_cli.core.errors import (ArchiveExists, ArchiveLocked, ConcurrentChange, DiskFull, DuplicateTask,
                               InvalidArgument)
from supsup_cli.archive.records import TaskRecord, unique_name
from supsup_cli.core.registry import ArchSpec, mask_sites, to_json
from supsup_cli.core.weights import base_weights, weights_sha256

DEFAULT_LOCK_TIMEOUT = 60.0
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def lock_timeout() -> float:
    text = os.environ.get("SUPSUP_LOCK_TIMEOUT", str(DEFAULT_LOCK_TIMEOUT))
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"SUPSUP_LOCK_TIMEOUT must be a number of seconds, got {text!r}") from None


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    lock = filelock.FileLock(f"{path}.lock", timeout=lock_timeout())
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ArchiveLocked(
            f"{path}: another supsup process is writing this archive "
            f"(waited {lock_timeout():g} s for {path}.lock; SUPSUP_LOCK_TIMEOUT changes the wait)"
        ) from None
    try:
        yield
    finally:
        lock.release()


def create(path: Path, spec: ArchSpec, seed: int, force: bool = False, weights_digest: str | None = None) -> str:
    """Write a new archive with no tasks; returns the weights' SHA-256. `weights_digest`: that of
    weights the seed does not make (a module's given weights)."""
    path = Path(path)
    if path.exists() and not force:
        raise ArchiveExists(f"{path}: file exists (use --force to overwrite it)")
    digest = weights_digest or weights_sha256(base_weights(spec, seed))
    image = _empty_image(spec, seed, digest)
    with writer_lock(path):
        _publish(image, path, replace=force)
    return digest


def _empty_image(spec: ArchSpec, seed: int, weights_digest: str) -> io.BytesIO:
    image = io.BytesIO()
    with h5py.File(image, "w", userblock_size=header_.SIZE) as f:
        layout.write_string_attr(f, "format", FORMAT_NAME)
        f.attrs.create("format_version", header_.FORMAT_VERSION, dtype=layout.INTEGER_ATTRS["format_version"])
        f.attrs.create("seed", seed, dtype=layout.INTEGER_ATTRS["seed"])
        layout.write_string_attr(f, "arch", to_json(spec))
        layout.write_string_attr(f, "weights_sha256", weights_digest)
        layout.write_string_attr(f, "writer", f"supsup {__version__}")
        layout.create_datasets(f, len(mask_sites(spec)))
    return image


@contextmanager
def transaction(path: Path) -> Iterator[tuple[Archive, h5py.File]]:
    """Under the lock: the current archive (validated) and a writable in-memory HDF5 copy of it."""
    path = Path(path)
    with writer_lock(path):
        with header_.open_archive_file(path) as handle:
            raw = handle.read()
        with Archive(path, content=io.BytesIO(raw)) as current:  # the bytes we change are the ones checked
            image = io.BytesIO(raw)
            with h5py.File(image, "r+") as f:
                # Older archives are upgraded on their first write: what we add may need the new version.
                f.attrs.create("format_version", header_.FORMAT_VERSION, dtype=layout.INTEGER_ATTRS["format_version"])
                yield current, f
        _publish(image, path, replace=True)


@dataclass(frozen=True)
class StoredReservoir:
    psi: np.ndarray  # flat float32, every masked layer's d x d in order
    mu: np.ndarray  # flat float32
    tasks: int
    explicit_masks: bool


def rewrite(path: Path, build: Callable[[Archive], tuple[list[StoredTask], StoredReservoir | None]]) -> None:
    """Under the lock: replace the archive by one with the same network and the tasks (and reservoir)
    that `build(current)` returns, compacted."""
    path = Path(path)
    with writer_lock(path):
        with Archive(path) as current:
            stored, reservoir = build(current)
            image = _empty_image(current.spec, current.seed, current.weights_sha256)
        with h5py.File(image, "r+") as f:
            for task in stored:
                write_task(f, task)
            if reservoir is not None:
                write_reservoir(f, reservoir)
        _publish(image, path, replace=True)


def append_tasks(path: Path, build: Callable[[Archive], list[StoredTask]], expected_weights: str | None = None,
                 update_reservoir: Callable[[Archive], StoredReservoir] | None = None) -> int:
    """Under the lock: commit the tasks `build(current)` returns after the archive's own, all in one
    commit (a rewrite of every task is not needed to add some); returns the index of the first.

    Refused: a task name the archive or the batch already has; with `expected_weights`, an archive
    whose network changed since the tasks were trained. If the archive has a Hopfield reservoir,
    `update_reservoir(current)` gives the reservoir with the new tasks stored, computed under the
    lock; their masks are then kept only if the reservoir keeps explicit masks.
    """
    with transaction(path) as (current, f):
        if expected_weights is not None and current.weights_sha256 != expected_weights:
            raise ConcurrentChange(f"{path} now holds another base network; nothing was committed")
        stored = build(current)
        _refuse_duplicates(path, current, stored)
        if current.reservoir_info is not None:
            if update_reservoir is None:
                raise InvalidArgument(f"{path} has a Hopfield reservoir: tasks must be stored in it too")
            reservoir = update_reservoir(current)
            write_reservoir(f, reservoir)
            if not reservoir.explicit_masks:
                stored = [task.without_masks() for task in stored]
        for task in stored:
            write_task(f, task)
        return current.index.tasks


def _refuse_duplicates(path: Path, current: Archive, stored: list[StoredTask]) -> None:
    taken = {task.name for task in current.tasks}
    for task in stored:
        if task.name in taken:
            raise DuplicateTask(f"{path}: a task named {task.name!r} already exists")
        taken.add(task.name)


def write_reservoir(f: h5py.File, reservoir: StoredReservoir) -> None:
    """Create or overwrite the Hopfield reservoir of an open, writable archive."""
    for name, values in ((layout.HOPFIELD_PSI, reservoir.psi), (layout.HOPFIELD_MU, reservoir.mu)):
        data = np.asarray(values, dtype="<f4").reshape(-1)
        if name in f:
            f[name][...] = data
        else:
            f.create_dataset(name, data=data)
    group = f[layout.HOPFIELD]
    group.attrs.create("tasks", reservoir.tasks, dtype=layout.HOPFIELD_ATTRS["tasks"])
    group.attrs.create("explicit_masks", int(reservoir.explicit_masks), dtype=layout.HOPFIELD_ATTRS["explicit_masks"])


def append_task(path: Path, record: TaskRecord, masks: list[np.ndarray], stats: np.ndarray | None = None,
                update_reservoir: Callable[[Archive], StoredReservoir] | None = None,
                expected_weights: str | None = None) -> int:
    """Commit one task (its mask bits per site, as bool arrays); returns its index (see append_tasks)."""
    return append_tasks(path, lambda current: [StoredTask.of(record, masks, stats)], expected_weights,
                        update_reservoir)


def write_task(f: h5py.File, task: StoredTask) -> None:
    """Append one task's rows to every task dataset of an open, writable archive."""
    mask_extent = np.array([[_append(f[layout.MASKS], np.frombuffer(data, np.uint8)), len(data)]
                            for _, data in task.encoded], dtype="<u8")
    _append_row(f[layout.MASK_EXTENT], mask_extent)
    _append_row(f[layout.MASK_CODEC], np.array([codec for codec, _ in task.encoded], dtype="u1"))
    _append_row(f[layout.RECORD_EXTENT], np.array(
        [_append(f[layout.RECORDS], np.frombuffer(task.record, np.uint8)), len(task.record)], dtype="<u8"))
    _append_row(f[layout.ARRAY_EXTENT], np.array([_append(f[layout.ARRAYS], task.stats), task.stats.size],
                                                 dtype="<u8"))
    _append_row(f[layout.SHA256], np.frombuffer(layout.task_digest(task.record, task.encoded, task.stats), np.uint8))


def _append(dset: h5py.Dataset, values: np.ndarray) -> int:
    start = dset.shape[0]
    if values.size:
        dset.resize((start + values.size,))
        dset[start:] = values
    return start


def _append_row(dset: h5py.Dataset, row: np.ndarray) -> None:
    rows = dset.shape[0]
    dset.resize((rows + 1, *dset.shape[1:]))
    dset[rows] = row


def _publish(image: io.BytesIO, path: Path, replace: bool) -> None:
    """Seal the image, check it as a reader would, write it beside the archive, fsync it, and rename
    it into place. Nothing that a reader would refuse is ever published."""
    buffer = image.getbuffer()
    buffer[: header_.SIZE] = header_.sealed(buffer)
    with Archive(path, verify_content=False, check_weights=False, content=image):  # just sealed: no rehash
        pass
    _remove_stale_staging(path)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            with open(staging, "wb") as out:
                if path.exists():
                    os.chmod(staging, stat.S_IMODE(path.stat().st_mode))  # keep the archive's permissions
                out.write(buffer)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFull(f"{path}: no space left to write the archive; it is unchanged") from None
            raise
        with _interrupts_held():
            _move_into_place(staging, path, replace)
            _fsync_directory(path.parent)
    finally:
        staging.unlink(missing_ok=True)


def _move_into_place(staging: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(staging, path)
        return
    try:
        os.link(staging, path)  # fails if someone created the path meanwhile: never clobber
    except FileExistsError:
        raise ArchiveExists(f"{path}: file exists (use --force to overwrite it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        # A filesystem without hard links: check, then rename (a race with another creator remains).
        if path.exists():
            raise ArchiveExists(f"{path}: file exists (use --force to overwrite it)") from None
        os.replace(staging, path)


def _remove_stale_staging(path: Path) -> None:
    """Leftovers of this archive's writers killed mid-write; safe to delete because we hold its lock."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.\d+\.tmp")
    for stale in path.parent.iterdir():
        if pattern.fullmatch(stale.name):
            stale.unlink(missing_ok=True)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C during the rename and its fsync is held until both are done; the command then finishes
    normally, having committed (an interrupted step never leaves a half-committed archive)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals cannot reach us here anyway
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merge(out: Path, inputs: list[Path], on_duplicate: str = "refuse", force: bool = False) -> dict[str, Any]:
    """One archive with every task of `inputs`, in order, renumbered. The inputs must share the
    architecture, seed and weights; a duplicate task name is refused, renamed (name-2, ...) or skipped.
    Inputs are read one at a time."""
    if on_duplicate not in choices.ON_DUPLICATE:
        raise InvalidArgument(f"--on-duplicate must be {choices.listed(choices.ON_DUPLICATE)}, got {on_duplicate!r}")
    out = Path(out)
    if out.exists() and not force:
        raise ArchiveExists(f"{out}: file exists (use --force to overwrite it)")
    stored: list[StoredTask] = []
    names: set[str] = set()
    report, first = [], None
    for index, path in enumerate(inputs):
        with Archive(path, check_weights=index == 0) as source:  # the others must carry the same hash
            first = first or (source.path, source.spec, source.seed, source.weights_sha256)
            _check_mergeable(first, source)
            renamed, skipped = [], []
            for task, record in enumerate(source.tasks):
                name = record.name
                if name in names:
                    if on_duplicate == "refuse":
                        raise DuplicateTask(f"{source.path}: task {name!r} is also in an earlier input "
                                            "(--on-duplicate rename or skip to resolve it)")
                    if on_duplicate == "skip":
                        skipped.append(name)
                        continue
                    name = unique_name(name, names)
                    renamed.append([record.name, name])
                names.add(name)
                kept = source.stored_task(task)
                record_bytes = kept.record if name == record.name else replace(record, name=name).to_json()
                stored.append(StoredTask(record_bytes, kept.encoded, kept.stats))
            report.append({"path": str(source.path), "tasks": len(source.tasks), "renamed": renamed,
                           "skipped": skipped})
    _, spec, seed, digest = first
    image = _empty_image(spec, seed, digest)
    with h5py.File(image, "r+") as f:
        for task in stored:
            write_task(f, task)
    with writer_lock(out):
        _publish(image, out, replace=force)
    return {"out": str(out), "tasks": len(stored), "inputs": report}


def _check_mergeable(first: tuple[Path, ArchSpec, int, str], other: Archive) -> None:
    path, spec, seed, digest = first
    mine, theirs = asdict(spec), asdict(other.spec)
    differences = [f"{key} {theirs[key]} vs {mine[key]}" for key in mine if mine[key] != theirs[key]]
    if other.seed != seed:
        differences.append(f"seed {other.seed} vs {seed}")
    if other.weights_sha256 != digest:
        differences.append(f"weights hash {other.weights_sha256[:12]}... vs {digest[:12]}...")
    if differences:
        raise InvalidArgument(f"{other.path} and {path} have different base networks "
                              f"({'; '.join(differences)}); only archives of one network can be merged")
    if other.reservoir_info is not None:
        raise InvalidArgument(f"{other.path} has a Hopfield reservoir: merge archives before hopfield-store")
