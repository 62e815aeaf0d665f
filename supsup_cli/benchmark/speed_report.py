"""The speed section of a run's report: training and inference rates, a masked step against a dense one."""

from __future__ import annotations

from typing import Any

import torch

from supsup_cli.core import registry
from supsup_cli.benchmark import speed
from supsup_cli.benchmark.evaluation import Timed
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import MaskedNet
from supsup_cli.engine.training import TrainConfig
from supsup_cli.benchmark.config import BenchmarkConfig
from supsup_cli.benchmark.run import train_tensors


def run_speed(net: MaskedNet, first: TaskData, config: BenchmarkConfig, device: torch.device,
           train_seconds: list[float], tasks: int, steps: int, timers: dict[str, Timed]) -> dict[str, Any]:
    times = None if net.spec.family == registry.MODULE else _step_times(net, first, config, device, steps)
    trained_images = len(train_seconds) * steps * TrainConfig().batch_size
    return {
        "train_images_per_second": trained_images / sum(train_seconds) if train_seconds else None,
        "train_seconds_per_task": sum(train_seconds) / len(train_seconds) if train_seconds else None,
        "masked_step_ms": None if times is None else times.masked_seconds * 1e3,
        "dense_step_ms": None if times is None else times.dense_seconds * 1e3,  # a module: no dense yardstick
        "masked_to_dense_step_ratio": None if times is None else times.ratio,
        "inference_tasks": tasks,
        "inference_images_per_second": {name: timer.per_second for name, timer in timers.items()},
        "peak_memory_mib": speed.peak_memory_mib(device),
    }


def _step_times(net: MaskedNet, first: TaskData, config: BenchmarkConfig, device: torch.device,
                steps: int) -> speed.StepTimes:
    """A masked training step against the same network's dense step."""
    # A residual network's step costs about a hundred of an MLP's: fewer of them make the same estimate.
    steps_per_block, blocks = (60, 5) if net.spec.family == "mlp" else (5, 3)
    steps_per_block = min(steps_per_block, max(5, steps))  # never ten times the training it reports on
    first_task = train_tensors(first, net.spec, device, config.data_dir)
    return speed.training_step_times(net, first_task, TrainConfig(seed=config.seed), steps_per_block, blocks)
