"""The frozen base network as a function of its input and a mask per site."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from supsup_cli.registry import ArchSpec


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Images [N, C, H, W] (or [N, H, W] for one channel), uint8 or float in [0, 1] -> network input."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    shape = (1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return x.sub_(mean_t).div_(std_t)


def real_outputs(spec: ArchSpec, classes: Sequence[int]) -> list[int]:
    """The output neuron of each of the task's classes (the rest are superfluous neurons)."""
    return list(classes) if spec.labels == "global" else list(range(len(classes)))


def activation(spec: ArchSpec, x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if spec.activation == "relu" else F.silu(x)


class MaskedNet(torch.nn.Module):
    """Bias-free MLP with fixed weights; a mask per site is given at every call."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        for index, weight in enumerate(weights):
            self.register_buffer(f"weight{index}", torch.from_numpy(weight), persistent=False)

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.spec.mask_on == "weights":
            return self.run(x, [w * m for w, m in zip(self.base(), masks)])
        return self.run(x, self.base(), masks)

    def base(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight{i}") for i in range(len(self.spec.widths) + 1)]

    def run(self, x: torch.Tensor, weights: Sequence[torch.Tensor],
            neuron_masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The network with these (already masked) weights, and masks on hidden neurons if any."""
        h = x.reshape(x.shape[0], -1)
        *hidden, output = weights
        for index, weight in enumerate(hidden):
            h = F.linear(h, weight)
            if self.spec.norm == "batch":
                h = F.batch_norm(h, None, None, training=True)
            if neuron_masks is not None:
                h = h * neuron_masks[index]
            h = activation(self.spec, h)
        return F.linear(h, output)


class DenseNet(torch.nn.Module):
    """The same architecture with trainable weights: the baselines, and the yardstick for speed."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        self.layers = torch.nn.ParameterList(torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1)
        *hidden, output = self.layers
        for weight in hidden:
            h = F.linear(h, weight)
            if self.spec.norm == "batch":
                h = F.batch_norm(h, None, None, training=True)
            h = activation(self.spec, h)
        return F.linear(h, output)
