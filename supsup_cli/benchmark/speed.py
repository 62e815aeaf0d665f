"""Speed measured in one run: a masked training step against a dense step of the same network."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supsup_cli import archive
from supsup_cli.engine import inference, superposition
from supsup_cli.archive.records import TaskRecord
from supsup_cli.engine.models import DenseNet, MaskedNet
from supsup_cli.core.registry import ArchSpec, mask_sites
from supsup_cli.engine.batched_training import stacking_refusal, train_masks_together
from supsup_cli.engine.training import (Learner, TaskTensors, TrainConfig, batches, initial_scores, masked_logits,
                                 train_masks)


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


@dataclass(frozen=True)
class TrainingFloor:
    """One task's training time, the best way supsup trains it, beside the time of the matrix products
    its steps need, timed as plain contiguous fp32 `torch.mm` calls in the same process."""

    steps: int
    seconds_per_task: float
    how: str  # "one task at a time" or "N tasks per step"
    one_at_a_time_seconds: float
    tasks_per_step: int
    together_seconds_per_task: float | None  # None: these masks cannot share a step
    matmul_seconds_per_task: float

    @property
    def floor_ratio(self) -> float:
        return self.seconds_per_task / self.matmul_seconds_per_task

    def to_dict(self) -> dict[str, Any]:
        return {**{key: getattr(self, key) for key in self.__dataclass_fields__}, "floor_ratio": self.floor_ratio}


def training_floor(net: MaskedNet, tasks: list[TaskTensors], config: TrainConfig, rounds: int = 2) -> TrainingFloor:
    """Train a task one at a time, then `len(tasks)` tasks in one batched step where they can share
    one; right after each, time the products of one task's steps. Best of `rounds` each."""
    config = config.resolved(net.spec)
    batch = min(config.batch_size, len(tasks[0].targets))
    together = len(tasks) if len(tasks) > 1 and stacking_refusal(net.spec, config) is None else None
    one, shared, products = float("inf"), float("inf"), float("inf")
    for round_ in range(rounds):
        one = min(one, train_masks(net, tasks[0], config).seconds)
        products = min(products, matmul_seconds(net, batch, config.steps))
        if together is not None:
            configs = [replace(config, seed=config.seed + round_ + i) for i in range(together)]
            shared = min(shared, train_masks_together(net, tasks, configs)[0].seconds)
            products = min(products, matmul_seconds(net, batch, config.steps))
    best_shared = together is not None and shared < one
    return TrainingFloor(steps=config.steps, seconds_per_task=shared if best_shared else one,
                         how=f"{together} tasks per step" if best_shared else "one task at a time",
                         one_at_a_time_seconds=one, tasks_per_step=together or 1,
                         together_seconds_per_task=shared if together is not None else None,
                         matmul_seconds_per_task=products)


def matmul_seconds(net: MaskedNet, batch: int, steps: int) -> float:
    """The matrix products of `steps` training steps of an MLP's mask at this batch: per layer the
    forward product, the weight gradient, and the input gradient of every layer but the first."""
    device = net.base()[0].device
    operands = []
    for index, weight in enumerate(net.base()):
        outputs, inputs = weight.shape
        shapes = [((batch, inputs), (inputs, outputs)), ((outputs, batch), (batch, inputs))]
        if index > 0:
            shapes.append(((batch, outputs), (outputs, inputs)))
        operands += [(torch.randn(a, device=device), torch.randn(b, device=device)) for a, b in shapes]
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        for left, right in operands:
            torch.mm(left, right)
    _synchronize(device)
    return time.perf_counter() - started


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


def inference_rates(sup: superposition.Superposition, x: torch.Tensor, singles: int = 4) -> dict[str, Any]:
    """Images per second of GG and of each inference method (entropy), each input on its own: all of
    x in one call, and (under "batch_1") `singles` images given one at a time, as `supsup infer img`."""
    rates: dict[str, Any] = {"batch_1": {}}
    for method in inference.METHODS:
        _synchronize(x.device)
        started = time.perf_counter()
        for row in range(min(singles, x.shape[0])):
            inference.infer_tasks(sup, x[row : row + 1], method, "entropy")
        _synchronize(x.device)
        rates["batch_1"][method] = min(singles, x.shape[0]) / (time.perf_counter() - started)
    _synchronize(x.device)
    started = time.perf_counter()
    superposition.task_logits(sup, x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
    _synchronize(x.device)
    rates["gg"] = x.shape[0] / (time.perf_counter() - started)
    for method in inference.METHODS:
        started = time.perf_counter()
        inference.infer_tasks(sup, x, method, "entropy")
        _synchronize(x.device)
        rates[method] = x.shape[0] / (time.perf_counter() - started)
    return rates


def contraction_gflops(sup: superposition.Superposition, x: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """GFLOP/s of One-Shot's per-input contraction over all k masks at this batch (unpacking included),
    and of a plain torch.matmul of the same shapes on ready float matrices, best of `repeats` each."""
    alpha = torch.full((sup.tasks,), 1.0 / sup.tasks, device=x.device)
    with torch.enable_grad():
        logits, inputs, pre = inference.forward_recording(sup, x, alpha)
        deltas = torch.autograd.grad(superposition.objective(logits, "entropy", sup.real).sum(), pre)
    weights = sup.net.base()
    flops = sum(2 * x.shape[0] * sup.tasks * w.numel() for w in weights)

    def contraction() -> None:
        for site, (weight, h, delta) in enumerate(zip(weights, inputs, deltas)):
            for start, stop in sup.task_chunks():
                inference.per_input_contraction(sup.masked_weights(site, start, stop), delta, h)

    # The contraction's matrix product: the input side of a layer against all c masks at once.
    operands = [(torch.randn(x.shape[0], min(w.shape), device=x.device),
                 torch.randn(min(w.shape), (stop - start) * max(w.shape), device=x.device))
                for w in weights for start, stop in sup.task_chunks()]

    def matmul() -> None:
        for left, right in operands:
            torch.matmul(left, right)

    return {name: flops / 1e9 / _best_seconds(run, x.device, repeats)
            for name, run in (("contraction", contraction), ("matmul", matmul))}


def _best_seconds(run, device: torch.device, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        run()
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def one_image_infer_seconds(spec: ArchSpec, tasks: int, image: np.ndarray, scratch: Path, device: str,
                            repeats: int = 3) -> dict[str, float]:
    """Wall time of `supsup infer ARCHIVE one.npy` in a fresh process, as a user runs it, on an archive
    of `tasks` random half-density masks: the task inferred, and given (--task 0: start-up, reading,
    one forward pass). Median of `repeats`."""
    path, image_path = scratch / f"speed-{tasks}.supsup", scratch / "one.npy"
    archive.create(path, spec, seed=0, force=True)
    rng = np.random.default_rng(0)

    def random_tasks(_: archive.Archive) -> tuple[list[archive.StoredTask], None]:
        stored = []
        for index in range(tasks):
            masks = [rng.random(site.shape) < 0.5 for site in mask_sites(spec)]
            record = TaskRecord(name=f"random-{index}", data={"dataset": "mnist", "permute": index},
                                classes=tuple(range(10)), mean=(0.1307,), std=(0.3081,),
                                density=tuple(float(m.mean()) for m in masks))
            stored.append(archive.StoredTask.of(record, masks))
        return stored, None

    archive.rewrite(path, random_tasks)
    np.save(image_path, image[None])
    seconds = {}
    for label, extra in (("inferred", []), ("task_given", ["--task", "0"])):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "supsup_cli", "infer", str(path), str(image_path), "--device",
                            device, *extra], check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        seconds[label] = statistics.median(times)
    path.unlink()
    return seconds
