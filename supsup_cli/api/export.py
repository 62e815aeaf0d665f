"""A task leaves supsup: its network as safetensors or as an ONNX model (`supsup export`, `Model.export`).

safetensors: the task's masked weights W * M (neuron masks: the weights and the masks) and its
batch-norm statistics under the names of the network's layers, with the architecture, classes,
normalization and digests in the metadata; a plain PyTorch module loads it with `safetensors` alone.

ONNX: input `images`, uint8, N x C x H x W, as `supsup infer` reads images; outputs `logits` over the
task's classes and `label`, the predicted class; the input normalization is in the graph, the batch
size is dynamic, and the metadata holds the classes, the architecture and the digests. The straight-
through estimator never reaches the graph: what is exported is the plain masked network.
"""

from __future__ import annotations

import inspect
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

import numpy as np

from supsup_cli.api import export_graphs
from supsup_cli.core import files, registry
from supsup_cli.archive.records import TaskRecord
from supsup_cli.core.errors import InvalidArgument, MissingExtra
from supsup_cli.engine.models import MaskedNet
from supsup_cli.api.network import TaskNetwork

FORMATS = ("onnx", "safetensors")
EXTRA = "pip install 'supsup[export]'"


def export(network: TaskNetwork, weights_sha256: str, mask_sha256: str | None, form: str, out: Path) -> dict[str, Any]:
    """Write `network` to `out` in `form`; returns what was written (the --json of `supsup export`)."""
    if form not in FORMATS:
        raise InvalidArgument(f"`format` must be {' or '.join(FORMATS)}, got {form!r}")
    metadata = {"format": "supsup-task", "task": network.task_name, "classes": json.dumps(list(network.classes)),
                "mean": json.dumps(list(network.mean)), "std": json.dumps(list(network.std)),
                "arch": registry.to_json(network.net.spec), "weights_sha256": weights_sha256,
                "mask_sha256": mask_sha256 or ""}
    if form == "safetensors":
        tensors = _safetensors_bytes(network, metadata)
    else:
        tensors = _onnx_bytes(network, metadata)
    with files.replacing(out) as temporary:
        temporary.write_bytes(tensors)
    return {"out": str(out), "format": form, "task": network.task_name, "classes": list(network.classes),
            "bytes": out.stat().st_size}


def export_tasks(net: MaskedNet, packed: list[np.ndarray], records: list[TaskRecord], weights_sha256: str,
                 infer: str | None, out: Path) -> dict[str, Any]:
    """Every task in one ONNX model (`--all-tasks`: images and a task index in, as --task gives per
    task), or one that infers each image's task itself (`infer` "one-shot")."""
    spec = net.spec
    refusal = export_graphs.exportable(spec)
    if refusal is not None:
        raise InvalidArgument(refusal)
    if infer not in (None, "one-shot"):
        raise InvalidArgument(f"`infer` must be 'one-shot', got {infer!r}")
    weights = [w.detach().cpu().numpy() for w in net.base()]
    if any(len(np.unique(np.abs(w))) != 1 for w in weights):
        raise InvalidArgument("the base weights are not signed constants (a module's given weights): export its "
                              "tasks one at a time (--task)")
    metadata = {"format": "supsup-tasks" if infer is None else "supsup-one-shot",
                "tasks": json.dumps([r.name for r in records]), "classes": json.dumps([list(r.classes) for r in records]),
                "arch": registry.to_json(spec), "weights_sha256": weights_sha256,
                "mask_sha256": json.dumps([r.mask_sha256 for r in records])}
    example = torch.zeros(2, *spec.input_shape, dtype=torch.uint8)
    if infer is None:
        graph: torch.nn.Module = export_graphs.AllTasks(spec, weights, packed, records)
        arguments: tuple[torch.Tensor, ...] = (example, torch.tensor(0))
        names = (["images", "task"], ["logits", "label"])
    else:
        graph = export_graphs.OneShot(spec, weights, packed, records)
        arguments, names = (example,), (["images"], ["task", "label", "confidence"])
    _require_onnx()
    model = _onnx_bytes_of(graph.eval(), arguments, *names, metadata)
    with files.replacing(out) as temporary:
        temporary.write_bytes(model)
    return {"out": str(out), "format": "onnx", "tasks": len(records), "infer": infer, "bytes": out.stat().st_size}


def named_tensors(network: TaskNetwork) -> dict[str, torch.Tensor]:
    """The task's network as plain tensors under its layers' names: `NAME.weight` (W * M where masks are
    on weights), `NAME.neuron_mask` (masks on neurons), `norm{n}.running_mean` / `running_var`; a
    user's module: its state dict with W * M for the masked parameters (`load_state_dict` takes it)."""
    net, spec = network.net, network.net.spec
    if network.module is not None:  # a user's module: its own state, under its own names
        own = {name: t.detach().cpu().contiguous() for name, t in network.module.state_dict().items()}
        return {**own, "outputs": network.outputs.detach().cpu()}
    layers = registry.weight_layers(spec)
    masks = network.masks()
    tensors: dict[str, torch.Tensor] = {}
    for index, (layer, weight) in enumerate(zip(layers, net.base())):
        masked = weight * masks[index] if spec.mask_on == "weights" else weight
        tensors[f"{layer.name}.weight"] = masked.detach().cpu().contiguous()
    if spec.mask_on == "neurons":
        for index, mask in enumerate(masks):
            tensors[f"{layers[index].name}.neuron_mask"] = mask.detach().cpu().contiguous()
    for name, buffer in net.named_buffers():
        if name.startswith("norm"):
            number, kind = name.removeprefix("norm").split("_")
            tensors[f"norm{number}.running_{kind}"] = buffer.detach().cpu().contiguous()
    tensors["outputs"] = network.outputs.detach().cpu()
    return tensors


def _safetensors_bytes(network: TaskNetwork, metadata: dict[str, str]) -> bytes:
    try:
        from safetensors.torch import save
    except ImportError:
        raise MissingExtra(f"exporting to safetensors needs the safetensors package: {EXTRA}") from None
    return bytes(save(named_tensors(network), metadata=metadata))


class _Deployed(torch.nn.Module):
    """uint8 images -> (logits over the task's classes, predicted class label), plain tensor arithmetic."""

    def __init__(self, network: TaskNetwork) -> None:
        super().__init__()
        self.network = network
        channels = network.net.spec.input_shape[0]
        self.register_buffer("mean", torch.tensor(network.mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(network.std, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("labels", torch.tensor(network.classes, dtype=torch.int64))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images.float() / 255.0 - self.mean) / self.std  # as supsup infer: pixels / 255, then normalized
        logits = self.network.logits(x)[:, self.network.outputs]
        return logits, self.labels[logits.argmax(1)]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise MissingExtra(f"exporting to ONNX needs the onnx package: {EXTRA}") from None


def _onnx_bytes(network: TaskNetwork, metadata: dict[str, str]) -> bytes:
    _require_onnx()
    spec = network.net.spec
    if spec.norm == "batch":
        raise InvalidArgument(f"{spec.name} normalizes each batch by its own statistics, so an image's answer "
                              "depends on its batch: export it as safetensors instead")
    example = torch.zeros(2, *spec.input_shape, dtype=torch.uint8)
    return _onnx_bytes_of(_Deployed(network).eval(), (example,), ["images"], ["logits", "label"], metadata)


def _onnx_bytes_of(graph: torch.nn.Module, arguments: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
                   metadata: dict[str, str]) -> bytes:
    """`graph` traced into an ONNX model with a dynamic batch, `metadata` in its properties."""
    import onnx

    batched = {name: {0: "batch"} for name in inputs + outputs if name not in inputs[1:]}  # a task index: one number
    buffer = io.BytesIO()
    # No constant folding: folded, the weights unpacked from their bits would be stored as floats.
    options: dict[str, Any] = {"input_names": inputs, "output_names": outputs, "dynamic_axes": batched,
                               "opset_version": 17, "do_constant_folding": False}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the tracing exporter: no onnxscript needed, and the same graph on every torch
    with torch.no_grad(), warnings.catch_warnings():
        # The tracing exporter is deprecated in favour of one that needs onnxscript; it is chosen on
        # purpose (above), so its warning would only be noise on a user's terminal.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(graph, arguments, buffer, **options)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    return bytes(model.SerializeToString())
