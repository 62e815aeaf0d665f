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

from supsup_cli import files, registry
from supsup_cli.errors import InvalidArgument, MissingExtra
from supsup_cli.network import TaskNetwork

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


def named_tensors(network: TaskNetwork) -> dict[str, torch.Tensor]:
    """The task's network as plain tensors under its layers' names: `NAME.weight` (W * M where masks are
    on weights), `NAME.neuron_mask` (masks on neurons), `norm{n}.running_mean` / `running_var`."""
    net, spec = network.net, network.net.spec
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
        logits = self.network.net(x, self.network.masks())[:, self.network.outputs]
        return logits, self.labels[logits.argmax(1)]


def _onnx_bytes(network: TaskNetwork, metadata: dict[str, str]) -> bytes:
    try:
        import onnx
    except ImportError:
        raise MissingExtra(f"exporting to ONNX needs the onnx package: {EXTRA}") from None
    spec = network.net.spec
    if spec.norm == "batch":
        raise InvalidArgument(f"{spec.name} normalizes each batch by its own statistics, so an image's answer "
                              "depends on its batch: export it as safetensors instead")
    deployed = _Deployed(network).eval()
    example = torch.zeros(2, *spec.input_shape, dtype=torch.uint8)
    buffer = io.BytesIO()
    options: dict[str, Any] = {"input_names": ["images"], "output_names": ["logits", "label"],
                               "dynamic_axes": {"images": {0: "batch"}, "logits": {0: "batch"}, "label": {0: "batch"}},
                               "opset_version": 17}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the tracing exporter: no onnxscript needed, and the same graph on every torch
    with torch.no_grad(), warnings.catch_warnings():
        # The tracing exporter is deprecated in favour of one that needs onnxscript; it is chosen on
        # purpose (above), so its warning would only be noise on a user's terminal.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(deployed, (example,), buffer, **options)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    return bytes(model.SerializeToString())
