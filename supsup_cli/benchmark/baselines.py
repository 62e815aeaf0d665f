"""The paper's baselines, trained with the same data and budget as the supermasks.

upper bound: one dense network per task (nothing shared, nothing forgotten, k models to store);
lower bound: one trunk trained on the tasks in sequence, with a separate head (last layer) per task,
as in the paper's section 4.1 (the trunk forgets);
separate heads: a trunk trained on the first task, then frozen, and a head per task (section 4.1,
Figure 2); "rand W": the same with the random base network as the trunk. The trunk's batch-norm
running statistics are each task's own, kept beside its head, as a supermask's are.
All start from the same signed Kaiming constant weights and use the same optimizer, learning
rate, steps and batches as learn-task; all are evaluated with the task given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from supsup_cli.engine.models import DenseNet
from supsup_cli.core.registry import ArchSpec
from supsup_cli.engine.training import Learner, Progress, TaskTensors, TrainConfig, batches, fit


def train_dense(net: DenseNet, task: TaskTensors, config: TrainConfig, progress: Progress | None = None,
                head_only: bool = False) -> float:
    """Train `net` in place on one task (with `head_only`, its last layer alone); returns the seconds spent."""
    generator = torch.Generator().manual_seed(config.seed)
    for trunk_layer in net.layers[:-1]:
        trunk_layer.requires_grad_(not head_only)
    trained = [net.layers[-1]] if head_only else list(net.parameters())
    learner = Learner(net, trained, config.resolved(net.spec))
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


class FixedTrunk:
    """Separate heads on a frozen trunk: each task trains its own head (starting from the base
    network's last layer) and keeps the trunk's batch-norm statistics of its own data."""

    def __init__(self, trunk: DenseNet, initial_head: torch.Tensor) -> None:
        self.net = trunk
        self.initial_head = initial_head.detach().clone()
        self.tasks: list[tuple[torch.Tensor, np.ndarray]] = []  # head, statistics

    def train_task(self, task: TaskTensors, config: TrainConfig, progress: Progress | None = None) -> float:
        with torch.no_grad():
            self.net.layers[-1].copy_(self.initial_head)
        self.net.net.reset_stats()
        seconds = train_dense(self.net, task, config, progress, head_only=True)
        self.tasks.append((self.net.layers[-1].detach().clone(), self.net.net.stats_vector()))
        return seconds

    def keep_as_is(self) -> None:
        """The trunk's own head and statistics are the next task's (the first task's, on which the
        trunk of "separate heads" was trained)."""
        self.tasks.append((self.net.layers[-1].detach().clone(), self.net.net.stats_vector()))

    def with_head(self, task: int) -> DenseNet:
        head, stats = self.tasks[task]
        with torch.no_grad():
            self.net.layers[-1].copy_(head)
        self.net.net.load_stats(stats)
        return self.net
