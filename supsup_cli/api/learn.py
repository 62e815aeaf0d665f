"""learn-task: train one mask on a task's data and commit it to an archive, or commit nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supsup_cli import archive
from supsup_cli.core import choices, prng
from supsup_cli.engine import distributed, masks as masks_
from supsup_cli.archive import maskcodec
from supsup_cli.data.arrays import ArrayData
from supsup_cli.data.tasks import TaskExamples, load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import DuplicateTask, InvalidArgument
from supsup_cli.api.base import base_network
from supsup_cli.engine.models import MaskedNet, real_outputs
from supsup_cli.archive.records import TaskRecord, check_name, mask_sha256
from supsup_cli.core.registry import ArchSpec
from supsup_cli.api.hopfield_store import reservoir_of, stored_reservoir
from supsup_cli.engine.batched_training import stacking_refusal, train_masks_together
from supsup_cli.engine.training import Progress, TrainConfig, TrainedMask, accuracy, task_tensors, train_masks


@dataclass(frozen=True)
class LearnRequest:
    path: Path
    data: TaskData | ArrayData  # ArrayData: the examples are in memory (`examples`)
    config: TrainConfig
    name: str | None = None
    init: str = "kaiming"  # or "mean": start from the running mean of the archive's masks
    device: str = "auto"
    data_dir: Path | None = None
    examples: tuple[TaskExamples, TaskExamples | None] | None = None  # in memory: (train, test or None)
    module: Any = None  # the torch module of an archive over one's own module


@dataclass(frozen=True)
class LearnedTask:
    """A task committed by learn-task."""

    index: int
    name: str
    test_accuracy: float | None  # None: learned from arrays without test arrays
    train_seconds: float
    steps: int
    density: float  # fraction of kept weights over all sites
    data: dict[str, Any]
    device: str
    ranks: int

    def to_dict(self) -> dict[str, Any]:
        """What `supsup learn-task --json` prints for the task (before rounding)."""
        return asdict(self)

    def __repr__(self) -> str:
        accuracy = "-" if self.test_accuracy is None else f"{self.test_accuracy:.4f}"
        return (f"LearnedTask(index={self.index}, name={self.name!r}, test_accuracy={accuracy}, "
                f"train_seconds={self.train_seconds:.1f}, steps={self.steps}, density={self.density:.3f})")


def check_request(request: LearnRequest) -> None:
    """The ranges and conflicts of learning's parameters, named as Python names them (the command line
    shows its flags instead: cli.app)."""
    config = request.config
    if config.steps < 1:
        raise InvalidArgument(f"`steps` must be at least 1, got {config.steps}")
    if config.epochs is not None and config.epochs < 1:
        raise InvalidArgument(f"`epochs` must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise InvalidArgument(f"`batch_size` must be at least 1, got {config.batch_size}")
    if config.lr is not None and not config.lr > 0:
        raise InvalidArgument(f"`lr` must be positive, got {config.lr}")
    if config.optimizer not in (None, *choices.OPTIMIZERS):
        raise InvalidArgument(f"`optimizer` must be {choices.listed(choices.OPTIMIZERS)}, got {config.optimizer!r}")
    if config.budget not in choices.DENSITY_BUDGETS:
        raise InvalidArgument(f"`density_budget` must be {choices.listed(choices.DENSITY_BUDGETS)}, "
                              f"got {config.budget!r}")
    if config.density is not None and not 0 < config.density <= 1:
        raise InvalidArgument(f"`density` must be in (0, 1], got {config.density}")
    if config.budget == "er":
        if config.er_scale is None or not config.er_scale > 0:
            raise InvalidArgument("`density_budget` er sets each layer's density from `er_scale` S (the paper: "
                                  "1, 2, 4, 8, 16 or 32): give a positive `er_scale`")
        if config.density is not None:
            raise InvalidArgument("`density` has no effect with `density_budget` er: `er_scale` sets each layer's "
                                  "density")
    elif config.er_scale is not None:
        raise InvalidArgument("`er_scale` has no effect without `density_budget` er")
    if request.init not in choices.INITS:
        raise InvalidArgument(f"`init` must be {choices.listed(choices.INITS)}, got {request.init!r}")
    if request.name is not None:
        try:
            check_name(request.name)
        except ValueError as exc:
            raise InvalidArgument(f"`name`: {exc}") from None


def learn_task(request: LearnRequest, progress: Progress | None = None) -> LearnedTask | None:
    """Train and commit one task. Under torchrun every rank trains; rank 0 alone evaluates and commits
    (the other ranks return None)."""
    results = list(learn_tasks([request], progress))
    return results[0] if results else None


# Grouped commits: a commit rewrites the whole archive (copy-on-write), so at thousands of tasks it
# costs a good part of a task's training; committing once the training since the last commit is this
# many times that commit's own duration keeps commits within 1/COMMIT_RATIO of the time.
COMMIT_RATIO = 20


def learn_tasks(requests: Sequence[LearnRequest], progress: Progress | None = None,
                started: Callable[[int, LearnRequest, int], None] | None = None,
                together: int = 1, grouped_commits: bool = False) -> Iterator[LearnedTask]:
    """Train and commit tasks one after another, each committed as soon as it is learned (a crash
    loses at most the tasks in training); yields each committed task's report. The network and the
    datasets are built once for the whole sequence. `started(position, request, steps)` announces each
    task and the steps it will train (--epochs: known once its examples are).
    With `together` > 1, that many tasks at a time train in one batched step (batched_training), with
    the masks they would get one at a time.
    With `grouped_commits`, learned tasks are committed together once the training since the last
    commit has taken COMMIT_RATIO times as long as that commit did (a kill -9 loses that much
    training; an exception, Ctrl-C included, commits them first). The masks, seeds and indices are
    those of one commit a task."""
    for request in requests:
        check_request(request)
    if len({(r.path, r.device) for r in requests}) > 1:
        raise InvalidArgument("tasks learned in one call share one archive and one device")
    if together < 1:
        raise InvalidArgument(f"`tasks_per_step` must be at least 1, got {together}")
    if not requests:
        return
    # --init mean starts from the masks committed before: each task must be committed before the next
    grouped = grouped_commits and all(request.init != "mean" for request in requests)
    with distributed.session(requests[0].device) as device:
        nets: dict[str, MaskedNet] = {}
        pending = _Pending(nets, device)
        try:
            for first in range(0, len(requests), together):
                chunk = requests[first : first + together]
                prepared: list[_Prepared] = []
                for request in chunk:
                    prepared.append(_prepare(request, device, nets, pending.tasks() + prepared))
                for position, (request, task) in enumerate(zip(chunk, prepared), start=first):
                    if started is not None:
                        started(position, request, task.config.steps)
                shown = progress if distributed.is_leader() else None
                if len(chunk) == 1:
                    (task,) = prepared
                    trained = [train_masks(nets[task.weights_digest], task_tensors(task.train, task.spec, device),
                                           task.config, task.previous_mean, shown)]
                else:
                    trained = _train_together(prepared, nets, device, shown)
                if not distributed.all_succeeded() or not distributed.is_leader():
                    continue
                pending.add(prepared, trained)
                if not grouped or pending.due():
                    yield from pending.commit()
            yield from pending.commit()
        finally:
            pending.commit()  # an exception, or a consumer that stopped early: what was learned is kept


class _Pending:
    """Learned tasks not committed yet, and when to commit them (learn_tasks' grouped commits)."""

    def __init__(self, nets: dict[str, MaskedNet], device: torch.device) -> None:
        self.nets, self.device = nets, device
        self.learned: list[tuple[_Prepared, TrainedMask]] = []
        self.last_commit_seconds = 0.0

    def tasks(self) -> list[_Prepared]:
        return [task for task, _ in self.learned]

    def add(self, tasks: Sequence[_Prepared], trained: Sequence[TrainedMask]) -> None:
        self.learned += zip(tasks, trained)

    def due(self) -> bool:
        return sum(mask.seconds for _, mask in self.learned) >= COMMIT_RATIO * self.last_commit_seconds

    def commit(self) -> list[LearnedTask]:
        learned, self.learned = self.learned, []
        if not learned:
            return []
        started = time.perf_counter()
        committed = _commit_learned(learned, self.nets, self.device)
        self.last_commit_seconds = time.perf_counter() - started
        return committed


@dataclass(frozen=True)
class _Prepared:
    """A task ready to train: its name, seed and examples, and the archive's network."""

    request: LearnRequest
    spec: ArchSpec
    weights_digest: str
    name: str
    config: TrainConfig  # the request's, with the task's seed
    previous_mean: list[torch.Tensor] | None
    train: TaskExamples
    test: TaskExamples | None


def _prepare(request: LearnRequest, device: torch.device, nets: dict[str, MaskedNet],
             before: Sequence[_Prepared]) -> _Prepared:
    """`before`: tasks of the same batched step, to be committed just ahead of this one."""
    with archive.Archive(request.path) as current:
        spec, weights_digest = current.spec, current.weights_sha256
        if weights_digest not in nets:
            nets.clear()
            nets[weights_digest] = base_network(current, request.module).to(device)
        name = request.name or request.data.default_name()
        if any(task.name == name for task in current.tasks) or any(task.name == name for task in before):
            raise DuplicateTask(f"{request.path}: a task named {name!r} already exists (choose another --name)")
        seed = prng.task_seed(current.seed, len(current.tasks) + len(before), name, request.config.seed)
        previous_mean = running_mean(current, device) if request.init == "mean" else None
    train, test = load_examples(request, spec)
    config = replace(request.config, seed=seed).for_examples(len(train.labels))
    return _Prepared(request, spec, weights_digest, name, config, previous_mean, train, test)


def _train_together(prepared: Sequence[_Prepared], nets: dict[str, MaskedNet], device: torch.device,
                    progress: Progress | None) -> list[TrainedMask]:
    spec = prepared[0].spec
    refusal = stacking_refusal(spec, prepared[0].request.config, prepared[0].request.init)
    if refusal is not None:
        raise InvalidArgument(f"--tasks-per-step: tasks cannot share a step here: {refusal}")
    tasks = [task_tensors(task.train, spec, device) for task in prepared]
    if len({len(task.targets) for task in tasks}) > 1:
        raise InvalidArgument("--tasks-per-step: tasks that share a step need as many training examples each")
    return train_masks_together(nets[prepared[0].weights_digest], tasks, [task.config for task in prepared], progress)


def _commit_learned(learned: Sequence[tuple[_Prepared, TrainedMask]], nets: dict[str, MaskedNet],
                    device: torch.device) -> list[LearnedTask]:
    """Evaluate and commit learned tasks, all in one commit."""
    records = [(task, mask, _record(task, mask, nets[task.weights_digest], device)) for task, mask in learned]
    path, digest = learned[0][0].request.path, learned[0][0].weights_digest
    first = _commit(path, [(record, [m.numpy() for m in mask.masks], mask.stats) for _, mask, record in records],
                    digest)
    return [LearnedTask(first + offset, task.name, record.test_accuracy, mask.seconds, task.config.steps,
                        record.overall_density([m.numel() for m in mask.masks]), task.request.data.to_plain(),
                        str(device), distributed.world_size())
            for offset, (task, mask, record) in enumerate(records)]


def _record(task: _Prepared, trained: TrainedMask, net: MaskedNet, device: torch.device) -> TaskRecord:
    """The task's record: its data, classes, test accuracy, densities and how it was trained."""
    spec, test, request = task.spec, task.test, task.request
    test_accuracy = None if test is None else \
        accuracy(net, trained.masks, task_tensors(test, spec, device), real_outputs(spec, test.classes))
    return TaskRecord(
        name=task.name, data=request.data.to_plain(), classes=task.train.classes, mean=task.train.mean,
        std=task.train.std, density=tuple(float(m.float().mean()) for m in trained.masks),
        test_accuracy=test_accuracy, mask_sha256=mask_digest([m.numpy() for m in trained.masks]),
        training={**asdict(replace(task.config, seed=request.config.seed).resolved(spec)), "task_seed": task.config.seed,
                  "init": request.init,
                  "device": str(device), "ranks": distributed.world_size(), "train_seconds": round(trained.seconds, 3),
                  "final_loss": round(trained.final_loss, 6)},
    )


def _commit(path: Path, tasks: list[tuple[TaskRecord, list[np.ndarray], np.ndarray]], weights_digest: str) -> int:
    """Append the tasks in one commit; returns the first one's index. With a Hopfield reservoir, their
    masks are stored there too, in order (and only there once masks have been dropped)."""
    stored = [archive.StoredTask.of(record, masks, stats) for record, masks, stats in tasks]

    def store_in_reservoir(current: archive.Archive) -> archive.StoredReservoir:
        info = current.reservoir_info
        if info.tasks != current.index.tasks:
            raise InvalidArgument(f"{path}: tasks {info.tasks}-{current.index.tasks - 1} are not in the Hopfield "
                                  "reservoir yet; run 'supsup hopfield-store' first")
        reservoir = reservoir_of(current)
        for _, masks, _ in tasks:
            reservoir.store([torch.from_numpy(m) for m in masks])
        return stored_reservoir(reservoir, info.explicit_masks)

    return archive.append_tasks(path, lambda current: stored, weights_digest, store_in_reservoir)


def mask_digest(masks: list[np.ndarray]) -> str:
    return mask_sha256([maskcodec.pack(m) for m in masks])


def running_mean(current: archive.Archive, device: torch.device) -> list[torch.Tensor]:
    """The mean of the archive's masks per site (what --init mean starts from)."""
    if not current.tasks:
        raise InvalidArgument(f"--init mean starts from the mean of the archive's masks, and {current.path} has "
                              "none yet: learn its first task without --init mean")
    if current.reservoir_info is not None:  # masks may live only there: their mean is (mu + 1) / 2
        return [(mu + 1) / 2 for mu in reservoir_of(current).mu]
    return [masks_.packed_mean(torch.from_numpy(packed), site.numel).to(device)
            for packed, site in zip(current.packed_masks(), current.sites)]


def load_examples(request: LearnRequest, spec: ArchSpec) -> tuple[TaskExamples, TaskExamples | None]:
    """The task's training and test examples (from the dataset, or the request's arrays), checked
    against the network."""
    train, test = request.examples or (load_task(request.data, "train", request.data_dir),
                                       load_task(request.data, "test", request.data_dir))
    check_inputs(spec, train)
    check_outputs(spec, train.classes)
    return train, test


def check_inputs(spec: ArchSpec, examples: TaskExamples) -> None:
    if examples.image_shape != spec.input_shape:
        raise InvalidArgument(f"the data's images are {'x'.join(map(str, examples.image_shape))} "
                              f"(channels x height x width), {spec.name} takes {'x'.join(map(str, spec.input_shape))}")


def check_outputs(spec: ArchSpec, classes: tuple[int, ...]) -> None:
    needed = max(classes) + 1 if spec.labels == "global" else len(classes)
    if needed > spec.output_size:
        raise InvalidArgument(f"the task needs {needed} output neurons but {spec.name} has {spec.output_size}")
