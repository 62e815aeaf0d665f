"""Speed measured in one run: a masked training step against a dense step of the same network."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any

import torch

from supsup_cli import inference
from supsup_cli.models import DenseNet, MaskedNet
from supsup_cli.registry import ArchSpec, mask_sites
from supsup_cli.training import Learner, TaskTensors, TrainConfig, batches, initial_scores, masked_logits


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
    config = config.resolved(net.spec)
    densities = config.site_densities(net.spec)
    generator = torch.Generator().manual_seed(config.seed)
    device = task.images.device
    scores = [s.to(device).requires_grad_() for s in initial_scores(net, config, None, generator)]
    masked = Learner(lambda x: masked_logits(net, x, scores, densities), scores, config)
    dense_net = DenseNet(net.spec, [w.cpu().numpy() for w in net.base()]).to(device)
    dense = Learner(dense_net, list(dense_net.parameters()), config)
    stream = batches(len(task.targets), config.batch_size, generator, device)
    block = [next(stream) for _ in range(steps)]

    def masked_step(index: torch.Tensor) -> None:
        masked.step(task.inputs(index), task.targets[index])

    def dense_step(index: torch.Tensor) -> None:
        dense.step(task.inputs(index), task.targets[index])

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


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process: device memory on CUDA, resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def random_packed_masks(spec: ArchSpec, tasks: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    """`tasks` random half-density masks, bit-packed: for timing, never for accuracy."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (tasks, (site.numel + 7) // 8), dtype=torch.uint8, generator=generator).to(device)
            for site in mask_sites(spec)]


def inference_rates(sup: inference.Superposition, x: torch.Tensor, singles: int = 4) -> dict[str, Any]:
    """Images per second of GG and of each inference method (entropy), each input on its own: all of
    x in one call, and (under "batch_1") `singles` images given one at a time, as `supsup infer img`."""
    rates: dict[str, Any] = {"batch_1": {}}
    for method in ("one-shot", "binary"):
        _synchronize(x.device)
        started = time.perf_counter()
        for row in range(min(singles, x.shape[0])):
            inference.infer_tasks(sup, x[row : row + 1], method, "entropy")
        _synchronize(x.device)
        rates["batch_1"][method] = min(singles, x.shape[0]) / (time.perf_counter() - started)
    _synchronize(x.device)
    started = time.perf_counter()
    inference.task_logits(sup, x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
    _synchronize(x.device)
    rates["gg"] = x.shape[0] / (time.perf_counter() - started)
    for method in inference.METHODS:
        started = time.perf_counter()
        inference.infer_tasks(sup, x, method, "entropy")
        _synchronize(x.device)
        rates[method] = x.shape[0] / (time.perf_counter() - started)
    return rates
