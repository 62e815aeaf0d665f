"""inspect --verify: every checksum, and the damaged tasks by name."""

import h5py
import numpy as np

from supsup_cli.archive import layout
from tests.conftest import append_random_tasks


def _flip_inside_task(path, task):
    """Flip one byte of a task's stored mask, found by its bytes in the file."""
    with h5py.File(path, "r") as f:
        offset, _ = f[layout.MASK_EXTENT][task, 0]
        needle = f[layout.MASKS][offset + 1000 : offset + 1040].tobytes()
    raw = bytearray(path.read_bytes())
    position = raw.find(needle)
    assert position > 0 and raw.find(needle, position + 1) == -1
    raw[position + 7] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_verify_of_an_intact_archive(cli, lenet_archive):
    append_random_tasks(lenet_archive, 3)
    result = cli("inspect", "--verify", lenet_archive, "--json")
    assert result.code == 0
    report = result.json()
    assert report["ok"] and report["damaged"] == [] and len(report["tasks"]) == 3
    assert report["content_sha256_ok"] and report["weights_sha256_ok"] and report["structure_ok"]


def test_verify_names_the_damaged_task(cli, lenet_archive):
    append_random_tasks(lenet_archive, 3)
    _flip_inside_task(lenet_archive, 1)
    plain = cli("inspect", lenet_archive)
    assert plain.code == 5 and "inspect --verify" in plain.err
    result = cli("inspect", "--verify", lenet_archive, "--json")
    assert result.code == 5
    report = result.json()
    assert not report["content_sha256_ok"] and report["damaged"] == [1]
    assert [t["name"] for t in report["tasks"] if not t["ok"]] == ["task-1"]
    assert result.err.strip() == f"supsup: error: {lenet_archive}: damaged archive: tasks 1 fail their checksums"


def test_verify_when_the_structure_itself_is_damaged(cli, lenet_archive):
    append_random_tasks(lenet_archive, 1)
    raw = bytearray(lenet_archive.read_bytes())
    raw[520:600] = bytes(80)  # the HDF5 superblock
    lenet_archive.write_bytes(bytes(raw))
    result = cli("inspect", "--verify", lenet_archive, "--json")
    assert result.code == 5
    report = result.json()
    assert not report["structure_ok"] and "cannot be checked one by one" in report["problem"]
    assert np.isscalar(report["content_sha256_ok"]) and report["content_sha256_ok"] is False
