"""One task's network as a plain `torch.nn.Module`, to use in one's own code (`Model.network`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from supsup_cli.archive.records import TaskRecord
from supsup_cli.data.arrays import network_pixels
from supsup_cli.engine.masks import unpack
from supsup_cli.engine.models import MaskedNet, normalize, real_outputs
from supsup_cli.core.registry import mask_sites
from supsup_cli.engine.user_module import ModuleNet


class TaskNetwork(torch.nn.Module):
    """A task's network: frozen, in eval mode, its mask applied and its batch-norm statistics loaded.

    `forward(images)` takes images as `Model.infer` does (uint8, or float in [0, 1]; N x H x W or
    N x C x H x W; numpy or torch), normalizes them with the task's statistics and returns the logits
    over the task's classes, computed as `infer` computes them with the task given: the arg-max of a
    row is the position in `classes` of what `infer` answers.
    """

    outputs: torch.Tensor  # the output neuron of each of the task's classes

    def __init__(self, base: MaskedNet, record: TaskRecord, packed: Sequence[np.ndarray],
                 stats: np.ndarray | None) -> None:
        super().__init__()
        spec = base.spec
        self.net = copy.deepcopy(base).cpu()  # its own statistics, whatever the base's hold later
        if stats is not None:
            self.net.load_stats(stats)
        self.classes: tuple[int, ...] = tuple(record.classes)
        self.task_name = record.name
        self.mean, self.std = record.mean, record.std
        masks = [unpack(torch.from_numpy(np.asarray(p)), site.numel).view(site.shape)
                 for p, site in zip(packed, mask_sites(spec))]
        for index, mask in enumerate(masks):
            self.register_buffer(f"mask{index}", mask)
        self.register_buffer("outputs", torch.tensor(real_outputs(spec, record.classes)))
        # A user's module: the task's weights baked into a copy of it, so that it traces and exports
        # as the user's own layers (ModuleNet calls the module with replaced parameters).
        self.module = self.net.baked(masks) if isinstance(self.net, ModuleNet) else None
        self.requires_grad_(False)
        self.eval()

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask{i}") for i in range(len(mask_sites(self.net.spec)))]

    def forward(self, images: Any) -> torch.Tensor:
        pixels = network_pixels(images, self.net.spec.input_shape)
        x = normalize(torch.from_numpy(pixels.astype(np.float32) / 255.0), self.mean, self.std)
        return self.logits(x.to(self.outputs.device))[:, self.outputs]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """All the network's outputs for normalized inputs x."""
        out: torch.Tensor = self.module(x) if self.module is not None else self.net(x, self.masks())
        return out

    def train(self, mode: bool = True) -> "TaskNetwork":
        """Stays in eval mode: the statistics are the task's, not a batch's."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"task={self.task_name!r}, classes={list(self.classes)}"
