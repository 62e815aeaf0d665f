"""The paper's two baselines, trained with the same data and budget as the supermasks.

upper bound: one dense network per task (nothing shared, nothing forgotten, k models to store);
lower bound: one trunk trained on the tasks in sequence, with a separate head (last layer) per task,
as in the paper's section 4.1 (the trunk forgets).
Both start from the same signed Kaiming constant weights and use the same optimizer, learning
rate, steps and batches as learn-task; both are evaluated with the task given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from supsup_cli.models import DenseNet
from supsup_cli.registry import ArchSpec
from supsup_cli.training import Learner, Progress, TaskTensors, TrainConfig, batches, fit


def train_dense(net: DenseNet, task: TaskTensors, config: TrainConfig, progress: Progress | None = None) -> float:
    """Train `net` in place on one task; returns the seconds spent."""
    generator = torch.Generator().manual_seed(config.seed)
    learner = Learner(net, list(net.parameters()), config.resolved(net.spec))
    net.train()
    stream = batches(len(task.targets), min(config.batch_size, len(task.targets)), generator, task.images.device)

    def step(_: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return *learner.step(task.inputs(index, generator), task.targets[index]), task.targets[index]

    return fit(config.steps, stream, step, progress)[0]


@torch.no_grad()
def dense_predictions(net: DenseNet, x: torch.Tensor, outputs: Sequence[int]) -> torch.Tensor:
    """Index into `outputs` of each input's arg-max over the task's real outputs (task given)."""
    positions = torch.tensor(outputs, device=x.device)
    net.eval()
    predictions = torch.cat([net(part)[:, positions].argmax(1) for part in x.split(2000)])
    net.train()
    return predictions


def fresh_dense(spec: ArchSpec, weights: Sequence[np.ndarray], device: torch.device) -> DenseNet:
    return DenseNet(spec, weights).to(device)


class SeparateHeads:
    """The lower bound: a dense trunk shared by the tasks, trained on each in turn, and a head per task
    (each starting from the base network's last layer)."""

    def __init__(self, spec: ArchSpec, weights: Sequence[np.ndarray], device: torch.device) -> None:
        self.net = fresh_dense(spec, weights, device)
        self.initial_head = self.net.layers[-1].detach().clone()
        self.heads: list[torch.Tensor] = []

    def train_task(self, task: TaskTensors, config: TrainConfig, progress: Progress | None = None) -> float:
        with torch.no_grad():
            self.net.layers[-1].copy_(self.initial_head)
        seconds = train_dense(self.net, task, config, progress)
        self.heads.append(self.net.layers[-1].detach().clone())
        return seconds

    def with_head(self, task: int) -> DenseNet:
        """The network with task `task`'s head (and the trunk as it is now)."""
        with torch.no_grad():
            self.net.layers[-1].copy_(self.heads[task])
        return self.net
