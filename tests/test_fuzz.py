"""Hostile files: the archive reader and the image reader end in a documented error, quickly, in bounded memory.

Several thousand generated cases (hypothesis) plus one crafted file per validation rule.
"""

import io
import random
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from supsup_cli import archive
from supsup_cli.archive import header, layout
from supsup_cli.data.images import read_inputs
from supsup_cli.core.errors import ArchiveCorrupt, BadInput, NotAnArchive, SupsupError, VersionTooNew
from tests.conftest import REPO, append_random_tasks

VALID = (REPO / "tests" / "data" / "archives" / "v1" / "lenet-2tasks.supsup").read_bytes()
def fuzz(examples: int) -> settings:
    """Generated cases, each given at most 20 s (a hang fails the test; 2 s failed on a loaded 2-core
    machine, where a case that takes 50 ms alone was slowed 40-fold), fixtures shared across cases."""
    return settings(max_examples=examples, deadline=20_000, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OPEN_ERRORS = (NotAnArchive, ArchiveCorrupt, VersionTooNew)


def _open(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzzed.supsup"
    path.write_bytes(raw)
    with archive.Archive(path) as opened:
        opened.packed_masks()  # a file that opens must also give its masks


def _resealed(raw: bytearray) -> bytes:
    raw[: header.SIZE] = header.sealed(raw)
    return bytes(raw)


# --- generated archives ------------------------------------------------------------------------------

@fuzz(400)
@given(data=st.binary(max_size=4096), magic=st.booleans())
def test_random_bytes(tmp_path, data, magic):
    with pytest.raises(OPEN_ERRORS):
        _open(tmp_path, (header.MAGIC if magic else b"") + data)


@fuzz(300)
@given(cut=st.integers(0, len(VALID) - 1))
def test_truncated_archives(tmp_path, cut):
    with pytest.raises(OPEN_ERRORS):
        _open(tmp_path, VALID[:cut])


@fuzz(500)
@given(flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)), min_size=1, max_size=4))
def test_every_bit_flip_is_detected(tmp_path, flips):
    raw = bytearray(VALID)
    for position, bit in flips:
        raw[position] ^= 1 << bit
    if bytes(raw) == VALID:  # two flips of the same bit cancel out
        return
    with pytest.raises(OPEN_ERRORS):
        _open(tmp_path, bytes(raw))


def _metadata_position(rng: random.Random) -> int:
    """Somewhere in HDF5's own structures (the start and end of the file), not in mask payload."""
    return rng.choice([rng.randrange(header.SIZE, 12_000), rng.randrange(len(VALID) - 30_000, len(VALID))])


@fuzz(1200)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 6))
def test_crafted_archives_with_valid_checksums(tmp_path, seed, count):
    """Damage that the header's digest cannot see because the file was resealed: HDF5 parses it."""
    rng = random.Random(seed)
    raw = bytearray(VALID)
    for _ in range(count):
        raw[_metadata_position(rng)] ^= 1 << rng.randrange(8)
    try:
        _open(tmp_path, _resealed(raw))
    except SupsupError:
        pass  # any documented error is fine; a crash, a hang or another exception is not


# --- one crafted file per validation rule ------------------------------------------------------------

@pytest.fixture
def crafted(tmp_path):
    """A valid two-task archive that a test changes with h5py, then reseals."""
    path = tmp_path / "crafted.supsup"
    path.write_bytes(VALID)
    append_random_tasks(path, 1, start_seed=2)  # now version 2, with the writer's own layout

    def finish(change):
        with h5py.File(path, "r+") as f:
            change(f)
        header.seal(path)
        return path

    return finish


def _replace(f, name, **kwargs):
    del f[name]
    f.create_dataset(name, **kwargs)


@pytest.mark.parametrize("change, message", [
    (lambda f: _replace(f, layout.RECORD_EXTENT, shape=(2**40, 2), maxshape=(None, 2), chunks=(256, 2), dtype="<u8"),
     "declares"),
    (lambda f: _replace(f, layout.MASKS, data=np.zeros(10, np.float32)), "has dtype"),
    (lambda f: _replace(f, layout.MASKS, data=np.zeros(100, np.uint8), compression="gzip"), "filter"),
    (lambda f: f.attrs.__setitem__("format", "supsup"), "not a fixed-length string"),
    (lambda f: layout.write_string_attr(f, "writer", "x" * 20_000), "too large"),
    (lambda f: f.create_group("extra"), "holds"),
    (lambda f: layout.write_string_attr(f, "format", "sapsup"), "is not 'supsup'"),
    (lambda f: f.attrs.create("seed", 0, dtype="<i8"), "seed"),
    (lambda f: f[layout.MASK_EXTENT].__setitem__((0, 0, 1), 10**6), "declares 1000000 bytes"),
    (lambda f: f[layout.MASK_CODEC].__setitem__((0, 0), 9), "codec 9 does not exist"),
    (lambda f: f[layout.RECORDS].__setitem__(slice(0, 1), np.frombuffer(b"[", np.uint8)), "task record"),
    (lambda f: layout.write_string_attr(f, "arch", '{"name": "lenet300-100", "output_size": 7}'), "differs"),
])
def test_each_validation_rule_refuses_its_crafted_file(crafted, change, message):
    with pytest.raises(ArchiveCorrupt, match=message):
        archive.Archive(crafted(change))


def test_a_virtual_dataset_is_refused(crafted, tmp_path):
    elsewhere = tmp_path / "elsewhere.h5"
    with h5py.File(elsewhere, "w") as f:
        f["data"] = np.zeros(10, np.uint8)

    def make_virtual(f):
        layout_ = h5py.VirtualLayout(shape=(10,), dtype="u1")
        layout_[:] = h5py.VirtualSource(str(elsewhere), "data", shape=(10,))
        del f[layout.MASKS]
        f.create_virtual_dataset(layout.MASKS, layout_)

    with pytest.raises(ArchiveCorrupt, match="outside the archive"):
        archive.Archive(crafted(make_virtual))


def test_another_programs_hdf5_with_a_forged_header(tmp_path):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", userblock_size=header.SIZE) as f:
        f["images"] = np.zeros((5, 5))
    path = tmp_path / "forged.supsup"
    path.write_bytes(_resealed(bytearray(buffer.getvalue())))
    with pytest.raises(ArchiveCorrupt):
        archive.Archive(path)


def test_huge_declared_shape_fails_fast_in_bounded_memory(crafted):
    path = crafted(lambda f: _replace(f, layout.MASKS, shape=(2**50,), maxshape=(None,), chunks=(65536,),
                                      dtype="u1"))
    limit = 1_500_000_000  # address space for a process that never imports torch

    def bounded():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "supsup_cli", "inspect", str(path)], capture_output=True, text=True,
                          timeout=60, preexec_fn=bounded, cwd=REPO)
    assert done.returncode == 5 and len(done.stderr.strip().splitlines()) == 1 and "declares" in done.stderr


# --- images and arrays -------------------------------------------------------------------------------

def _png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _valid_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(784, dtype=np.uint8).reshape(28, 28)).save(buffer, format="PNG")
    return buffer.getvalue()


def _read(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    (result,) = read_inputs([path], (1, 28, 28))
    return result


def _assert_read_or_refused(result):
    if result.error is None:
        assert result.pixels.shape == (1, 28, 28) and result.pixels.dtype == np.float32
    else:
        assert isinstance(result.error, BadInput)


@fuzz(400)
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".npy"]))
def test_random_bytes_as_inputs(tmp_path, data, suffix):
    if suffix == ".npy":
        results = read_inputs([_write(tmp_path, "x.npy", data)], (1, 28, 28))
        assert all(isinstance(r.error, BadInput) or r.pixels.shape == (1, 28, 28) for r in results)
    else:
        assert isinstance(_read(tmp_path, "x" + suffix, data).error, BadInput)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


PNG = _valid_png()


@fuzz(1000)
@given(flips=st.lists(st.tuples(st.integers(0, len(PNG) - 1), st.integers(0, 255)), max_size=6),
       cut=st.integers(1, len(PNG)))
def test_damaged_pngs(tmp_path, flips, cut):
    raw = bytearray(PNG[:cut])
    for position, value in flips:
        if position < len(raw):
            raw[position] = value
    _assert_read_or_refused(_read(tmp_path, "d.png", bytes(raw)))


def test_png_that_lies_about_its_size(tmp_path):
    huge = _read(tmp_path, "huge.png", _png(100_000, 100_000, zlib.compress(bytes(1000))))
    assert isinstance(huge.error, BadInput)
    short = _read(tmp_path, "short.png", _png(28, 28, zlib.compress(bytes(100))))
    assert isinstance(short.error, BadInput) and "decode" in str(short.error)
    wide = _read(tmp_path, "wide.png", _png(5000, 4000, zlib.compress(bytes(10))))
    assert isinstance(wide.error, BadInput) and "5000x4000" in str(wide.error)


def test_decompression_bombs_are_bounded(tmp_path):
    bomb = zlib.compress(bytes(200 * 2**20), 9)  # 200 MiB of zeros in 200 KB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _assert_read_or_refused(_read(tmp_path, "idat.png", _png(28, 28, bomb)))
    text = _read(tmp_path, "ztxt.png", _png(28, 28, zlib.compress(bytes(29 * 28)), _chunk(b"zTXt", b"k\0\0" + bomb)))
    assert isinstance(text.error, BadInput)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: far below 200 MiB


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _npy(header_dict: str, payload: bytes = b"") -> bytes:
    text = header_dict.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


@pytest.mark.parametrize("content, message", [
    (_npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 784), }"), "rows"),
    (_npy("{'descr': '|O', 'fortran_order': False, 'shape': (1, 784), }"), "dtype"),
    (_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 784), }", b"\0" * 100), "valid .npy"),
    (_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 27, 28), }"), "shape"),
    (b"\x93NUMPY\x01\x00\xff\xff{", "valid .npy"),
])
def test_crafted_npy_files(tmp_path, content, message):
    (result,) = read_inputs([_write(tmp_path, "c.npy", content)], (1, 28, 28))
    assert isinstance(result.error, BadInput) and message in str(result.error)


@fuzz(300)
@given(rows=st.integers(0, 3), cut=st.integers(0, 3200), flip=st.integers(0, 3199))
def test_damaged_npy_files(tmp_path, rows, cut, flip):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((max(rows, 1), 784), np.uint8))
    raw = bytearray(buffer.getvalue()[:cut])
    if flip < len(raw):
        raw[flip] ^= 0x41
    for result in read_inputs([_write(tmp_path, "n.npy", bytes(raw))], (1, 28, 28)):
        _assert_read_or_refused(result)
