"""Networks of every task at once, in plain tensor operations that an ONNX runtime runs (`supsup export
--all-tasks`, `--infer one-shot`): weight-masked MLPs only.

The masks stay bit-packed in the model, [k, ceil(n/8)] uint8 per layer, and a base of signed
constants is its sign bits and one constant per layer; a bit table (the 8 bits of each byte value)
unpacks them in the graph, one lookup per byte, so the file is about the archive's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from supsup_cli.archive.records import TaskRecord
from supsup_cli.engine.masks import pack
from supsup_cli.core.registry import ArchSpec, weight_layers

_BITS = ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).to(torch.float32)  # [256, 8], little-endian


def exportable(spec: ArchSpec) -> str | None:
    """Why the archive's tasks cannot be exported together, or None."""
    if spec.family != "mlp" or spec.mask_on != "weights" or spec.norm != "none" or spec.labels != "per-task":
        return f"{spec.name} is not a weight-masked MLP without batch norm; export its tasks one at a time (--task)"
    return None


class _PackedMLP(torch.nn.Module):
    """The base MLP with every task's masks packed: a layer's weights for one task, or the tasks'
    counts, computed in the graph."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray], packed: Sequence[np.ndarray],
                 records: Sequence[TaskRecord]) -> None:
        super().__init__()
        self.shapes = [layer.shape for layer in weight_layers(spec)]
        self.layers = len(self.shapes)
        self.register_buffer("bits", _BITS.clone())
        for index, (weight, masks) in enumerate(zip(weights, packed)):
            magnitude = float(np.abs(weight).reshape(-1)[0])
            self.register_buffer(f"masks{index}", torch.from_numpy(np.ascontiguousarray(masks)))
            self.register_buffer(f"signs{index}", pack(torch.from_numpy(weight.reshape(-1) > 0)))
            self.register_buffer(f"scale{index}", torch.tensor(magnitude, dtype=torch.float32))
        classes = max(len(r.classes) for r in records)
        self.register_buffer("labels", torch.tensor([list(r.classes) + [-1] * (classes - len(r.classes))
                                                     for r in records], dtype=torch.int64))
        self.register_buffer("counts", torch.tensor([len(r.classes) for r in records], dtype=torch.int64))
        self.register_buffer("mean", torch.tensor([list(r.mean) for r in records], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([list(r.std) for r in records], dtype=torch.float32))
        self.register_buffer("first", torch.tensor(0))

    def unpacked(self, packed: torch.Tensor, index: int) -> torch.Tensor:
        """[..., ceil(n/8)] uint8 -> [..., out, in] float bits of layer `index`."""
        shape = self.shapes[index]
        bits = self.bits[packed.long()]  # [..., bytes, 8]
        flat = bits.reshape(*packed.shape[:-1], -1)[..., : int(np.prod(shape))]
        return flat.reshape(*packed.shape[:-1], *shape)

    def base(self, index: int) -> torch.Tensor:
        """Layer `index`'s signed constant weights, from their sign bits."""
        return (2 * self.unpacked(getattr(self, f"signs{index}"), index) - 1) * getattr(self, f"scale{index}")

    def normalize(self, images: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        x = images.float() / 255.0
        return (x - self.mean[task].view(1, channels, 1, 1)) / self.std[task].view(1, channels, 1, 1)


class AllTasks(_PackedMLP):
    """(uint8 images [N, C, H, W], task index) -> (logits over that task's classes, padded with -inf to
    the most classes a task has; the predicted class label): scenario GG for every task in one model."""

    def forward(self, images: torch.Tensor, task: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.normalize(images, task).reshape(images.shape[0], -1)
        for index in range(self.layers):
            weight = self.base(index) * self.unpacked(getattr(self, f"masks{index}")[task], index)
            h = h @ weight.t()
            if index < self.layers - 1:
                h = F.relu(h)
        width = self.labels.shape[1]
        real = torch.arange(width) < self.counts[task]
        logits = torch.where(real, h[:, :width], torch.full_like(h[:, :width], float("-inf")))
        return logits, self.labels[task][logits.argmax(1)]


class OneShot(_PackedMLP):
    """uint8 images [N, C, H, W] -> (task, class label, confidence) per image, as `supsup infer
    --method one-shot` finds them: the superimposed network at alpha = 1/k, dH/dalpha written out (the
    entropy's gradient backpropagated by hand through the ReLUs and contracted with every task's
    masks), the task with the largest -dH/dalpha, then the image's class under that task. Inputs
    are normalized as task 0's (as supsup infer does for a superposition)."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, tasks = images.shape[0], self.labels.shape[0]
        x = self.normalize(images, self.first).reshape(batch, -1)
        weights = [self.base(index) for index in range(self.layers)]
        masked = [w * self.unpacked(getattr(self, f"masks{index}"), index)  # [k, out, in]: W * M^i
                  for index, w in enumerate(weights)]
        mixed = [m.sum(0) * (1.0 / tasks) for m in masked]  # W * sum_i M^i / k, alpha = 1/k
        inputs, pre, h = [], [], x
        for index, weight in enumerate(mixed):
            inputs.append(h)
            pre.append(h @ weight.t())
            h = F.relu(pre[-1]) if index < self.layers - 1 else pre[-1]
        log_p = F.log_softmax(h, dim=1)
        p = log_p.exp()
        delta = -p * (log_p - (p * log_p).sum(1, keepdim=True))  # dH/dlogits, H = -sum p log p
        grads = torch.zeros(batch, tasks)
        for index in range(self.layers - 1, -1, -1):
            through = inputs[index] @ masked[index].reshape(-1, masked[index].shape[2]).t()  # [N, k * out]
            grads = grads + (through.reshape(batch, tasks, -1) * delta.unsqueeze(1)).sum(2)
            if index > 0:
                delta = (delta @ mixed[index]) * (pre[index - 1] > 0).float()
        task = (-grads).argmax(1)
        return (task, *self._classify(x, masked, task))

    def _classify(self, x: torch.Tensor, masked: list[torch.Tensor], task: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's label and confidence under its own task: every task's network on every
        image (k forward passes, the masks unpacked already), then each image's row."""
        batch, tasks = x.shape[0], masked[0].shape[0]
        h = (x @ masked[0].reshape(-1, masked[0].shape[2]).t()).reshape(batch, tasks, -1).transpose(0, 1)
        for index in range(1, self.layers):
            h = torch.bmm(F.relu(h), masked[index].transpose(1, 2))  # [k, N, out]
        rows = h.transpose(0, 1)  # [N, k, out]
        logits = rows.gather(1, task.view(-1, 1, 1).expand(-1, 1, rows.shape[2])).squeeze(1)
        width = self.labels.shape[1]
        real = torch.arange(width).unsqueeze(0) < self.counts[task].unsqueeze(1)
        among = torch.where(real, logits[:, :width], torch.full_like(logits[:, :width], float("-inf"))).softmax(1)
        label = self.labels[task].gather(1, among.argmax(1).unsqueeze(1)).squeeze(1)
        return label, among.max(1).values
