"""The HDF5 layout of the archive (formats/supsup-v4.md): names, dtypes, shapes, and a reader's checks.

Every variable-length thing lives in one of a few byte or float streams, addressed by extent
tables (offset, length) that are validated against the stream sizes before anything is read.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import h5py
import numpy as np

from supsup_cli.archive import maskcodec, versions
from supsup_cli.core.errors import ArchiveCorrupt
from supsup_cli.archive.records import MAX_RECORD_BYTES
from supsup_cli.core.registry import ArchSpec, mask_sites, stats_size

MAX_TASKS = 1_000_000
MAX_ATTR_BYTES = 16 * 1024
MAX_RECORDS_TOTAL = 256 * 1024 * 1024

RECORDS = "tasks/records"
RECORD_EXTENT = "tasks/record_extent"
MASKS = "tasks/masks"
MASK_EXTENT = "tasks/mask_extent"
MASK_CODEC = "tasks/mask_codec"
ARRAYS = "tasks/arrays"
ARRAY_EXTENT = "tasks/array_extent"
SHA256 = "tasks/sha256"
HOPFIELD = "hopfield"
HOPFIELD_PSI = "hopfield/psi"
HOPFIELD_MU = "hopfield/mu"
HOPFIELD_ATTRS = {"tasks": np.dtype("<u8"), "explicit_masks": np.dtype("u1")}

STRING_ATTRS = ("format", "arch", "weights_sha256", "writer")
INTEGER_ATTRS = {"format_version": np.dtype("<u4"), "seed": np.dtype("<u8")}


@dataclass(frozen=True)
class Dataset:
    name: str
    dtype: np.dtype
    row_shape: tuple[int, ...]  # trailing dimensions; the first dimension grows with tasks or bytes
    chunk_rows: int


def task_datasets(sites: int) -> tuple[Dataset, ...]:
    return (
        Dataset(RECORDS, np.dtype("u1"), (), 4 * 1024),
        Dataset(RECORD_EXTENT, np.dtype("<u8"), (2,), 256),
        Dataset(MASKS, np.dtype("u1"), (), 16 * 1024),
        Dataset(MASK_EXTENT, np.dtype("<u8"), (sites, 2), 256),
        Dataset(MASK_CODEC, np.dtype("u1"), (sites,), 256),
        Dataset(ARRAYS, np.dtype("<f4"), (), 16 * 1024),
        Dataset(ARRAY_EXTENT, np.dtype("<u8"), (2,), 256),
        Dataset(SHA256, np.dtype("u1"), (32,), 256),
    )


def create_datasets(f: h5py.File, sites: int) -> None:
    for d in task_datasets(sites):
        f.create_dataset(
            d.name,
            shape=(0, *d.row_shape),
            maxshape=(None, *d.row_shape),
            dtype=d.dtype,
            chunks=(d.chunk_rows, *d.row_shape),
        )


def write_string_attr(obj: h5py.HLObject, name: str, value: str) -> None:
    """Fixed-length ASCII, so a reader knows the size before it reads."""
    obj.attrs.create(name, np.bytes_(value.encode("ascii")))


def read_string_attr(obj: h5py.HLObject, name: str) -> str:
    attr = _open_attr(obj, name)
    kind = attr.get_type()
    if not isinstance(kind, h5py.h5t.TypeStringID) or kind.is_variable_str():
        raise ArchiveCorrupt(f"attribute {name!r} is not a fixed-length string")
    if kind.get_size() > MAX_ATTR_BYTES or attr.shape != ():
        raise ArchiveCorrupt(f"attribute {name!r} is too large")
    raw = obj.attrs[name]
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise ArchiveCorrupt(f"attribute {name!r} is not ASCII") from None


def read_integer_attr(obj: h5py.HLObject, name: str, dtype: np.dtype | None = None) -> int:
    dtype = INTEGER_ATTRS[name] if dtype is None else dtype
    attr = _open_attr(obj, name)
    if attr.dtype != dtype or attr.shape != ():
        raise ArchiveCorrupt(f"attribute {name!r} must be a scalar {dtype}")
    return int(obj.attrs[name])


def _open_attr(obj: h5py.HLObject, name: str) -> h5py.h5a.AttrID:
    if name not in obj.attrs:
        raise ArchiveCorrupt(f"missing attribute {name!r}")
    return h5py.h5a.open(obj.id, name.encode())


def check_members(f: h5py.File, first: int, end: int) -> None:
    """Only our own groups and datasets, all hard links, all plain contiguous-or-chunked storage lying
    between byte `first` (after the user block) and `end` (the file's length) of the file."""
    expected = {"tasks": {n.split("/")[1] for n in (RECORDS, RECORD_EXTENT, MASKS, MASK_EXTENT, MASK_CODEC,
                                                   ARRAYS, ARRAY_EXTENT, SHA256)}}
    if HOPFIELD in f:
        expected[HOPFIELD] = {"psi", "mu"}
        unknown = set(f[HOPFIELD].attrs.keys()) - set(HOPFIELD_ATTRS)
        if unknown:
            raise ArchiveCorrupt(f"unexpected attributes of {HOPFIELD}: {sorted(unknown)}")
    _check_group(f, "/", set(expected))
    for group, members in expected.items():
        _check_group(f, group, members)
        for member in members:
            _check_dataset_storage(f[f"{group}/{member}"], first, end)
    unknown = set(f.attrs.keys()) - set(STRING_ATTRS) - set(INTEGER_ATTRS)
    if unknown:
        raise ArchiveCorrupt(f"unexpected root attributes {sorted(unknown)}")


def _check_group(f: h5py.File, path: str, members: set[str]) -> None:
    link = f.get(path, getlink=True) if path != "/" else h5py.HardLink()
    if not isinstance(link, h5py.HardLink):
        raise ArchiveCorrupt(f"{path} is a {type(link).__name__}, not a plain member")
    group = f[path]
    if not isinstance(group, h5py.Group):
        raise ArchiveCorrupt(f"{path} is not a group")
    names = set(group.keys())
    if names != members:
        raise ArchiveCorrupt(f"{path} holds {sorted(names)}, expected {sorted(members)}")
    for name in names:
        if not isinstance(group.get(name, getlink=True), h5py.HardLink):
            raise ArchiveCorrupt(f"{path}/{name} is a link to elsewhere, which archives never contain")


def _check_dataset_storage(dset: h5py.Dataset, first: int, end: int) -> None:
    if not isinstance(dset, h5py.Dataset):
        raise ArchiveCorrupt(f"{dset.name} is not a dataset")
    if dset.is_virtual or dset.external:
        raise ArchiveCorrupt(f"{dset.name} refers to data outside the archive")
    if dset.id.get_create_plist().get_nfilters():
        raise ArchiveCorrupt(f"{dset.name} uses an HDF5 filter, which archives never contain")
    # Unwritten chunks read as fill values: a tiny file could declare terabytes. Everything we read
    # must be stored in the file, which bounds every allocation by the file's size.
    declared = math.prod(dset.shape) * dset.dtype.itemsize
    if dset.id.get_storage_size() < declared:
        raise ArchiveCorrupt(f"{dset.name} declares {declared} bytes but the file stores "
                             f"{dset.id.get_storage_size()} of them")
    _check_blocks_inside(dset, declared, first, end)


def _check_blocks_inside(dset: h5py.Dataset, declared: int, first: int, end: int) -> None:
    """Every byte HDF5 will read for this dataset lies inside the file: each chunk (or the one
    contiguous block; HDF5 gives their addresses from the start of the file) lies between the user
    block and the end of the file, and the blocks hold at least the declared bytes. A forged address or size would otherwise reach HDF5's own read errors, or a huge read."""
    plist = dset.id.get_create_plist()
    kind = plist.get_layout()
    if kind == h5py.h5d.COMPACT:  # stored in the object header HDF5 has already parsed
        return
    if kind == h5py.h5d.CONTIGUOUS:
        offset = dset.id.get_offset()
        blocks = [] if offset is None else [(offset, dset.id.get_storage_size())]
    elif kind == h5py.h5d.CHUNKED:
        chunk_bytes = math.prod(plist.get_chunk()) * dset.dtype.itemsize
        blocks = [(info.byte_offset, info.size) for info in _chunks(dset)]
        for number, (_, size) in enumerate(blocks):
            if size != chunk_bytes:
                raise ArchiveCorrupt(f"{dset.name}: chunk {number} holds {size} bytes, not {chunk_bytes}")
    else:
        raise ArchiveCorrupt(f"{dset.name} has a storage layout archives never use")
    for offset, size in blocks:
        if offset is None or offset < first or offset + size > end:
            raise ArchiveCorrupt(f"{dset.name}: stored bytes at {offset}..{(offset or 0) + size} lie outside the "
                                 f"file's {end} bytes")
    if declared and sum(size for _, size in blocks) < declared:
        raise ArchiveCorrupt(f"{dset.name} declares {declared} bytes but its blocks hold "
                             f"{sum(size for _, size in blocks)}")


def _chunks(dset: h5py.Dataset) -> list:
    """Every allocated chunk's storage info, in one pass over the chunk index where HDF5 can (asking
    for chunk i by number walks the index from the start: 1.9 s for 5,000 chunks)."""
    if hasattr(dset.id, "chunk_iter"):
        found: list = []
        dset.id.chunk_iter(found.append)
        return found
    return [dset.id.get_chunk_info(number) for number in range(dset.id.get_num_chunks())]


def check_dataset(f: h5py.File, d: Dataset, rows: int | None) -> h5py.Dataset:
    dset = f[d.name]
    if dset.dtype != d.dtype:
        raise ArchiveCorrupt(f"{d.name} has dtype {dset.dtype}, expected {d.dtype}")
    if dset.ndim != 1 + len(d.row_shape) or dset.shape[1:] != d.row_shape:
        raise ArchiveCorrupt(f"{d.name} has shape {dset.shape}, expected (n, {', '.join(map(str, d.row_shape))})")
    if rows is not None and dset.shape[0] != rows:
        raise ArchiveCorrupt(f"{d.name} has {dset.shape[0]} rows, expected {rows}")
    return dset


@dataclass(frozen=True)
class Index:
    """Everything needed to find one task's bytes, read and validated at open."""

    tasks: int
    record_extent: np.ndarray  # [k, 2]
    mask_extent: np.ndarray  # [k, sites, 2]
    mask_codec: np.ndarray  # [k, sites]
    array_extent: np.ndarray  # [k, 2]
    sha256: np.ndarray  # [k, 32]




def read_index(f: h5py.File, spec: ArchSpec, version: int) -> Index:
    sites = mask_sites(spec)
    by_name = {d.name: d for d in task_datasets(len(sites))}
    tasks = check_dataset(f, by_name[RECORD_EXTENT], None).shape[0]
    if tasks > MAX_TASKS:
        raise ArchiveCorrupt(f"archive declares {tasks} tasks, more than the {MAX_TASKS} allowed")
    streams = {name: check_dataset(f, by_name[name], None).shape[0] for name in (RECORDS, MASKS, ARRAYS)}
    for name in (MASK_EXTENT, MASK_CODEC, ARRAY_EXTENT, SHA256):
        check_dataset(f, by_name[name], tasks)
    index = Index(
        tasks=tasks,
        record_extent=f[RECORD_EXTENT][...],
        mask_extent=f[MASK_EXTENT][...],
        mask_codec=f[MASK_CODEC][...],
        array_extent=f[ARRAY_EXTENT][...],
        sha256=f[SHA256][...],
    )
    _check_extents(index.record_extent, streams[RECORDS], MAX_RECORD_BYTES, "task record")
    if streams[RECORDS] > MAX_RECORDS_TOTAL:
        raise ArchiveCorrupt("task records exceed the size limit")
    _check_extents(index.array_extent, streams[ARRAYS], stats_size(spec), "statistics")
    if tasks and (index.array_extent[:, 1] != stats_size(spec)).any():
        raise ArchiveCorrupt(f"per-task statistics must hold {stats_size(spec)} floats")
    for site_index, site in enumerate(sites):
        extents = index.mask_extent[:, site_index]
        for codec in np.unique(index.mask_codec[:, site_index]):
            if versions.CODECS.get(int(codec), version + 1) > version:
                raise ArchiveCorrupt(f"mask codec {codec} does not exist in format version {version}")
            limit = maskcodec.max_encoded_size(int(codec), site.numel)
            chosen = index.mask_codec[:, site_index] == codec
            _check_extents(extents[chosen], streams[MASKS], limit, f"mask {site.name}")
    return index


@dataclass(frozen=True)
class ReservoirInfo:
    tasks: int  # tasks 0..tasks-1 are stored in the Hopfield networks
    explicit_masks: bool  # whether new tasks also keep their masks in tasks/masks


def read_reservoir_info(f: h5py.File, spec: ArchSpec, index: "Index", version: int) -> ReservoirInfo | None:
    if HOPFIELD not in f:
        return None
    if version < versions.HOPFIELD_RESERVOIR:
        raise ArchiveCorrupt(f"format version {version} has no Hopfield reservoir")
    if spec.mask_on != "neurons":
        raise ArchiveCorrupt(f"{spec.name} masks weights, so it cannot have a Hopfield reservoir")
    widths = [site.numel for site in mask_sites(spec)]
    check_dataset(f, Dataset(HOPFIELD_PSI, np.dtype("<f4"), (), 0), sum(d * d for d in widths))
    check_dataset(f, Dataset(HOPFIELD_MU, np.dtype("<f4"), (), 0), sum(widths))
    group = f[HOPFIELD]
    info = ReservoirInfo(read_integer_attr(group, "tasks", HOPFIELD_ATTRS["tasks"]),
                         bool(read_integer_attr(group, "explicit_masks", HOPFIELD_ATTRS["explicit_masks"])))
    if info.tasks > index.tasks:
        raise ArchiveCorrupt(f"the Hopfield reservoir holds {info.tasks} tasks, the archive {index.tasks}")
    dropped = (index.mask_codec == maskcodec.NONE).all(axis=1) if index.tasks else np.zeros(0, bool)
    if (index.mask_codec == maskcodec.NONE).any(axis=1).tolist() != dropped.tolist():
        raise ArchiveCorrupt("a task keeps some of its mask sites but not all")
    if dropped.any() if info.explicit_masks else not dropped.all():
        raise ArchiveCorrupt("tasks' stored masks disagree with the reservoir's explicit_masks attribute")
    return info


def _check_extents(extents: np.ndarray, stream_length: int, max_length: int, what: str) -> None:
    if not extents.size:
        return
    offsets, lengths = extents[..., 0], extents[..., 1]
    if (lengths > max_length).any():
        raise ArchiveCorrupt(f"a {what} declares {int(lengths.max())} bytes, more than the {max_length} allowed")
    # lengths <= max_length and offsets <= stream_length keep the sum far from uint64 overflow
    if (offsets > stream_length).any() or (offsets + lengths > stream_length).any():
        raise ArchiveCorrupt(f"a {what} lies outside the archive's data")


def task_digest(record: bytes, encoded: list[tuple[int, bytes]], stats: np.ndarray) -> bytes:
    """SHA-256 of a task's record, then each site's codec byte and encoded mask, then its statistics."""
    digest = hashlib.sha256(record)
    for codec, data in encoded:
        digest.update(bytes([codec]))
        digest.update(data)
    digest.update(np.asarray(stats, dtype="<f4").tobytes())
    return digest.digest()
