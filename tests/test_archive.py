import subprocess
import sys

import h5py
import numpy as np
import pytest

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.archive import maskcodec
from supsup_cli.archive import header, layout
from supsup_cli.core.errors import ArchiveCorrupt, DuplicateTask
from tests.conftest import append_random_tasks, dummy_record, random_masks


def test_append_and_read_back_bit_exact(lenet_archive):
    added = append_random_tasks(lenet_archive, 3)
    with archive.Archive(lenet_archive) as opened:
        assert [t.name for t in opened.tasks] == ["task-0", "task-1", "task-2"]
        stacked = opened.packed_masks()
        for task, masks in enumerate(added):
            for site, (bits, packed) in enumerate(zip(masks, opened.packed_mask(task))):
                assert np.array_equal(maskcodec.unpack(packed, bits.size), bits.reshape(-1))
                assert np.array_equal(stacked[site][task], packed)


def test_duplicate_task_names_are_refused(lenet_archive):
    append_random_tasks(lenet_archive, 1)
    spec = registry.resolve("lenet300-100")
    masks = random_masks(spec, 9)
    before = lenet_archive.read_bytes()
    with pytest.raises(DuplicateTask):
        archive.append_task(lenet_archive, dummy_record("task-0", spec, masks), masks)
    assert lenet_archive.read_bytes() == before


def test_task_lookup_by_index_and_name(lenet_archive, cli):
    append_random_tasks(lenet_archive, 2)
    with archive.Archive(lenet_archive) as opened:
        assert opened.task_index("1") == 1 and opened.task_index("task-0") == 0


def test_inspect_json_has_the_documented_keys(lenet_archive, cli):
    append_random_tasks(lenet_archive, 2)
    result = cli("inspect", lenet_archive, "--json")
    assert result.code == 0
    report = result.json()
    for key in ("format_version", "arch", "seed", "weights_sha256", "tasks"):
        assert key in report
    assert report["arch"]["name"] == "lenet300-100"
    assert [(t["index"], t["name"]) for t in report["tasks"]] == [(0, "task-0"), (1, "task-1")]


def test_init_then_inspect_in_fresh_processes(tmp_path):
    from tests.conftest import supsup_subprocess

    path = tmp_path / "m.supsup"
    assert supsup_subprocess("init", path, "--arch", "lenet300-100", "--seed", "0").returncode == 0
    report = supsup_subprocess("inspect", path, "--json")
    assert report.returncode == 0 and '"weights_sha256":"cb8f5daf' in report.stdout


# --- bad input: one line on stderr, a documented exit code, no traceback ---------------------------

def _assert_one_line_error(result, code, *fragments):
    assert result.code == code, result.err
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("supsup: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_file(cli, tmp_path):
    _assert_one_line_error(cli("inspect", tmp_path / "nope.supsup"), 3, "nope.supsup", "no such file")


def test_file_that_is_not_hdf5(cli, tmp_path):
    path = tmp_path / "notes.supsup"
    path.write_text("hello, I am a text file\n" * 100)
    _assert_one_line_error(cli("inspect", path), 4, "notes.supsup", "not a supsup archive")


def test_hdf5_file_of_another_program(cli, tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(10)
    _assert_one_line_error(cli("inspect", path), 4, "HDF5 file, but not a supsup archive")


def test_truncated_archive(cli, lenet_archive):
    append_random_tasks(lenet_archive, 2)
    data = lenet_archive.read_bytes()
    lenet_archive.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(cli("inspect", lenet_archive), 5, "truncated")


def test_bit_flip_is_detected_before_hdf5_reads_it(cli, lenet_archive):
    append_random_tasks(lenet_archive, 2)
    data = bytearray(lenet_archive.read_bytes())
    data[len(data) // 2] ^= 0x10
    lenet_archive.write_bytes(bytes(data))
    _assert_one_line_error(cli("inspect", lenet_archive), 5, "checksum")


def test_newer_format_version_names_both_versions(cli, lenet_archive):
    with open(lenet_archive, "rb") as handle:
        parsed = header.read_header(handle, lenet_archive)
    newer = header.Header(header.FORMAT_VERSION + 1, parsed.file_length, parsed.content_sha256)
    with open(lenet_archive, "r+b") as handle:
        handle.write(newer.to_bytes())
    _assert_one_line_error(cli("inspect", lenet_archive), 6, f"version {header.FORMAT_VERSION + 1}",
                           f"version {header.FORMAT_VERSION})")


def test_weights_hash_mismatch_fails_loudly(cli, lenet_archive):
    with h5py.File(lenet_archive, "r+") as f:
        layout.write_string_attr(f, "weights_sha256", "0" * 64)
    header.seal(lenet_archive)
    _assert_one_line_error(cli("inspect", lenet_archive), 7, "do not match")


def test_init_refuses_to_overwrite(cli, lenet_archive):
    before = lenet_archive.read_bytes()
    _assert_one_line_error(cli("init", lenet_archive, "--arch", "lenet300-100"), 12, "--force")
    assert lenet_archive.read_bytes() == before
    assert cli("init", lenet_archive, "--arch", "fc1024-1024", "--force").code == 0


def test_external_link_is_refused(lenet_archive, tmp_path):
    with h5py.File(lenet_archive, "r+") as f:
        del f["tasks/arrays"]
        f["tasks/arrays"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/x")
    header.seal(lenet_archive)
    with pytest.raises(ArchiveCorrupt, match="link"):
        archive.Archive(lenet_archive)


def test_extents_outside_the_data_are_refused_before_reading(lenet_archive):
    append_random_tasks(lenet_archive, 1)
    with h5py.File(lenet_archive, "r+") as f:
        f[layout.MASK_EXTENT][0, 0, 0] = 2**62
    header.seal(lenet_archive)
    with pytest.raises(ArchiveCorrupt, match="outside"):
        archive.Archive(lenet_archive)


# --- writers: the lock, and kill -9 in the middle of an append ------------------------------------

def test_second_writer_waits_then_fails_with_a_clear_message(lenet_archive, tmp_path):
    from tests.conftest import supsup_subprocess

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import filelock, sys, time; l = filelock.FileLock(sys.argv[1]); l.acquire(); print('held', flush=True);"
         "time.sleep(30)", f"{lenet_archive}.lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = lenet_archive.read_bytes()
        result = supsup_subprocess("init", lenet_archive, "--arch", "lenet300-100", "--force",
                                   env={"SUPSUP_LOCK_TIMEOUT": "1"})
        assert result.returncode == 8
        assert "another supsup process is writing" in result.stderr and "Traceback" not in result.stderr
        assert lenet_archive.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


def test_writes_keep_permissions_and_spare_other_archives_temp_files(lenet_archive):
    lenet_archive.chmod(0o600)
    neighbour = lenet_archive.with_name(f".{lenet_archive.name}.old.123.tmp")  # another archive's leftover
    neighbour.write_bytes(b"not ours")
    append_random_tasks(lenet_archive, 1)
    assert (lenet_archive.stat().st_mode & 0o777) == 0o600
    assert neighbour.exists()


def test_odd_task_references_and_settings_are_clean_errors(cli, lenet_archive, monkeypatch):
    append_random_tasks(lenet_archive, 1)
    with archive.Archive(lenet_archive) as opened:
        with pytest.raises(Exception, match="no task named"):
            opened.task_index("²")
    monkeypatch.setenv("SUPSUP_LOCK_TIMEOUT", "soon")
    result = cli("init", lenet_archive, "--arch", "lenet300-100", "--force")
    assert result.code == 2 and "SUPSUP_LOCK_TIMEOUT" in result.err


def test_records_must_fit_the_network(lenet_archive):
    spec = registry.resolve("lenet300-100")
    masks = random_masks(spec, 0)
    record = dummy_record("wide", spec, masks)
    from dataclasses import replace

    with pytest.raises(ArchiveCorrupt, match="needs 101 outputs"):  # refused before anything is written
        archive.append_task(lenet_archive, replace(record, classes=tuple(range(101))), masks)
    with pytest.raises(ArchiveCorrupt, match="normalizes 3 channels"):
        archive.append_task(lenet_archive, replace(record, mean=(0.5,) * 3, std=(0.2,) * 3), masks)
    with archive.Archive(lenet_archive) as opened:
        assert opened.tasks == []
