"""benchmark end to end on real MNIST (few steps), the quality gate, and the quickstart example."""

import csv
import json
import os
import subprocess
import sys

import pytest

from supsup_cli.cli import report
from tests.conftest import REPO

METHOD_KEYS = {"gg", "one-shot/entropy", "one-shot/g", "binary/entropy", "binary/g", "upper-bound", "lower-bound"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from supsup_cli.cli.app import run
    import io
    from contextlib import redirect_stdout

    root = tmp_path_factory.mktemp("bench")
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = run(["benchmark", "--tasks", "3", "--steps", "200", "--eval-images", "300", "--json",
                    "--out", str(root / "out"), "--archive", str(root / "kept.supsup")])
    assert code == 0
    return json.loads(stdout.getvalue()), root


@pytest.mark.slow
def test_json_report_has_the_documented_keys(small_run):
    results, root = small_run
    assert set(results["summary"]["avg_accuracy"]) == METHOD_KEYS
    assert set(results["summary"]["task_inference_accuracy"]) == METHOD_KEYS - {"gg", "upper-bound", "lower-bound"}
    assert all(0 <= v <= 1 for v in results["summary"]["avg_accuracy"].values())
    assert results["checkpoints"] == [1, 2, 3] and len(results["matrix"]["gg"]) == 3
    assert results["matrix"]["one-shot/entropy"][0][1:] == [None, None]
    for key in ("train_images_per_second", "masked_to_dense_step_ratio", "inference_images_per_second",
                "peak_memory_mib"):
        assert key in results["speed"]
    assert set(results["speed"]["inference_images_per_second"]) >= {"gg", "one-shot/entropy", "binary/entropy"}
    assert json.loads((root / "out" / "results.json").read_text()) == results
    with open(root / "out" / "matrix.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(METHOD_KEYS) * (1 + 2 + 3)
    assert (root / "out" / "accuracy.png").stat().st_size > 1000


@pytest.mark.slow
def test_supermasks_do_not_forget_and_the_lower_bound_does(small_run):
    results, _ = small_run
    summary = results["summary"]
    assert summary["forgetting"]["gg"] == 0  # masks never change
    assert summary["task_inference_accuracy"]["one-shot/entropy"] >= 0.95
    assert summary["forgetting"]["lower-bound"] > 0.02
    assert summary["avg_accuracy"]["one-shot/entropy"] > summary["avg_accuracy"]["lower-bound"]


@pytest.mark.slow
def test_existing_archive_is_evaluated_without_training_and_gated(small_run, cli):
    results, root = small_run
    again = cli("benchmark", "--archive", root / "kept.supsup", "--no-baselines", "--eval-images", "300",
                "--method", "one-shot", "--objective", "entropy", "--json", "--fail-under", "0.5")
    assert again.code == 0, again.err
    report = again.json()
    assert report["speed"]["train_images_per_second"] is None  # nothing was trained
    assert "benchmark: evaluating after 3 tasks" in again.err  # progress lines where there is no terminal
    assert report["summary"]["avg_accuracy"]["one-shot/entropy"] == results["summary"]["avg_accuracy"]["one-shot/entropy"]
    gated = cli("benchmark", "--archive", root / "kept.supsup", "--no-baselines", "--eval-images", "50",
                "--method", "one-shot", "--objective", "entropy", "--fail-under", "1.01")
    assert gated.code == 15 and "below --fail-under 1.01" in gated.err
    assert "one-shot/entropy" in gated.out  # the table is still printed


def test_speed_suite_reports_rates_per_k(cli, capsys):
    result = cli("benchmark", "--suite", "speed", "--tasks", "12", "--eval-images", "16", "--steps", "6",
                 "--tasks-per-step", "2", "--json")
    assert result.code == 0, result.err
    training = result.json()["training"]  # issue 26: training beside the matrix products its steps need
    assert training["steps"] == 6 and training["tasks_per_step"] == 2
    assert training["how"] in ("one task at a time", "2 tasks per step")
    assert training["seconds_per_task"] == min(training["one_at_a_time_seconds"], training["together_seconds_per_task"])
    assert training["floor_ratio"] == training["seconds_per_task"] / training["matmul_seconds_per_task"] > 0
    rows = result.json()["by_k"]
    assert [r["k"] for r in rows] == [10, 12]
    assert all(r[m] > 0 for r in rows for m in ("gg", "one-shot", "binary", "exhaustive"))
    assert all(r["batch_1"][m] > 0 for r in rows for m in ("one-shot", "binary", "exhaustive"))  # as `supsup infer img`
    assert all(r["gflops"]["contraction"] > 0 and r["gflops"]["matmul"] > 0 for r in rows)
    one = result.json()["infer_one_image_seconds"]
    assert one["k"] == 12 and one["inferred"] > 0 and one["task_given"] > 0  # a real `supsup infer` process
    capsys.readouterr()
    report.show(result.json())
    shown = capsys.readouterr().out
    assert "GFLOP/s" in shown and "supsup infer of one image at k = 12" in shown
    assert "training, 6 steps a task" in shown and "x the floor" in shown


def test_bad_benchmark_arguments(cli):
    assert cli("benchmark", "--suite", "cifar").code == 2
    assert cli("benchmark", "--suite", "split-mnist", "--tasks", "6").code == 2
    assert cli("benchmark", "--method", "gradient", "--tasks", "1").code == 2


def test_quickstart_example_runs(tmp_path):
    env = {**os.environ, "STEPS": "30", "WORK": str(tmp_path), "SUPSUP": f"{sys.executable} -m supsup_cli",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", str(REPO / "examples" / "quickstart.sh")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "mnist-permute-3" in done.stdout and (tmp_path / "images" / "task2" / "labels.csv").exists()


def test_speed_suite_needs_a_task_count(cli):
    assert cli("benchmark", "--suite", "speed", "--tasks", "0").code == 2


def test_rotated_mnist_is_evaluated_where_the_paper_code_evaluates_and_compared_by_the_mean():
    from types import SimpleNamespace

    from supsup_cli.benchmark import experiment
    from supsup_cli.benchmark.config import BenchmarkConfig, checkpoints

    rows = checkpoints(36, "rotated-mnist")
    assert rows == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 35, 36]
    assert checkpoints(36, "permuted-mnist") == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 25, 36]
    curve = [1.0 - c / 1000 for c in rows]  # accuracy falling with the tasks learned
    run = SimpleNamespace(spec=SimpleNamespace(name="fc1024-1024", output_size=200), steps=1000,
                          rows=SimpleNamespace(by_checkpoint=lambda protocol: {"binary/entropy": curve, "gg": curve}))
    config = BenchmarkConfig(suite="rotated-mnist", arch="fc1024-1024")
    average = experiment._paper_average(config, run, rows, "per-image")
    at = (2, 5, 10, 15, 20, 25, 30, 35, 36)
    assert average["checkpoints"] == list(at) and average["paper"]["binary/entropy"] == 0.9613
    assert average["ours"] == {"binary/entropy": pytest.approx(sum(1.0 - c / 1000 for c in at) / len(at))}
    assert experiment._paper_average(config, run, rows[:-1], "per-image") is None  # a run cut short: no mean
