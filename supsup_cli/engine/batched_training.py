"""Several tasks' masks learned in one batched step: stacked scores, one batched matrix multiply per layer.

On a GPU a LeNet step is launch-bound, so T masks cost about what one does. Each task keeps its own
seed, initial scores, batch order and data, and its gradient is its own loss's alone (the step
minimizes the sum of the tasks' losses), so the masks are the ones `train_masks` gives each task
alone, as far as the BLAS computes a batched product slice by slice as it computes a single one:
bit for bit on the CPU with one thread (tests/test_batched_training.py). With two threads it may
not (seen at batch 32, and on FC 1024-1024 at batch 128): the last bits of some scores, then a few
mask bits, differ.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from supsup_cli.engine import distributed
from supsup_cli.engine.masks import binarize, threshold_masked_weight
from supsup_cli.engine.models import MaskedNet
from supsup_cli.core.registry import ArchSpec
from supsup_cli.engine.training import Progress, TaskTensors, TrainConfig, TrainedMask, batches, initial_scores


def stacking_refusal(spec: ArchSpec, config: TrainConfig, init: str = "kaiming") -> str | None:
    """Why these tasks cannot be learned in one batched step, or None if they can."""
    if spec.family != "mlp" or spec.mask_on != "weights" or spec.norm == "batch":
        return f"{spec.name} is not a weight-masked MLP without batch norm"
    if config.top_k:
        return "top-k masks (--density, --density-budget er) are chosen per task"
    if init != "kaiming":
        return "--init mean starts each task from the masks committed before it"
    if distributed.world_size() > 1:
        return "under torchrun each rank already trains one task's shard"
    return None


def train_masks_together(net: MaskedNet, tasks: Sequence[TaskTensors], configs: Sequence[TrainConfig],
                         progress: Progress | None = None) -> list[TrainedMask]:
    """Train one threshold mask per task, all in the same steps; configs differ only in their seed.
    Each mask's `seconds` is its share of the time."""
    configs = [config.resolved(net.spec) for config in configs]
    if len({(c.steps, c.batch_size, c.lr, c.optimizer, c.schedule) for c in configs}) > 1:
        raise ValueError("tasks trained together share steps, batch size and optimizer; only seeds differ")
    refusal = stacking_refusal(net.spec, configs[0])
    if refusal is not None:
        raise ValueError(f"tasks cannot be trained together: {refusal}")
    batch_sizes = {min(configs[0].batch_size, len(task.targets)) for task in tasks}
    if len(batch_sizes) > 1:
        raise ValueError("tasks trained together need batches of one size (as many examples each)")

    generators = [torch.Generator().manual_seed(config.seed) for config in configs]
    initial = [initial_scores(net, config, None, generator) for config, generator in zip(configs, generators)]
    device = net.base()[0].device
    scores = [torch.nn.Parameter(torch.stack([task_scores[site] for task_scores in initial]).to(device))
              for site in range(len(initial[0]))]
    optimizer = configs[0].make_optimizer(scores)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, configs[0].steps)) \
        if configs[0].schedule == "cosine" else None
    (batch_size,) = batch_sizes
    streams = [batches(len(task.targets), batch_size, generator, device) for task, generator in zip(tasks, generators)]
    net.train()

    started = time.perf_counter()
    losses = torch.zeros(len(tasks))
    for done in range(1, configs[0].steps + 1):
        indices = [next(stream) for stream in streams]
        x = torch.stack([task.inputs(index, generator) for task, index, generator in zip(tasks, indices, generators)])
        targets = torch.stack([task.targets[index] for task, index in zip(tasks, indices)])
        logits = net.run_stacked(x, [threshold_masked_weight(s, w) for s, w in zip(scores, net.base())])
        # Per task the mean over its batch, as F.cross_entropy alone takes it; summed, each task's
        # scores get their own loss's gradient and nothing from the others'.
        per_example = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        losses = per_example.view(len(tasks), -1).mean(1)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        if progress is not None and (done % 20 == 0 or done == configs[0].steps):
            progress(done, losses.mean().item(), (logits.argmax(2) == targets).float().mean().item())
    share = (time.perf_counter() - started) / len(tasks)

    return [TrainedMask([binarize(s[t].detach(), None).cpu() for s in scores], share, losses[t].item(),
                        net.stats_vector()) for t in range(len(tasks))]
