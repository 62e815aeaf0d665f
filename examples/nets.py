"""Networks of one's own for supsup (README "Your own network"): factories that `--module` names.

    supsup init m.supsup --module examples/nets.py:small_cnn --input-shape 1,28,28
"""

import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with batch norm, a residual connection around the second, and a linear head."""

    def __init__(self, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width * 7 * 7, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        h = F.max_pool2d(F.relu(h + self.bn2(self.conv2(h))), 2)
        return self.fc(h.flatten(1))


def small_cnn() -> nn.Module:
    return SmallCNN()


def norm_mlp() -> nn.Module:
    """An MLP with biases and LayerNorm."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.LayerNorm(256), nn.ReLU(), nn.Linear(256, 10))


def lenet() -> nn.Module:
    """LeNet 300-100 as a module: the same network as `--arch lenet300-100` with 10 outputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300, bias=False), nn.ReLU(), nn.Linear(300, 100, bias=False),
                         nn.ReLU(), nn.Linear(100, 10, bias=False))
