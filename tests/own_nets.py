"""Networks unlike the registry's, as a user would write them (issue 29)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _examples() -> Any:
    location = Path(__file__).resolve().parents[1] / "examples" / "nets.py"
    spec = importlib.util.spec_from_file_location("supsup_examples_nets", location)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_EXAMPLES = _examples()


def SmallCNN(width: int = 4, classes: int = 10) -> nn.Module:  # noqa: N802 (it stands for the class)
    """examples/nets.py's CNN (convolutions with batch norm, a residual connection, a linear head with a
    bias), narrow enough for tests."""
    return _EXAMPLES.SmallCNN(classes=classes, width=width)


def norm_mlp(outputs: int = 10) -> nn.Module:
    """Biases and LayerNorm."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, outputs))


def lenet(outputs: int = 100) -> nn.Module:
    """LeNet 300-100 as a chain of bias-free Linear layers and ReLUs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300, bias=False), nn.ReLU(), nn.Linear(300, 100, bias=False),
                         nn.ReLU(), nn.Linear(100, outputs, bias=False))


class LenetByHand(nn.Module):
    """The same network written as a forward function: not a chain, so it takes the general path."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 300, bias=False)
        self.fc2 = nn.Linear(300, 100, bias=False)
        self.fc3 = nn.Linear(100, 100, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))
