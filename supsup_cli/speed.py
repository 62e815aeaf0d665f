"""Speed measured in one run: a masked training step against a dense step of the same network."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from supsup_cli.models import DenseNet, MaskedNet
from supsup_cli.training import TaskTensors, TrainConfig, batches, initial_scores, masked_logits


@dataclass(frozen=True)
class StepTimes:
    masked_seconds: float  # per training step
    dense_seconds: float

    @property
    def ratio(self) -> float:
        return self.masked_seconds / self.dense_seconds


def training_step_times(net: MaskedNet, task: TaskTensors, config: TrainConfig, steps: int = 60,
                        rounds: int = 5) -> StepTimes:
    """Alternate blocks of masked and dense steps on the same batches; keep each one's best block."""
    generator = torch.Generator().manual_seed(config.seed)
    device = task.images.device
    scores = [s.to(device).requires_grad_() for s in initial_scores(net, config, None, generator)]
    masked_optimizer = torch.optim.RMSprop(scores, lr=config.lr)
    dense = DenseNet(net.spec, [w.cpu().numpy() for w in net.base()]).to(device)
    dense_optimizer = torch.optim.RMSprop(dense.parameters(), lr=config.lr)
    stream = batches(len(task.targets), config.batch_size, generator)
    block = [next(stream).to(device) for _ in range(steps)]

    def masked_step(index: torch.Tensor) -> None:
        logits = masked_logits(net, task.inputs(index), scores, config.density)
        masked_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(logits, task.targets[index]).backward()
        masked_optimizer.step()

    def dense_step(index: torch.Tensor) -> None:
        logits = dense(task.inputs(index))
        dense_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(logits, task.targets[index]).backward()
        dense_optimizer.step()

    best = {masked_step: float("inf"), dense_step: float("inf")}
    for _ in range(rounds):
        for step in (masked_step, dense_step):
            _synchronize(device)
            started = time.perf_counter()
            for index in block:
                step(index)
            _synchronize(device)
            best[step] = min(best[step], (time.perf_counter() - started) / steps)
    return StepTimes(best[masked_step], best[dense_step])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
