"""init and inspect: create an archive, and show what it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from supsup_cli import archive
from supsup_cli.core import choices, registry
from supsup_cli.core.choices import listed
from supsup_cli.cli import exit_codes, output
from supsup_cli.cli.options import ArchivePath, UserModule, json_flag
from supsup_cli.cli.user_code import load_module
from supsup_cli.core.errors import ArchiveCorrupt, BadInput, InputNotFound, InvalidArgument
from supsup_cli.archive.records import TaskRecord

_InitJson = json_flag("the created archive's path, arch, seed and weights digest")
_InspectJson = json_flag("the archive's facts and every task's record")
_SizeJson = json_flag("the storage report (bytes per part and per task)")
_StoreJson = json_flag("what was stored in the reservoir")
_MergeJson = json_flag("the merged archive and what came from each input")


def init(
    path: ArchivePath,
    arch: Annotated[str | None, typer.Option(
        "--arch", help=f"{listed(tuple(registry.REGISTRY))}, or mlp:W1-W2-... (an MLP of these hidden widths).")]
    = None,
    arch_spec: Annotated[Path | None, typer.Option(
        "--arch-spec", help="A JSON file with an architecture spec of one's own (the fields `supsup inspect "
                            "--json` shows under arch; every field checked against its bounds).")] = None,
    input_shape: Annotated[str | None, typer.Option(
        "--input-shape", help="C,H,W of an mlp: architecture's input (default 1,28,28).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**64 - 1, help="Seed of the random base network.")] = 0,
    output_size: Annotated[
        int | None, typer.Option("--output-size", help="Output neurons s (real classes plus superfluous ones).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    module: UserModule = None,
    weights: Annotated[str | None, typer.Option(
        "--weights", help="With --module: random (signed Kaiming constants from --seed) or given (the module's "
                          "own weights, pretrained say; the archive keeps their fingerprint). Default random.")] = None,
    mask: Annotated[str | None, typer.Option(
        "--mask", metavar="NAME,NAME,...", help="With --module: the parameters to mask (default: the weights of "
                                                "every nn.Linear and nn.Conv2d).")] = None,
    json_: _InitJson = False,
) -> None:
    """Create an archive for one base network (random from the seed, or your module), with no tasks yet.

    Example: supsup init model.supsup --arch lenet300-100 --seed 0
    Example: supsup init model.supsup --arch mlp:512-256 --output-size 10
    Example: supsup init model.supsup --arch-spec my-resnet.json
    Example: supsup init model.supsup --module nets.py:small_cnn --input-shape 1,28,28
    """
    from supsup_cli.api.model import Model

    model = Model.create(path, arch, seed=seed, output_size=output_size, force=force,
                         input_shape=None if input_shape is None else _shape(input_shape),
                         arch_spec=None if arch_spec is None else _json_file(arch_spec),
                         module=load_module(module), weights=weights, mask=None if mask is None else mask.split(","),
                         label=module)
    result = {"path": str(path), "arch": model.spec.name, "output_size": model.spec.output_size, "seed": seed,
              "weights_sha256": model.weights_sha256}
    if model.spec.family == registry.MODULE:
        result |= {"weights": model.spec.weights, "fingerprint": model.spec.fingerprint,
                   "masked": [name for name, _ in model.spec.sites]}
    if json_:
        output.emit_json(result)
    else:
        output.emit_fields(list(result.items()))


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidArgument(f"--input-shape takes C,H,W like 1,28,28, got {text!r}") from None


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputNotFound(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path}: not a JSON file ({type(exc).__name__})") from None


def inspect(
    path: ArchivePath,
    verify: Annotated[bool, typer.Option("--verify", help="Check every checksum; list damaged tasks (exit 5).")]
    = False,
    json_: _InspectJson = False,
) -> int:
    """Show an archive's format version, architecture, seed, weights hash and tasks.

    With --verify: check the content checksum, the structure, the weights hash and each task's
    checksum, and name the damaged tasks (exit code 5 if anything is damaged).

    Example: supsup inspect model.supsup --json | jq '.tasks[].name'
    Example: supsup inspect --verify model.supsup
    """
    if verify:
        return _verify(path, json_)
    with archive.Archive(path) as opened:
        result = describe(opened)
    if json_:
        output.emit_json(result)
        return
    output.emit_fields([
        ("path", result["path"]),
        ("format_version", result["format_version"]),
        ("arch", f"{result['arch']['name']} (output size {result['arch']['output_size']})"),
        ("seed", result["seed"]),
        ("weights_sha256", result["weights_sha256"]),
        ("tasks", len(result["tasks"])),
    ])
    if result["tasks"]:
        output.emit_table(
            ["index", "name", "data", "test acc", "density", "created"],
            [[t["index"], t["name"], t["data_spec"], t["test_accuracy"], t["density"], t["created"]]
             for t in result["tasks"]],
        )
    return exit_codes.OK


def _verify(path: Path, json_: bool) -> int:
    from supsup_cli.api.model import verify_archive

    report = verify_archive(path).to_dict()
    if json_:
        output.emit_json(report)
    else:
        yes_no = {True: "ok", False: "DAMAGED", None: "not checked"}
        output.emit_fields([
            ("path", report["path"]),
            ("content checksum", yes_no[report["content_sha256_ok"]]),
            ("structure", yes_no[report["structure_ok"]]),
            ("weights hash", yes_no[report["weights_sha256_ok"]]),
            ("tasks checked", len(report["tasks"])),
            ("damaged tasks", ", ".join(f"{t['index']} ({t['name'] or '?'})" for t in report["tasks"]
                                        if not t["ok"]) or "none"),
        ])
    if report["ok"]:
        return exit_codes.OK
    output.error_line(f"{path}: damaged archive: " + (report["problem"] or
                      _damaged_tasks(report)))
    return exit_codes.for_error(ArchiveCorrupt(""))


def describe(opened: archive.Archive) -> dict[str, Any]:
    return {
        "path": str(opened.path),
        "format_version": opened.format_version,
        "arch": _plain_spec(opened.spec),
        "seed": opened.seed,
        "weights_sha256": opened.weights_sha256,
        "writer": opened.writer,
        "tasks": [_task_summary(index, record, [site.numel for site in opened.sites])
                  for index, record in enumerate(opened.tasks)],
    }


def _plain_spec(spec: registry.ArchSpec) -> dict[str, Any]:
    return json.loads(registry.to_json(spec))


def _task_summary(index: int, record: TaskRecord, site_sizes: list[int]) -> dict[str, Any]:
    return {
        "index": index,
        "name": record.name,
        "data": record.data,
        "data_spec": data_spec_text(record.data),
        "classes": list(record.classes),
        "test_accuracy": record.test_accuracy,
        "density": round(record.overall_density(site_sizes), 4),
        "created": record.created,
    }


def data_spec_text(data: dict[str, Any]) -> str:
    return " ".join([str(data.get("dataset", "?"))] + [f"{k}={v}" for k, v in sorted(data.items()) if k != "dataset"])


def _damaged_tasks(report: dict[str, Any]) -> str:
    """The damaged tasks and the first one's problem: a checksum, or the rule its record breaks."""
    damaged = [t for t in report["tasks"] if not t["ok"]]
    if all(t["problem"] == "checksum mismatch" for t in damaged):
        return f"tasks {', '.join(str(t['index']) for t in damaged)} fail their checksums"
    first = next(t for t in damaged if t["problem"] != "checksum mismatch")
    return f"tasks {', '.join(str(t['index']) for t in damaged)} are damaged (task {first['index']}: {first['problem']})"


def size(path: ArchivePath, json_: _SizeJson = False) -> None:
    """Bytes on disk and per task, beside the entropy bound, the paper's CSC scheme and dense weights.

    Example: supsup size model.supsup --json | jq .mask_to_entropy_bound
    """
    from supsup_cli.api.model import Model

    report = Model(path).size().to_dict()
    if json_:
        output.emit_json(report)
        return
    mib = lambda b: "-" if b is None else f"{b:,.0f} B ({b / 2**20:.2f} MiB)"  # noqa: E731
    output.emit_fields([
        ("tasks", report["tasks"]),
        ("bytes on disk", mib(report["bytes_on_disk"])),
        ("  header, spec, HDF5", mib(report["breakdown"]["header_and_spec"])),
        ("  masks", mib(report["mask_bytes"])),
        ("  task records", mib(report["breakdown"]["records"])),
        ("  statistics", mib(report["breakdown"]["statistics"])),
        ("  index and digests", mib(report["breakdown"]["index_and_digests"])),
        ("  Hopfield reservoir", mib(report["breakdown"]["hopfield_reservoir"])),
        ("bytes per task", mib(report["bytes_per_task"])),
        ("mask bits per weight", _fixed(report["bits_per_weight"], 4)),
        ("entropy bound of the masks", mib(report["entropy_bound_bytes"])),
        ("masks / entropy bound", _fixed(report["mask_to_entropy_bound"], 4)),
        ("paper's scheme (Table 2)", mib(report["paper_scheme"]["total_bytes"])),
        ("  masks as CSC int16", mib(report["paper_scheme"]["masks_csc_int16_bytes"])),
        ("  batch-norm statistics", mib(report["paper_scheme"]["batch_norm_statistics_bytes"])),
        ("  per task", mib(report["paper_scheme"]["per_task_bytes"])),
        ("  layers past 16-bit pointers", ", ".join(report["paper_scheme"]["layers_past_int16_pointers"]) or "none"),
        ("dense fp32 model per task", mib(report["dense_fp32_bytes_per_task"])),
        ("base network as fp32 (the seed)", mib(report["base_network_fp32_bytes"])),
    ])
    output.emit_table(["site", "weights", "density", "mask bytes", "entropy bound", "CSC int16", "codecs"],
                      [[s["site"], s["weights"], s["density"], s["mask_bytes"], round(s["entropy_bound_bytes"]),
                        s["csc_int16_bytes"], " ".join(f"{k}:{v}" for k, v in s["codecs"].items())]
                       for s in report["layers"]])


def _fixed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def hopfield_store(
    path: ArchivePath,
    drop_masks: Annotated[bool, typer.Option("--drop-masks", help="Keep masks only in the reservoir: the archive "
                                                                  "stops growing with tasks.")] = False,
    json_: _StoreJson = False,
) -> None:
    """Store every task's neuron mask in fixed-size Hopfield networks (Storkey rule), for infer --hopfield.

    Later learn-task runs add to the reservoir (and, after --drop-masks, store no mask besides it).

    Example: supsup hopfield-store model.supsup --drop-masks
    """
    from supsup_cli.api.model import Model

    result = Model(path).hopfield_store(drop_masks).to_dict()
    if json_:
        output.emit_json(result)
    else:
        output.emit_fields(list(result.items()))


def merge(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="The merged archive to write.", show_default=False)],
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUTS...", help="Archives of one base network (same arch, seed, weights).",
                                                 show_default=False)],
    on_duplicate: Annotated[str, typer.Option(
        "--on-duplicate", help=f"A task name seen before: {listed(choices.ON_DUPLICATE)} (rename: name-2, ...).")]
    = "refuse",
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    json_: _MergeJson = False,
) -> None:
    """Combine archives trained in parallel into one, tasks renumbered in input order (atomic write).

    Example: supsup merge all.supsup part-*.supsup
    """
    from supsup_cli.api.model import merge as merge_archives

    result = merge_archives(out, inputs, on_duplicate, force).to_dict()
    if json_:
        output.emit_json(result)
    else:
        output.emit_fields([("out", result["out"]), ("tasks", result["tasks"])])
        output.emit_table(["input", "tasks", "renamed", "skipped"],
                          [[i["path"], i["tasks"], ", ".join(f"{a}->{b}" for a, b in i["renamed"]) or "-",
                            ", ".join(i["skipped"]) or "-"] for i in result["inputs"]])


def export(
    path: ArchivePath,
    format_: Annotated[str, typer.Option("--format", help="onnx or safetensors.")],
    out: Annotated[Path, typer.Option("--out", help="The file to write (replaced whole, or not at all).")],
    task: Annotated[str | None, typer.Option("--task", help="Task index or name.")] = None,
    all_tasks: Annotated[bool, typer.Option(
        "--all-tasks", help="ONNX: every task in one model, its inputs the images and a task index (weight-masked "
                            "MLPs; the masks stay packed).")] = False,
    infer: Annotated[str | None, typer.Option(
        "--infer", help="ONNX: one-shot, a model that finds each image's task itself (outputs task, label, "
                        "confidence; weight-masked MLPs; tens to hundreds of tasks).")] = None,
    module: UserModule = None,
    json_: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write one task's network for use outside supsup: ONNX (uint8 images in, logits over the task's
    classes and the predicted label out, input normalization included) or safetensors (the masked
    weights and statistics under the layers' names). Needs `pip install 'supsup[export]'`.

    Example: supsup export model.supsup --task 3 --format onnx --out task3.onnx
    Example: supsup export model.supsup --task mnist-permute-7 --format safetensors --out t.safetensors
    Example: supsup export model.supsup --all-tasks --format onnx --out all.onnx
    Example: supsup export model.supsup --infer one-shot --format onnx --out finds-its-task.onnx
    """
    from supsup_cli.api.model import Model

    result = Model(path, module=load_module(module)).export(task, format_, out, all_tasks=all_tasks, infer=infer)
    if json_:
        output.emit_json(result)
    else:
        output.emit_fields(list(result.items()))
