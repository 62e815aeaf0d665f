"""Learning one task's supermask over the frozen network: scores, straight-through masks, RMSprop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from supsup_cli.engine import distributed, flat_training
from supsup_cli.engine.augment import crop_and_flip
from supsup_cli.data.tasks import TaskExamples
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.engine.masks import binarize, er_densities, layer_densities, straight_through, threshold_masked_weight
from supsup_cli.engine.models import MaskedNet, batches_of, normalize, real_outputs
from supsup_cli.core.registry import ArchSpec, mask_sites, weight_layers
from supsup_cli.core.weights import kaiming_constant

Progress = Callable[[int, float, float], None]  # (steps done, loss, batch accuracy)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    epochs: int | None = None  # given: steps = ceil(epochs * examples / batch size), set when the data is known
    batch_size: int = 128
    lr: float | None = None  # None: the architecture's default (see `resolved`)
    density: float | None = None  # None: threshold masks (score >= 0); else top-k, on average over sites
    seed: int = 0
    optimizer: str | None = None  # "rmsprop", "adam", or "sgd" with momentum 0.9 and weight decay 1e-4
    budget: str = "uniform"  # top-k density per site: "uniform" or "erk" (Erdos-Renyi-kernel) of `density`,
    # or "er": the paper's rule at `er_scale`
    er_scale: float | None = None
    schedule: str | None = None  # "constant" or "cosine" learning rate

    def resolved(self, spec: ArchSpec) -> "TrainConfig":
        """The paper's choices where none was made: RMSprop at 1e-4 (GN experiments); SGD at 0.1 for
        neuron masks (HopSupSup); Adam at 1e-3 with cosine decay for residual networks (GG)."""
        if spec.family == "resnet":
            optimizer, lr, schedule = "adam", 1e-3, "cosine"
        elif spec.mask_on == "neurons":
            optimizer, lr, schedule = "sgd", 0.1, "constant"
        else:
            optimizer, lr, schedule = "rmsprop", 1e-4, "constant"
        return replace(self, optimizer=self.optimizer or optimizer, lr=self.lr if self.lr is not None else lr,
                       schedule=self.schedule or schedule)

    @property
    def weight_decay(self) -> float:
        """SGD's and Adam's, as in the paper's code (HopSupSup, SplitCIFAR-100); RMSprop has none."""
        return 1e-4 if self.optimizer in ("sgd", "adam") else 0.0

    def make_optimizer(self, parameters: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.RMSprop(parameters, lr=self.lr)

    @property
    def top_k(self) -> bool:
        """Top-k masks (edge-popup) rather than threshold masks (score >= 0)."""
        return self.density is not None or self.budget == "er"

    def for_examples(self, count: int) -> "TrainConfig":
        """With `epochs`: the steps that make that many passes over `count` examples."""
        if self.epochs is None:
            return self
        return replace(self, steps=max(1, math.ceil(self.epochs * count / min(self.batch_size, count))))

    def site_densities(self, spec: ArchSpec) -> list[float | None]:
        sites = mask_sites(spec)
        if self.budget == "er":
            if spec.mask_on != "weights":
                raise InvalidArgument(f"--density-budget er is a budget of weights; {spec.name} masks neurons")
            return er_densities([site.shape for site in sites], self.er_scale)
        if self.density is None:
            return [None] * len(sites)
        return layer_densities([site.shape for site in sites], self.density, self.budget)


@dataclass
class TaskTensors:
    """A task's examples on the training device: uint8 images and output-neuron targets."""

    images: torch.Tensor
    targets: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False  # random crops and flips when training (natural images)

    def inputs(self, index: torch.Tensor | slice, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalized inputs; augmented when a generator is given and the task's data is augmented."""
        images = self.images[index]
        if self.augment and generator is not None:
            images = crop_and_flip(images, generator)
        return normalize(images, self.mean, self.std)


@dataclass
class TrainedMask:
    masks: list[torch.Tensor]  # bool, one per site, on the CPU
    seconds: float
    final_loss: float
    stats: np.ndarray  # the task's normalization statistics (empty for MLPs)


def initial_scores(net: MaskedNet, config: TrainConfig, previous_mean: Sequence[torch.Tensor] | None,
                   generator: torch.Generator) -> list[torch.Tensor]:
    """Kaiming-uniform scores (neuron masks: zeros, i.e. all kept), or transfer from earlier tasks.

    Transfer (`previous_mean`: the running mean of the earlier masks, in [0, 1]) follows the paper's
    appendix D.5: the mean times the layer's Kaiming fan-in constant sqrt(2 / fan_in), the
    magnitude of its base weights, so that the scores' norm is that of a fresh start. That is for
    top-k masks, which rank scores; threshold masks keep scores >= 0, so their mean is centred
    first (2 x mean - 1): an edge kept by most earlier tasks starts kept. A 1e-3 x bound jitter
    breaks ties. (The paper's code averages the earlier tasks' trained scores instead, which an
    archive does not keep.)
    """
    scores = []
    for index, site in enumerate(mask_sites(net.spec)):
        bound = _score_bound(net, index)
        fresh = (torch.rand(site.shape, generator=generator) * 2 - 1) * bound
        if previous_mean is None:
            start = fresh if net.spec.mask_on == "weights" else torch.zeros(site.shape)
        else:
            mean = previous_mean[index].reshape(site.shape).float().cpu()
            start = _transfer_scale(net, index) * (mean if config.top_k else 2 * mean - 1) + 1e-3 * fresh
        scores.append(start)
    return scores


def _transfer_scale(net: MaskedNet, index: int) -> float:
    if net.spec.mask_on == "neurons":
        return 1.0
    return float(kaiming_constant(weight_layers(net.spec)[index]))


def _score_bound(net: MaskedNet, index: int) -> float:
    if net.spec.mask_on == "neurons":
        return 1.0
    return 1.0 / math.sqrt(weight_layers(net.spec)[index].fan_in)


def batches(count: int, batch_size: int, generator: torch.Generator,
            device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Indices of shuffled epochs, forever; the last partial batch of an epoch is dropped. Each epoch's
    order is drawn on the CPU (same seed, same batches, on any device) and moved to `device` once."""
    per_epoch = max(1, count // batch_size)
    while True:
        order = torch.randperm(count, generator=generator).to(device)
        for start in range(0, per_epoch * batch_size, batch_size):
            yield order[start : start + batch_size]


def masked_logits(net: MaskedNet, x: torch.Tensor, scores: Sequence[torch.Tensor],
                  densities: Sequence[float | None]) -> torch.Tensor:
    """The output with the straight-through masks of `scores` (threshold masks on weights: fused)."""
    if net.spec.mask_on == "weights" and all(d is None for d in densities):
        return net.run(x, [threshold_masked_weight(s, w) for s, w in zip(scores, net.base())])
    return net(x, [straight_through(s, d) for s, d in zip(scores, densities)])


class _Scored(torch.nn.Module):
    """Scores as a module's only parameters (the network stays outside it: its weights are not
    parameters nor buffers to synchronize), so that DistributedDataParallel can average gradients."""

    def __init__(self, logits: Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor],
                 scores: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.logits = logits
        self.scores = torch.nn.ParameterList(torch.nn.Parameter(s) for s in scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x, list(self.scores))


class Learner:
    """Some parameters, their optimizer and learning-rate schedule: one step of cross-entropy on a
    batch. The one place where training zeroes, backpropagates and steps (supermasks, baselines,
    --auto and the speed probe alike)."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], parameters: Sequence[torch.Tensor],
                 config: TrainConfig) -> None:
        self.forward = forward
        self.optimizer = config.make_optimizer(parameters)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, max(1, config.steps)) \
            if config.schedule == "cosine" else None
        self.steps = 0

    def step(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.forward(x)
        loss = F.cross_entropy(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        self.steps += 1
        return loss, logits


class MaskTrainer(Learner):
    """One mask's scores and their optimizer, trained on whatever batches it is given (under torchrun,
    each rank on its shard, gradients averaged)."""

    def __init__(self, net: MaskedNet, config: TrainConfig, scores: Sequence[torch.Tensor]) -> None:
        device = net.base()[0].device
        config = config.resolved(net.spec)
        self.net, self.config = net, config
        self.densities = config.site_densities(net.spec)
        scored = _Scored(lambda x, s: masked_logits(net, x, s, self.densities), [s.to(device) for s in scores])
        self.scores = list(scored.scores)
        super().__init__(distributed.data_parallel(scored, device), self.scores, config)

    def masks(self) -> list[torch.Tensor]:
        """The current binary mask per site (bool, on the CPU)."""
        return [binarize(s.detach(), d).cpu() for s, d in zip(self.scores, self.densities)]


Step = Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def fit(steps: int, stream: Iterator[torch.Tensor], step: Step, progress: Progress | None = None) -> tuple[float, float]:
    """`steps` steps, each `step(i, batch index)` -> (loss, logits, targets), with progress every 20
    steps and at the end. Returns the seconds spent and the last loss."""
    started = time.perf_counter()
    loss = torch.zeros(())
    for done in range(1, steps + 1):
        loss, logits, targets = step(done - 1, next(stream))
        if progress is not None and (done % 20 == 0 or done == steps):
            progress(done, loss.item(), (logits.argmax(1) == targets).float().mean().item())
    return time.perf_counter() - started, loss.item()


def scores_of_mask(net: MaskedNet, masks: Sequence[torch.Tensor], config: TrainConfig) -> list[torch.Tensor]:
    """Scores that give back exactly `masks`, to go on training a stored mask: +-bound (top-k: bound or 0)."""
    scores = []
    for index, mask in enumerate(masks):
        kept = mask.float()
        scores.append(_score_bound(net, index) * (kept if config.top_k else 2 * kept - 1))
    return scores


def mask_trainer(net: MaskedNet, config: TrainConfig, scores: Sequence[torch.Tensor],
                 augment: bool = False) -> "MaskTrainer | flat_training.FlatMaskTrainer":
    """A trainer of one mask from these scores: the flat one where it applies (the same masks,
    faster), else autograd's. Both have `step(x, targets)`, `masks()` and `steps`."""
    resolved = config.resolved(net.spec)
    if flat_training.flat_refusal(net.spec, resolved, augment) is None:
        return flat_training.FlatMaskTrainer(net, scores, resolved.lr)
    return MaskTrainer(net, config, scores)


def train_masks(net: MaskedNet, task: TaskTensors, config: TrainConfig,
                previous_mean: Sequence[torch.Tensor] | None = None, progress: Progress | None = None) -> TrainedMask:
    """Train one task's mask (under torchrun, each rank on its shard of every batch)."""
    generator = torch.Generator().manual_seed(config.seed)
    trainer = mask_trainer(net, config, initial_scores(net, config, previous_mean, generator), task.augment)
    batch_size = min(config.batch_size, len(task.targets))
    stream = batches(len(task.targets), batch_size, generator, task.images.device)
    net.reset_stats()
    net.train()
    inputs = None if isinstance(trainer, MaskTrainer) or len(task.mean) != 1 else \
        flat_training.FlatInputs(task.images, task.mean, task.std, batch_size)

    def step(_: int, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = distributed.shard(batch)
        x = inputs(index) if inputs is not None else task.inputs(index, generator)
        return *trainer.step(x, task.targets[index]), task.targets[index]

    seconds, final_loss = fit(config.steps, stream, step, progress)
    return TrainedMask(trainer.masks(), seconds, final_loss, net.stats_vector())


@torch.no_grad()
def accuracy(net: MaskedNet, masks: Sequence[torch.Tensor], task: TaskTensors, outputs: Sequence[int],
             batch_size: int = 2000) -> float:
    """Fraction of the task's examples whose arg-max over its real outputs is the target."""
    device = task.images.device
    float_masks = [m.to(device=device, dtype=torch.float32) for m in masks]
    positions = torch.tensor(outputs, device=device)
    net.eval()  # residual networks: the task's running statistics, not the batch's
    correct = 0
    for index in batches_of(torch.arange(len(task.targets), device=device), batch_size):
        logits = net(task.inputs(index), float_masks)[:, positions]
        correct += (positions[logits.argmax(1)] == task.targets[index]).sum().item()
    return correct / max(1, len(task.targets))


def task_tensors(examples: TaskExamples, spec: ArchSpec, device: torch.device) -> TaskTensors:
    """Examples on the device, each label replaced by the output neuron that stands for it."""
    outputs = real_outputs(spec, examples.classes)
    lookup = torch.full((max(examples.classes) + 1,), -1, dtype=torch.int64)
    lookup[list(examples.classes)] = torch.tensor(outputs)
    targets = lookup[torch.tensor(examples.labels)]
    return TaskTensors(torch.tensor(examples.images, device=device), targets.to(device), examples.mean, examples.std,
                       examples.augment)
