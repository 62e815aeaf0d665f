"""A benchmark's report files are written whole or not at all, and the leftovers of a killed writer
are removed by the next one, while a running writer's are left alone."""

import os
import subprocess

import pytest

from supsup_cli.core import files


def test_the_next_writer_removes_a_dead_writers_temporary_and_keeps_a_running_ones(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".results.json.{dead.pid}.tmp"
    running = tmp_path / f".results.json.{os.getppid()}.tmp"
    for leftover in (stale, running):
        leftover.write_text('{"half": ')
    files.write_text(tmp_path / "results.json", '{"whole": true}\n')
    assert (tmp_path / "results.json").read_text() == '{"whole": true}\n'
    assert not stale.exists() and running.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["results.json", running.name])


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "matrix.csv"
    path.write_text("old\n")

    def fail_halfway(handle):
        handle.write("new, half")
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        files.write_with(path, fail_halfway)
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]
