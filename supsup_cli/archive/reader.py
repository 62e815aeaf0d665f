"""Opening an archive: header, digest, layout, architecture and weights are all checked first."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import h5py
import numpy as np

from supsup_cli.archive import maskcodec
from supsup_cli.archive import header as header_
from supsup_cli.archive import layout, versions
from supsup_cli.core.errors import ArchiveCorrupt, ModuleRequired, NoTasks, SupsupError, UnknownTask, WeightsMismatch
from supsup_cli.archive.records import TaskRecord
from supsup_cli.core.registry import MODULE, ArchSpec, MaskSite, from_json, mask_sites
from supsup_cli.core.weights import base_weights, weights_sha256

FORMAT_NAME = "supsup"
_HDF5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError, OverflowError)
_Read = TypeVar("_Read", bound=Callable)


def _reading(method: _Read) -> _Read:
    """The last line of defence behind the checks at open: whatever HDF5 (or decoding) raises while
    reading an open archive becomes a damaged-archive error naming the file."""

    @functools.wraps(method)
    def read(self: "Archive", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except SupsupError:
            raise
        except _HDF5_ERRORS as exc:
            raise ArchiveCorrupt(f"{self.path}: the archive's content cannot be read ({_first_line(exc)})") from None

    return read  # type: ignore[return-value]


@dataclass(frozen=True)
class StoredTask:
    """One task exactly as an archive stores it: record JSON, (codec, bytes) per site, statistics."""

    record: bytes
    encoded: list[tuple[int, bytes]]
    stats: np.ndarray

    @staticmethod
    def of(record: TaskRecord, masks: list[np.ndarray], stats: np.ndarray | None = None) -> "StoredTask":
        """Encode a task: each site's mask in the smaller codec, statistics as float32."""
        floats = np.zeros(0, dtype="<f4") if stats is None else np.asarray(stats, dtype="<f4").reshape(-1)
        encoded = [maskcodec.encode(bits) for bits in masks]
        return StoredTask(record.to_json(), encoded, floats)

    @functools.cached_property
    def name(self) -> str:
        """The task's name, read from its record."""
        return str(json.loads(self.record)["name"])

    def without_masks(self) -> "StoredTask":
        """The task with its masks kept only in a Hopfield reservoir."""
        return StoredTask(self.record, [(maskcodec.NONE, b"")] * len(self.encoded), self.stats)


# Records already checked, by their bytes: a writer opens the archive, then checks the image it
# publishes, commit after commit, and at thousands of tasks rechecking every record was half of a
# commit's time. Records are immutable; a record that failed is never kept.
_CHECKED: dict[tuple[bytes, ArchSpec, int], TaskRecord] = {}
_CHECKED_MAX = 50_000


class Archive:
    """A read-only view of one archive, valid until `close`. Masks are read lazily, per task."""

    def __init__(self, path: Path, verify_content: bool = True, check_weights: bool = True,
                 load_records: bool = True, content: BinaryIO | None = None) -> None:
        """Everything is checked by default; `inspect --verify` opens damaged files with less.
        The file is opened once: what HDF5 parses is exactly what the header and digest checks read.
        `content`: the archive's bytes already in memory (a writer's), read instead of the file."""
        self.path = Path(path)
        self._owns_handle = content is None
        self._handle = header_.open_archive_file(self.path) if content is None else content
        try:
            self.header = header_.read_header(self._handle, self.path)
            if verify_content:
                header_.verify_content(self._handle, self.header, self.path)
            self._open(check_weights, load_records)
        except BaseException:
            self._release()
            raise

    def _open(self, check_weights: bool, load_records: bool) -> None:
        self._handle.seek(0)
        self._file = _open_hdf5(self._handle, self.path)
        try:
            self._load(check_weights, load_records)
        except SupsupError:
            self._file.close()
            raise
        except _HDF5_ERRORS as exc:
            self._file.close()
            raise ArchiveCorrupt(f"{self.path}: invalid archive structure ({_first_line(exc)})") from None
        except BaseException:
            self._file.close()
            raise

    def _load(self, check_weights: bool, load_records: bool) -> None:
        f = self._file
        layout.check_members(f, f.userblock_size, self.header.file_length)
        if layout.read_string_attr(f, "format") != FORMAT_NAME:
            raise ArchiveCorrupt(f"{self.path}: root attribute 'format' is not {FORMAT_NAME!r}")
        version = layout.read_integer_attr(f, "format_version")
        if version != self.header.format_version:
            raise ArchiveCorrupt(f"{self.path}: header says version {self.header.format_version}, content {version}")
        self.format_version = version
        self.seed = layout.read_integer_attr(f, "seed")
        self.spec: ArchSpec = from_json(layout.read_string_attr(f, "arch"))
        versions.check_architecture(version, self.spec)
        self.weights_sha256 = layout.read_string_attr(f, "weights_sha256")
        self.writer = layout.read_string_attr(f, "writer")
        self.sites: tuple[MaskSite, ...] = mask_sites(self.spec)
        self.index = layout.read_index(f, self.spec, version)
        self.reservoir_info = layout.read_reservoir_info(f, self.spec, self.index, version)
        if self.reservoir_info is None and self.index.tasks and (self.index.mask_codec == maskcodec.NONE).any():
            raise ArchiveCorrupt(f"{self.path}: a task has no stored mask and there is no Hopfield reservoir")
        self.tasks: list[TaskRecord] = self._read_records() if load_records else []
        if check_weights and not self.weights_come_with_module:
            self.base_weights()

    @property
    def weights_come_with_module(self) -> bool:
        """A module's given weights: only the module itself has them (they are checked when it is bound)."""
        return self.spec.family == MODULE and self.spec.weights == "given"

    def base_weights(self) -> list[np.ndarray]:
        if self.weights_come_with_module:
            raise ModuleRequired(f"{self.path}: the base weights are the module's own ({self.spec.label or 'a module'}):"
                                 " open the archive with that module (`module`)")
        weights = base_weights(self.spec, self.seed)
        if weights_sha256(weights) != self.weights_sha256:
            raise WeightsMismatch(
                f"{self.path}: the base weights regenerated from seed {self.seed} do not match "
                "the stored SHA-256; the archive was written by an incompatible generator or altered"
            )
        return weights

    def _read_records(self) -> list[TaskRecord]:
        stream = self._file[layout.RECORDS][...].tobytes() if self.index.tasks else b""
        records = []
        names: set[str] = set()
        for offset, length in self.index.record_extent.tolist():
            record = self.checked_record(stream[offset : offset + length])
            if record.name in names:
                raise ArchiveCorrupt(f"{self.path}: task name {record.name!r} appears twice")
            names.add(record.name)
            records.append(record)
        return records

    def checked_record(self, raw: bytes) -> TaskRecord:
        """A task's record, checked by every rule of the spec that one record can break (3.5, 3.5.1,
        section 0): the rules every command applies, and `inspect --verify` task by task."""
        key = (raw, self.spec, self.format_version)
        if key in _CHECKED:  # the same bytes under the same spec and version pass the same checks
            return _CHECKED[key]
        record = TaskRecord.from_json(raw, len(self.sites))
        _check_fits(record, self.spec, self.path)
        versions.check_record(self.format_version, record)
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[key] = record
        return record

    def close(self) -> None:
        self._file.close()
        self._release()

    def _release(self) -> None:
        if self._owns_handle:
            self._handle.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(self.tasks)

    def __getitem__(self, ref: str | int) -> TaskRecord:
        """A task's record by index or name (UnknownTask if there is none)."""
        return self.tasks[self.task_index(ref)]

    def __repr__(self) -> str:
        return f"Archive({str(self.path)!r}, arch={self.spec.name!r}, seed={self.seed}, tasks={len(self.tasks)})"

    def task_index(self, ref: str | int) -> int:
        """A task given by index ("3") or by name."""
        if not self.tasks:
            raise NoTasks(f"{self.path}: the archive has no tasks yet")
        text = str(ref)
        if text.isascii() and text.isdecimal():
            index = int(text)
            if index < len(self.tasks):
                return index
            raise UnknownTask(f"{self.path}: no task {index} (the archive has tasks 0-{len(self.tasks) - 1})")
        for index, record in enumerate(self.tasks):
            if record.name == text:
                return index
        raise UnknownTask(f"{self.path}: no task named {text!r}")

    @_reading
    def stored_task(self, task: int) -> StoredTask:
        """One task's bytes as stored, undecoded."""
        offset, length = self.index.record_extent[task].tolist()
        record = self._file[layout.RECORDS][offset : offset + length].tobytes()
        masks = [self._encoded_mask(task, site) for site in range(len(self.sites))]
        offset, length = self.index.array_extent[task].tolist()
        return StoredTask(record, masks, self._file[layout.ARRAYS][offset : offset + length])

    def packed_mask(self, task: int) -> list[np.ndarray]:
        """One task's mask per site, bit-packed; the other tasks are neither read nor decoded."""
        return [self.packed_mask_site(task, site) for site in range(len(self.sites))]

    @_reading
    def packed_mask_site(self, task: int, site: int) -> np.ndarray:
        codec, data = self._encoded_mask(task, site)
        return maskcodec.decode_packed(data, codec, self.sites[site].numel).copy()

    @_reading
    def _encoded_mask(self, task: int, site: int) -> tuple[int, bytes]:
        offset, length = self.index.mask_extent[task, site].tolist()
        data = self._file[layout.MASKS][offset : offset + length].tobytes() if length else b""
        return int(self.index.mask_codec[task, site]), data

    @_reading
    def stream_bytes(self) -> dict[str, int]:
        """Bytes of the file and of what its streams hold (the rest is HDF5's and our header's)."""
        index = self.index
        return {
            "file": self.header.file_length,
            "hopfield": 0 if self.reservoir_info is None else
            self._file[layout.HOPFIELD_PSI].nbytes + self._file[layout.HOPFIELD_MU].nbytes,
            "records": int(index.record_extent[:, 1].sum()),
            "statistics": 4 * int(index.array_extent[:, 1].sum()),
            "index": sum(a.nbytes for a in (index.record_extent, index.mask_extent, index.mask_codec,
                                            index.array_extent, index.sha256)),
        }

    @_reading
    def packed_masks(self) -> list[np.ndarray]:
        """Every task's mask, bit-packed: per site an array [tasks, ceil(n/8)] of uint8."""
        stream = self._file[layout.MASKS][...] if self.index.tasks else np.zeros(0, np.uint8)
        stacked = []
        for site_index, site in enumerate(self.sites):
            rows = np.empty((self.index.tasks, maskcodec.packed_size(site.numel)), dtype=np.uint8)
            for task in range(self.index.tasks):
                offset, length = self.index.mask_extent[task, site_index].tolist()
                codec = int(self.index.mask_codec[task, site_index])
                rows[task] = maskcodec.decode_packed(stream[offset : offset + length].tobytes(), codec, site.numel)
            stacked.append(rows)
        return stacked

    @_reading
    def reservoir(self) -> tuple[np.ndarray, np.ndarray]:
        """The Hopfield networks and running means of every masked layer, flat float32 (see formats/)."""
        return self._file[layout.HOPFIELD_PSI][...], self._file[layout.HOPFIELD_MU][...]

    @_reading
    def stats(self, task: int) -> np.ndarray:
        """One task's normalization statistics (float32), read alone."""
        offset, length = self.index.array_extent[task].tolist()
        return self._file[layout.ARRAYS][offset : offset + length]


def _check_fits(record: TaskRecord, spec: ArchSpec, path: Path) -> None:
    """A record's classes must have output neurons, and its normalization one value per channel."""
    needed = max(record.classes) + 1 if spec.labels == "global" else len(record.classes)
    if needed > spec.output_size:
        raise ArchiveCorrupt(f"{path}: task {record.name!r} needs {needed} outputs, the network has {spec.output_size}")
    if len(record.mean) != spec.input_shape[0]:
        raise ArchiveCorrupt(f"{path}: task {record.name!r} normalizes {len(record.mean)} channels, "
                             f"the network takes {spec.input_shape[0]}")


def _open_hdf5(handle: BinaryIO, path: Path) -> h5py.File:
    try:
        return h5py.File(handle, "r")
    except (OSError, ValueError) as exc:
        raise ArchiveCorrupt(f"{path}: the HDF5 structure cannot be read ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
