"""The frozen base network as a function of its input and a mask per site."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from supsup_cli.core.registry import ArchSpec, norm_channels, resnet_plan, weight_layers


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Images [N, C, H, W] (or [N, H, W] for one channel), uint8 or float in [0, 1] -> network input."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    shape = (1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return x.sub_(mean_t).div_(std_t)


def batches_of(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """x in batches of `size`, the last one merged into the one before if it would hold a single
    input (batch norm on batch statistics needs two)."""
    parts = list(x.split(size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


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
        self.layer_count = len(weights)
        for index, weight in enumerate(weights):
            self.register_buffer(f"weight{index}", torch.from_numpy(weight), persistent=False)

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.spec.mask_on == "weights":
            return self.run(x, [w * m for w, m in zip(self.base(), masks)])
        return self.run(x, self.base(), masks)

    def base(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight{i}") for i in range(self.layer_count)]

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

    def run_stacked(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """T networks at once: x [T, B, ...], masked weights [T, out, in] -> [T, B, outputs]. Each slice is
        computed exactly as `run` computes it alone (on the CPU, bit for bit: tests/test_batched_training.py)."""
        if self.spec.norm == "batch" or self.spec.mask_on != "weights":
            raise ValueError(f"{self.spec.name}: only weight-masked networks without batch norm run stacked")
        h = x.reshape(x.shape[0], x.shape[1], -1)
        *hidden, output = weights
        for weight in hidden:
            h = activation(self.spec, torch.bmm(h, weight.transpose(1, 2)))
        return torch.bmm(h, output.transpose(1, 2))

    # Per-task normalization statistics: MLPs keep none (their batch norm, if any, uses the batch's).
    def reset_stats(self) -> None:
        pass

    def stats_vector(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def load_stats(self, vector: np.ndarray) -> None:
        pass


class MaskedResNet(MaskedNet):
    """A residual network with fixed weights and non-affine batch norm whose running statistics
    belong to a task: reset before training one, saved with its mask, loaded to evaluate it."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray]) -> None:
        super().__init__(spec, weights)
        self.layers = weight_layers(spec)
        self.plan = resnet_plan(spec)
        self.norms = {i: n for n, i in enumerate(i for i, layer in enumerate(self.layers) if len(layer.shape) == 4)}
        for n, channels in enumerate(norm_channels(spec)):
            self.register_buffer(f"norm{n}_mean", torch.zeros(channels), persistent=False)
            self.register_buffer(f"norm{n}_var", torch.ones(channels), persistent=False)

    def run(self, x: torch.Tensor, weights: Sequence[torch.Tensor],
            neuron_masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        def conv_norm(index: int, h: torch.Tensor) -> torch.Tensor:
            layer = self.layers[index]
            h = F.conv2d(h, weights[index], stride=layer.stride, padding=layer.padding)
            norm = self.norms[index]
            return F.batch_norm(h, getattr(self, f"norm{norm}_mean"), getattr(self, f"norm{norm}_var"),
                                training=self.training, momentum=0.1, eps=1e-5)

        h = F.relu(conv_norm(self.plan.stem, x))
        if self.plan.pool:
            h = F.max_pool2d(h, 3, stride=2, padding=1)
        for block in self.plan.blocks:
            out = h
            for position, index in enumerate(block.convs):
                out = conv_norm(index, out)
                if position < len(block.convs) - 1:
                    out = F.relu(out)
            shortcut = h if block.shortcut is None else conv_norm(block.shortcut, h)
            h = F.relu(out + shortcut)
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return F.linear(h, weights[self.plan.fc])

    def _stat_buffers(self) -> list[torch.Tensor]:
        """Every norm layer's running mean, then every one's running variance: the stored order (formats/, 3.4)."""
        return [getattr(self, f"norm{n}_{kind}") for kind in ("mean", "var") for n in range(len(self.norms))]

    def reset_stats(self) -> None:
        for n in range(len(self.norms)):
            getattr(self, f"norm{n}_mean").zero_()
            getattr(self, f"norm{n}_var").fill_(1.0)

    def stats_vector(self) -> np.ndarray:
        return torch.cat(self._stat_buffers()).detach().cpu().numpy().astype(np.float32)

    def load_stats(self, vector: np.ndarray) -> None:
        buffers = self._stat_buffers()
        values = torch.as_tensor(np.asarray(vector, dtype=np.float32))
        for buffer, part in zip(buffers, values.split([b.numel() for b in buffers])):
            buffer.copy_(part)


def build(spec: ArchSpec, weights: Sequence[np.ndarray]) -> MaskedNet:
    """The masked network of an architecture."""
    return MaskedResNet(spec, weights) if spec.family == "resnet" else MaskedNet(spec, weights)


class DenseNet(torch.nn.Module):
    """The same architecture with trainable weights: the baselines, and the yardstick for speed."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        self.net = build(spec, weights)  # its structure and batch-norm statistics; its weights go unused
        self.layers = torch.nn.ParameterList(torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.run(x, list(self.layers))
