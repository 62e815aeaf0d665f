"""Benchmark results for people: a table, a speed section, and the files of --out."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from supsup_cli.core import files
from supsup_cli.cli import output
from supsup_cli.benchmark.paper import SPLIT_CIFAR100_GG

SHOWN_CHECKPOINTS = 6


def show(results: dict[str, Any]) -> None:
    if results.get("suite") == "speed":
        _show_speed_suite(results)
        return
    recipe = results.get("recipe")
    if recipe:
        length = f"{recipe['epochs']} epochs ({recipe['steps']} steps)" if recipe["epochs"] else f"{recipe['steps']} steps"
        split = f"; classes split by seed {recipe['split_seed']}" if recipe["split_seed"] is not None else ""
        output.emit_line(f"recipe: {length} of {recipe['batch_size']}, {recipe['optimizer']} at {recipe['lr']:g} "
                         f"(weight decay {recipe['weight_decay']:g}, {recipe['schedule']} schedule), masks "
                         f"{recipe['masks']}, augmentation {recipe['augmentation']}{split}")
    rows = results["checkpoints"][-SHOWN_CHECKPOINTS:]
    positions = [results["checkpoints"].index(c) for c in rows]
    summary = results["summary"]
    protocols = results.get("protocols", ["per-image"])
    for protocol in protocols:
        _show_protocol(results, protocol, rows, positions)
    if "paper" not in protocols and results["paper"]:
        output.emit_line("(the paper's figures are comparable with --protocol paper, which prints them beside its own)")
    average = results.get("paper_average")
    if average:
        at = ", ".join(map(str, average["checkpoints"]))
        for method, ours in average["ours"].items():
            output.emit_line(f"mean after {at} tasks, {method}: {_percent(ours)} (paper {_percent(average['paper'][method])})")
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
        if storage.get("baseline_bytes"):
            tasks, accuracy = results["checkpoints"][-1], summary["avg_accuracy"]
            output.emit_table(["this run", f"bytes for {tasks} tasks", "accuracy %"],
                              [["supsup (gg)", _number(storage["bytes_per_task"] * tasks), _percent(accuracy.get("gg"))]] +
                              [[name, _number(size), _percent(accuracy.get(name))]
                               for name, size in storage["baseline_bytes"].items()])
    if results["suite"] == "split-cifar100":
        output.emit_table(["paper, Table 2", "accuracy %", "bytes for 20 tasks"],
                          [[name, f"{value:.2f}", size] for name, rows in SPLIT_CIFAR100_GG.items() for value, size in rows])
    speed = results["speed"]
    output.emit_fields([
        ("training images/s", _number(speed["train_images_per_second"])),
        ("seconds per task", _number(speed["train_seconds_per_task"], 2)),
        ("masked / dense step", "- (a module of one's own has no dense yardstick)" if speed["dense_step_ms"] is None
         else f"{speed['masked_step_ms']:.2f} ms / {speed['dense_step_ms']:.2f} ms "
              f"= {speed['masked_to_dense_step_ratio']:.3f}"),
        *[(f"inference images/s, {name}", _number(rate))
          for name, rate in speed["inference_images_per_second"].items()],
        ("inference at k", speed["inference_tasks"]),
        ("peak memory", f"{speed['peak_memory_mib']:.0f} MiB"),
    ])


def _show_protocol(results: dict[str, Any], protocol: str, rows: list[int], positions: list[int]) -> None:
    summary = results["summary"]
    main = protocol == results.get("protocols", ["per-image"])[0]
    standard_errors = summary["standard_error_by_protocol"][protocol] if "standard_error_by_protocol" in summary \
        else summary.get("standard_error", {})
    means = results["by_checkpoint_by_protocol"][protocol] if "by_checkpoint_by_protocol" in results \
        else results["by_checkpoint"]
    with_paper = protocol == "paper"
    table = []
    for method, by_row in means.items():
        cells = [_percent(by_row[p]) + (_paper(results, c, method) if with_paper else "") for p, c in zip(positions, rows)]
        inferred = summary.get("task_inference_accuracy_by_protocol", {protocol: summary["task_inference_accuracy"]}
                               )[protocol].get(method)
        table.append([method, *cells, _percent(standard_errors.get(method)), _percent(inferred),
                      _percent(summary["forgetting"][method]) if main else "-",
                      _percent(summary["backward_transfer"][method]) if main else "-"])
    how = ("each image's task inferred on its own, class among the task's outputs" if protocol == "per-image" else
           "the paper's protocol: task from each batch's first image, class over all outputs; paper in brackets")
    output.emit_table(["method", *[f"after {c}" for c in rows], "s.e.", "task inf.", "forgetting", "BWT"], table,
                      title=f"{results['suite']}, {results['arch']} (s={results['output_size']}), "
                            f"{results['steps']} steps a task, "
                            f"{results['eval_images'] or 'all'} test images a task; accuracy %, {how}")


def _show_speed_suite(results: dict[str, Any]) -> None:
    training = results.get("training")
    if training is not None:
        together = training["together_seconds_per_task"]
        output.emit_line(
            f"training, {training['steps']} steps a task: {training['seconds_per_task']:.2f} s a task "
            f"({training['how']}; one at a time {training['one_at_a_time_seconds']:.2f} s"
            + (f", {training['tasks_per_step']} per step {together:.2f} s" if together is not None else "")
            + f"); its matrix products {training['matmul_seconds_per_task']:.2f} s: "
              f"{training['floor_ratio']:.2f}x the floor")
    columns = ["k", "gg", "one-shot", "binary", "exhaustive", "one-shot (1)", "binary (1)", "exhaustive (1)",
               "peak MiB", "GFLOP/s (matmul)"]
    output.emit_table(columns, [[row["k"], *[_number(row[c]) for c in columns[1:5]],
                                 *[_number(row["batch_1"][m]) for m in ("one-shot", "binary", "exhaustive")],
                                 _number(row["peak_memory_mib"]),
                                 f"{_number(row['gflops']['contraction'])} ({_number(row['gflops']['matmul'])})"]
                                for row in results["by_k"]],
                      title=f"inference images/s, {results['arch']}, {results['images']} images, each on its own "
                            f"((1): given one at a time); GFLOP/s of One-Shot's contraction beside a plain matmul "
                            f"of its shapes")
    one = results["infer_one_image_seconds"]
    output.emit_line(f"supsup infer of one image at k = {one['k']}, a new process: {one['inferred']:.2f} s, "
                     f"with --task given {one['task_given']:.2f} s ({one['inferred'] / one['task_given']:.2f}x)")


def write_files(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, matrix.csv and (with matplotlib) accuracy.png; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json"]
    files.write_text(written[0], json.dumps(results, indent=2) + "\n")
    if "matrix" in results:
        written.append(out / "matrix.csv")

        def write_matrix(handle) -> None:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["method", "after_tasks", "task", "accuracy"])
            for method, matrix in results["matrix"].items():
                for checkpoint, row in zip(results["checkpoints"], matrix):
                    writer.writerows([method, checkpoint, task, value]
                                     for task, value in enumerate(row) if value is not None)

        files.write_with(written[-1], write_matrix)
        written += _plot(results, out)
    return written


def _plot(results: dict[str, Any], out: Path) -> list[Path]:
    """accuracy.png (average accuracy against tasks learned, with the paper's points) and matrix.png
    (the accuracy matrix of the first inference method as a heatmap)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        output.note("supsup: note: matplotlib is not installed, so no accuracy.png (pip install 'supsup[plot]')")
        return []
    written = [_plot_curves(plt, results, out / "accuracy.png")]
    if results["checkpoints"]:
        written.append(_plot_matrix(plt, results, out / "matrix.png"))
    return written


STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"), ("X", "-."), ("*", ":")]


def _plot_curves(plt, results: dict[str, Any], path: Path) -> Path:
    curves = results["summary"].get("hopfield", {}).get("tasks")
    figure, panels = plt.subplots(1, 2 if curves else 1, figsize=(12 if curves else 7.5, 4.8), squeeze=False)
    axes = panels[0][0]
    checkpoints = results["checkpoints"]
    values = []
    colors = {}
    curves_by_protocol = results.get("by_checkpoint_by_protocol", {})
    shown = [(method, means, "") for method, means in results["by_checkpoint"].items()]
    if "paper" in curves_by_protocol and results.get("protocols", ["per-image"])[0] != "paper":
        shown += [(method, means, " (paper protocol)") for method, means in curves_by_protocol["paper"].items()
                  if "/" in method]
    for order, ((method, means, protocol), (marker, line)) in enumerate(zip(shown, STYLES * 4)):
        points = [(c, 100 * m) for c, m in zip(checkpoints, means) if m is not None]
        if not points:
            continue
        values += [v for _, v in points]
        size = max(3.0, 9.0 - 1.2 * order)  # coinciding curves stay visible: each marker inside the last
        drawn = axes.plot(*zip(*points), marker=marker, linestyle=line, markersize=size, alpha=0.85,
                          label=method + protocol)
        colors.setdefault(method, drawn[0].get_color())
    paper_points = [(int(c), 100 * v, m) for c, figures in results["paper"].items() for m, v in figures.items()
                    if m in colors]  # the paper's figures of the methods that ran
    for method in sorted({m for _, _, m in paper_points}):
        mine = [(c, v) for c, v, m in paper_points if m == method]
        values += [v for _, v in mine]
        axes.scatter(*zip(*mine), marker="x", s=70, color=colors[method], zorder=5, label=f"paper: {method}")
    axes.set_xlabel("tasks learned")
    axes.set_ylabel("average accuracy over learned tasks (%)")
    protocol = results.get("protocols", ["per-image"])[0]
    axes.set_title(f"{results['suite']}, {results['arch']} ({protocol} protocol)")
    if checkpoints and checkpoints[-1] > 10:
        axes.set_xscale("log")
    axes.set_xticks(checkpoints if len(checkpoints) <= 12 else [c for c in checkpoints if c in (1, 2, 5, 10)
                                                                  or c % 50 == 0 or c == checkpoints[-1]])
    axes.set_xticklabels([str(t) for t in axes.get_xticks()])
    axes.minorticks_off()
    if values:  # at least 4 points of range, so that a 0.2-point difference does not look like a cliff
        low, high = min(values), max(values)
        middle, half = (low + high) / 2, max((high - low) / 2 * 1.15, 2.0)
        axes.set_ylim(max(0.0, middle - half), min(100.0, middle + half))
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
    with files.replacing(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return path


def _plot_matrix(plt, results: dict[str, Any], path: Path) -> Path:
    import numpy as np

    name = next((m for m in results["matrix"] if "/" in m), "gg" if "gg" in results["matrix"] else
                next(iter(results["matrix"])))
    matrix = np.array([[np.nan if v is None else 100 * v for v in row] for row in results["matrix"][name]])
    figure, axes = plt.subplots(figsize=(min(14.0, 4 + 0.4 * matrix.shape[1]), 1.5 + 0.35 * matrix.shape[0]))
    image = axes.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    axes.set_yticks(range(len(results["checkpoints"])), [str(c) for c in results["checkpoints"]])
    axes.set_ylabel("after tasks learned")
    axes.set_xlabel("task")
    if matrix.shape[1] <= 30:
        axes.set_xticks(range(matrix.shape[1]))
    axes.set_title(f"accuracy % per task, {name}")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    with files.replacing(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return path


def _paper(results: dict[str, Any], checkpoint: int, method: str) -> str:
    value = results["paper"].get(str(checkpoint), {}).get(method)
    return "" if value is None else f" ({100 * value:.2f})"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
