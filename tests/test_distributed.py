"""Beyond one process: torchrun data parallelism, tasks trained apart and merged."""

import json
import os
import socket
import subprocess
import sys

import pytest

from supsup_cli import archive
from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_torchrun_with_two_ranks_matches_one_process(cli, tmp_path):
    single, parallel = tmp_path / "single.supsup", tmp_path / "parallel.supsup"
    for path in (single, parallel):
        assert cli("init", path, "--arch", "lenet300-100").code == 0
    alone = cli("learn-task", single, "--permute", "3", "--steps", "300", "--json").json()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                           "-m", "supsup_cli", "learn-task", str(parallel), "--permute", "3", "--steps", "300",
                           "--json"], capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone reports and commits
    assert lines[0]["ranks"] == 2
    assert abs(lines[0]["test_accuracy"] - alone["test_accuracy"]) <= 0.01
    with archive.Archive(parallel) as opened:
        assert len(opened.tasks) == 1 and opened.tasks[0].training["ranks"] == 2


def test_tasks_trained_in_two_processes_merge_and_are_found(cli, tmp_path):
    parts = [tmp_path / f"part-{i}.supsup" for i in range(2)]
    for part in parts:
        assert cli("init", part, "--arch", "lenet300-100").code == 0
    env = {"OMP_NUM_THREADS": "1"}
    children = [subprocess.Popen([sys.executable, "-m", "supsup_cli", "learn-task", str(part), "--permute", str(i + 1),
                                  "--steps", "150"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for i, part in enumerate(parts)]
    assert [child.wait(300) for child in children] == [0, 0]
    merged = tmp_path / "all.supsup"
    result = cli("merge", merged, *parts, "--json")
    assert result.code == 0 and result.json()["tasks"] == 2
    for i in range(2):
        assert cli("data", "export", "--permute", str(i + 1), "-n", "40", "--out", tmp_path / f"x{i}").code == 0
    rows = cli("infer", merged, tmp_path / "x0", tmp_path / "x1", "--json").json_lines()
    found = [sum(r["task"] == i for r in rows if f"/x{i}/" in r["input"]) for i in range(2)]
    assert found[0] >= 38 and found[1] >= 38


def test_merge_refuses_other_networks_and_duplicates(cli, lenet_archive, tmp_path):
    other = tmp_path / "other.supsup"
    assert cli("init", other, "--arch", "lenet300-100", "--seed", "1").code == 0
    result = cli("merge", tmp_path / "out.supsup", lenet_archive, other)
    assert result.code == 2 and "seed 1 vs 0" in result.err and not (tmp_path / "out.supsup").exists()
    assert cli("learn-task", lenet_archive, "--steps", "2").code == 0
    twice = cli("merge", tmp_path / "out.supsup", lenet_archive, lenet_archive)
    assert twice.code == 12 and "--on-duplicate" in twice.err
    renamed = cli("merge", tmp_path / "out.supsup", lenet_archive, lenet_archive, "--on-duplicate", "rename", "--json")
    assert renamed.code == 0 and renamed.json()["inputs"][1]["renamed"] == [["mnist", "mnist-2"]]
    assert cli("merge", tmp_path / "out.supsup", lenet_archive).code == 12  # exists: --force to overwrite


def test_parallel_example_runs(tmp_path):
    env = {**os.environ, "N": "2", "JOBS": "2", "STEPS": "20", "WORK": str(tmp_path),
           "SUPSUP": f"{sys.executable} -m supsup_cli", "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", str(REPO / "examples" / "parallel-tasks.sh")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "mnist-permute-0" in done.stdout and "mnist-permute-1" in done.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_and_inference_agree_with_the_cpu(cli, tmp_path):
    path = tmp_path / "gpu.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    for permute in (1, 2):
        trained = cli("learn-task", path, "--permute", str(permute), "--device", "cuda", "--json")
        assert trained.code == 0 and trained.json()["test_accuracy"] >= 0.93
    assert cli("data", "export", "--permute", "2", "-n", "200", "--out", tmp_path / "x").code == 0
    on_gpu = cli("infer", path, tmp_path / "x", "--device", "cuda", "--json").json_lines()
    on_cpu = cli("infer", path, tmp_path / "x", "--device", "cpu", "--json").json_lines()
    agree = sum(a["task"] == b["task"] and a["class"] == b["class"] for a, b in zip(on_gpu, on_cpu))
    assert agree >= 198 and sum(r["task"] == 1 for r in on_gpu) >= 195




def test_renamed_duplicates_stay_valid_names(cli, tmp_path):
    path = tmp_path / "long.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    long_name = "x" * 200
    assert cli("learn-task", path, "--steps", "2", "--name", long_name).code == 0
    result = cli("merge", tmp_path / "out.supsup", path, path, "--on-duplicate", "rename", "--json")
    assert result.code == 0, result.err
    renamed = result.json()["inputs"][1]["renamed"][0][1]
    assert len(renamed) == 200 and renamed.endswith("-2")
    assert cli("inspect", tmp_path / "out.supsup").code == 0


@pytest.mark.slow
def test_torchrun_auto_commits_once_from_rank_0(cli, tmp_path):
    path = tmp_path / "auto.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                           "-m", "supsup_cli", "learn-task", str(path), "--permute", "3", "--steps", "150", "--auto",
                           "--json"], capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["ranks"] == 2 and lines[0]["allocated"] == [0]
    with archive.Archive(path) as opened:
        assert [t.name for t in opened.tasks] == ["auto-0"]  # not one task per rank
