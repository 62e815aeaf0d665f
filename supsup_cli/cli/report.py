"""Benchmark results for people: a table, a speed section, and the files of --out."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from supsup_cli.cli import output
from supsup_cli.paper import SPLIT_CIFAR100_GG

SHOWN_CHECKPOINTS = 6


def show(results: dict[str, Any]) -> None:
    if results.get("suite") == "speed":
        _show_speed_suite(results)
        return
    rows = results["checkpoints"][-SHOWN_CHECKPOINTS:]
    positions = [results["checkpoints"].index(c) for c in rows]
    summary = results["summary"]
    table = []
    for method, means in results["by_checkpoint"].items():
        cells = [_percent(means[p]) + _paper(results, c, method) for p, c in zip(positions, rows)]
        table.append([method, *cells, _percent(summary["task_inference_accuracy"].get(method)),
                      _percent(summary["forgetting"][method]), _percent(summary["backward_transfer"][method])])
    output.emit_table(["method", *[f"after {c}" for c in rows], "task inf.", "forgetting", "BWT"], table,
                      title=f"{results['suite']}, {results['arch']} (s={results['output_size']}), "
                            f"{results['steps']} steps a task, "
                            f"{results['eval_images'] or 'all'} test images a task; "
                            "accuracy %, paper in brackets")
    if "hopfield" in summary:
        hop = summary["hopfield"]
        output.emit_fields([
            ("Hopfield: accuracy, recovered masks", _percent(hop["avg_recovered_accuracy"])),
            ("Hopfield: accuracy, explicit masks", _percent(hop["avg_explicit_accuracy"])),
            ("Hopfield: masks recovered exactly", f"{hop['exact_recoveries']} of {len(hop['tasks'])}"),
        ])
    if "masks_allocated" in summary:
        output.emit_fields([
            ("NNs: masks allocated", summary["masks_allocated"]),
            ("NNs: task -> mask", " ".join(f"{t}->{m}" for t, m in enumerate(summary["task_to_mask"]))),
            ("NNs: one mask per task", summary["one_mask_per_task"]),
        ])
    if "storage" in summary:
        storage = summary["storage"]
        output.emit_fields([
            ("bytes per task", _number(storage["bytes_per_task"])),
            ("mask bytes per task", f"{_number(storage['mask_bytes_per_task'])} "
                                    f"({_number(storage['bits_per_weight'], 3)} bits per weight)"),
            ("dense fp32 model per task", _number(storage["dense_fp32_bytes_per_task"])),
        ])
    if results["suite"] == "split-cifar100":
        output.emit_table(["paper, Table 2", "accuracy %", "bytes for 20 tasks"],
                          [[name, f"{value:.2f}", size] for name, rows in SPLIT_CIFAR100_GG.items() for value, size in rows])
    speed = results["speed"]
    output.emit_fields([
        ("training images/s", _number(speed["train_images_per_second"])),
        ("seconds per task", _number(speed["train_seconds_per_task"], 2)),
        ("masked / dense step", f"{speed['masked_step_ms']:.2f} ms / {speed['dense_step_ms']:.2f} ms "
                                f"= {speed['masked_to_dense_step_ratio']:.3f}"),
        *[(f"inference images/s, {name}", _number(rate))
          for name, rate in speed["inference_images_per_second"].items()],
        ("inference at k", speed["inference_tasks"]),
        ("peak memory", f"{speed['peak_memory_mib']:.0f} MiB"),
    ])


def _show_speed_suite(results: dict[str, Any]) -> None:
    columns = ["k", "gg", "one-shot", "binary", "exhaustive", "peak MiB"]
    output.emit_table(columns, [[row["k"], *[_number(row[c]) for c in columns[1:5]], _number(row["peak_memory_mib"])]
                                for row in results["by_k"]],
                      title=f"inference images/s, {results['arch']}, {results['images']} images, each on its own")


def write_files(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, matrix.csv and (with matplotlib) accuracy.png; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    if "matrix" in results:
        written.append(out / "matrix.csv")
        with open(written[-1], "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["method", "after_tasks", "task", "accuracy"])
            for method, matrix in results["matrix"].items():
                for checkpoint, row in zip(results["checkpoints"], matrix):
                    writer.writerows([method, checkpoint, task, value]
                                     for task, value in enumerate(row) if value is not None)
        plotted = _plot(results, out / "accuracy.png")
        if plotted:
            written.append(plotted)
    return written


def _plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        output.note("supsup: note: matplotlib is not installed, so no accuracy.png (pip install 'supsup[plot]')")
        return None
    curves = results["summary"].get("hopfield", {}).get("tasks")
    figure, panels = plt.subplots(1, 2 if curves else 1, figsize=(12 if curves else 7, 4.5), squeeze=False)
    axes = panels[0][0]
    for method, means in results["by_checkpoint"].items():
        axes.plot(results["checkpoints"], [float("nan") if m is None else 100 * m for m in means], marker="o",
                  label=method)
    axes.set_xlabel("tasks learned")
    axes.set_ylabel("average accuracy over learned tasks (%)")
    axes.set_title(f"{results['suite']}, {results['arch']}")
    if len(results["checkpoints"]) > 1 and results["checkpoints"][-1] >= 100:
        axes.set_xscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    if curves:
        recovery = panels[0][1]
        for task in curves:
            recovery.plot(range(1, len(task["curve"]) + 1), [step[task["task"]] for step in task["curve"]],
                          label=f"task {task['task']}")
        recovery.set_xlabel("Hopfield recovery step")
        recovery.set_ylabel("Hamming distance to the task's stored mask")
        recovery.set_title("recovery (paper, Figure 7)")
        recovery.grid(alpha=0.3)
        recovery.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _paper(results: dict[str, Any], checkpoint: int, method: str) -> str:
    value = results["paper"].get(str(checkpoint), {}).get(method)
    return "" if value is None else f" ({100 * value:.2f})"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
