"""learn-task --auto (scenario NNs): a stream without task ids; masks are allocated when uncertain."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from supsup_cli import archive
from supsup_cli.engine import distributed, masks as masks_
from supsup_cli.core import prng
from supsup_cli.api.base import base_network
from supsup_cli.engine.allocation import EPSILON, MIN_CANDIDATES, Candidates, padding_masks
from supsup_cli.archive.records import TaskRecord, unique_name
from supsup_cli.data.tasks import TaskExamples
from supsup_cli.core.errors import ConcurrentChange, DuplicateTask, InvalidArgument
from supsup_cli.api.learn import LearnRequest, check_request, load_examples, mask_digest, running_mean
from supsup_cli.engine.flat_training import FlatMaskTrainer
from supsup_cli.engine.masks import unpack
from supsup_cli.engine.models import MaskedNet, real_outputs
from supsup_cli.engine.training import (MaskTrainer, Progress, TrainConfig, accuracy, batches, fit, initial_scores,
                                 mask_trainer, scores_of_mask, task_tensors)


@dataclass
class _Candidate:
    """A mask the --auto run may train: a committed task, or one allocated during the run."""

    task: int | None  # the committed task's index; None for a new mask
    trainer: MaskTrainer | FlatMaskTrainer | None = None
    masks: list[torch.Tensor] = field(default_factory=list)  # once trained: its bits, and then
    test_accuracy: float | None = None
    committed_as: tuple[str, int] | None = None  # (name, index) once committed


@dataclass
class _Stream:
    """What every decision of one --auto call looks at: the network, the masks committed before the
    call (bit-packed), untrained padding masks, the real outputs, and the rules."""

    net: MaskedNet
    committed: list[torch.Tensor]
    candidates: Candidates  # the committed masks as decisions weigh them
    padding: list[torch.Tensor]
    real: list[int]
    config: TrainConfig
    epsilon: float
    max_masks: int | None
    previous_mean: list[torch.Tensor] | None  # --init mean: where new masks start


def learn_auto(request: LearnRequest, decide_every: int = 100, epsilon: float = EPSILON,
               max_masks: int | None = None, progress: Progress | None = None,
               notes: list[str] | None = None) -> dict[str, Any] | None:
    """learn-task --auto: no task id; every `decide_every` batches, keep a mask or allocate one.

    Under torchrun every rank decides alike (on the whole batch) and trains on its shard; rank 0
    alone evaluates and commits (the other ranks return None)."""
    check_request(request)
    if decide_every < 1 or not epsilon > 0 or (max_masks is not None and max_masks < 1):
        raise InvalidArgument("`decide_every` and `max_masks` must be at least 1, `epsilon` positive")
    with distributed.session(request.device) as device:
        leader = distributed.is_leader()
        return _learn_auto(request, device, decide_every, epsilon, max_masks, progress if leader else None,
                           notes if leader else None)


def _learn_auto(request: LearnRequest, device: torch.device, decide_every: int, epsilon: float,
                max_masks: int | None, progress: Progress | None, notes: list[str] | None) -> dict[str, Any] | None:
    with archive.Archive(request.path) as current:
        spec, records = current.spec, current.tasks
        weights_digest = current.weights_sha256
        if request.name is not None and any(task.name == request.name for task in records):
            raise DuplicateTask(f"{request.path}: a task named {request.name!r} already exists")
        if spec.mask_on != "weights" or spec.family == "resnet" or spec.norm == "running":
            raise InvalidArgument(f"--auto infers tasks by superposition over masks on weights, without statistics "
                                  f"per task (batch norm); {spec.name} is not such a network")
        net = base_network(current, request.module).to(device)
        committed = [torch.from_numpy(p).to(device) for p in current.packed_masks()]
        previous_mean = running_mean(current, device) if request.init == "mean" else None
        stream_seed = prng.task_seed(current.seed, len(records), request.name or request.data.default_name(),
                                     request.config.seed)
    train, test = load_examples(request, spec)
    config = replace(request.config, seed=stream_seed)  # batch order; new masks derive theirs from it
    padding = [p.to(device) for p in padding_masks(net, config, MIN_CANDIDATES)]
    stream = _Stream(net, committed, Candidates(net, committed), padding,
                     sorted({o for r in records for o in real_outputs(spec, r.classes)}
                            | set(real_outputs(spec, train.classes))),
                     config, epsilon, max_masks, previous_mean)
    pool = [_Candidate(task) for task in range(len(records))]
    tensors = task_tensors(train, spec, device)
    generator = torch.Generator().manual_seed(stream_seed)
    batch_stream = batches(len(tensors.targets), min(config.batch_size, len(tensors.targets)), generator, device)
    decisions: list[tuple[int, _Candidate, dict[str, Any]]] = []

    def step(index: int, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = tensors.inputs(batch, generator), tensors.targets[batch]
        if index % decide_every == 0:
            decisions.append((index, *_decide(stream, pool, x)))
            if decisions[-1][2]["action"] == "reuse-budget" and notes is not None:
                notes.append(f"--max-masks {max_masks} reached at step {index}: training the closest mask "
                             f"instead of allocating a new one")
        part = distributed.shard(torch.arange(len(batch), device=device))
        return *decisions[-1][1].trainer.step(x[part], y[part]), y[part]

    seconds = fit(config.steps, batch_stream, step, progress)[0]
    if not distributed.all_succeeded() or not distributed.is_leader():
        return None
    trained = [c for c in pool if c.trainer is not None]
    test_tensors = task_tensors(test, spec, device)
    for candidate in trained:
        candidate.masks = candidate.trainer.masks()
        candidate.test_accuracy = accuracy(net, candidate.masks, test_tensors, real_outputs(spec, test.classes))
    _commit_auto(request, trained, train, seconds, records, weights_digest, stream_seed)
    main = max(trained, key=lambda c: c.trainer.steps)
    return {
        "index": main.committed_as[1],
        "name": main.committed_as[0],
        "test_accuracy": main.test_accuracy,
        "train_seconds": seconds,
        "steps": config.steps,
        "density": sum(float(m.sum()) for m in main.masks) / sum(m.numel() for m in main.masks),
        "auto": True,
        "decisions": [{"step": at, **decision, "mask": chosen.committed_as[1]} for at, chosen, decision in decisions],
        "allocated": [c.committed_as[1] for c in trained if c.task is None],
        "reused": [c.task for c in trained if c.task is not None],
        "masks": len(records) + sum(c.task is None for c in trained),
        "budget_reached": any(d["action"] == "reuse-budget" for _, _, d in decisions),
        "ranks": distributed.world_size(),
        "data": request.data.to_plain(),
    }


def _decide(stream: _Stream, pool: list[_Candidate], x: torch.Tensor) -> tuple[_Candidate, dict[str, Any]]:
    """Keep training a mask that explains the batch markedly better than the others, or allocate one."""
    threshold = 1 + stream.epsilon
    if not pool:
        return _allocate(stream, pool), {"statistic": None, "threshold": threshold, "candidates": 0,
                                         "action": "allocate"}
    retrained = {c.task: _packed_rows(c, stream) for c in pool if c.task is not None and c.trainer is not None}
    new = [_packed_rows(c, stream) for c in pool if c.task is None]
    added = [torch.stack([rows[site] for rows in new]) if new else stream.padding[site][:0]
             for site in range(len(stream.padding))]
    if len(pool) < MIN_CANDIDATES:
        added = [torch.cat([a, pad[: MIN_CANDIDATES - len(pool)]]) for a, pad in zip(added, stream.padding)]
    found = stream.candidates.uncertainty(retrained, added, x, stream.real)
    decision = {"statistic": found.statistic, "threshold": threshold, "candidates": len(found.nu)}
    if found.statistic >= threshold and found.best() < len(pool):
        chosen, decision["action"] = pool[found.best()], "reuse"
    elif stream.max_masks is not None and len(pool) >= stream.max_masks:
        chosen, decision["action"] = pool[found.best(len(pool))], "reuse-budget"
    else:
        chosen, decision["action"] = _allocate(stream, pool), "allocate"
    if chosen.trainer is None:  # a committed mask: go on training it from exactly its bits
        bits = [unpack(stream.committed[s][chosen.task], w.numel()).view(w.shape)
                for s, w in enumerate(stream.net.base())]
        chosen.trainer = mask_trainer(stream.net, stream.config, scores_of_mask(stream.net, bits, stream.config))
    return chosen, decision


def _allocate(stream: _Stream, pool: list[_Candidate]) -> _Candidate:
    """A new mask: fresh scores, or (--init mean) the mean of the masks committed before this call."""
    generator = torch.Generator().manual_seed(prng.task_seed(stream.config.seed, len(pool), "auto"))
    scores = initial_scores(stream.net, stream.config, stream.previous_mean, generator)
    pool.append(_Candidate(None, mask_trainer(stream.net, stream.config, scores)))
    return pool[-1]


def _packed_rows(candidate: _Candidate, stream: _Stream) -> list[torch.Tensor]:
    """A trained candidate's current mask, bit-packed, per site."""
    return [masks_.pack(m.reshape(-1).to(p.device)) for m, p in zip(candidate.trainer.masks(), stream.padding)]


def _commit_auto(request: LearnRequest, trained: list[_Candidate], train: TaskExamples, seconds: float,
                 records: list[TaskRecord], weights_digest: str, stream_seed: int) -> None:
    """New masks become tasks; committed masks that were trained again are replaced, all at once.
    Each trained candidate learns its committed (name, index)."""

    retrains = any(candidate.task is not None for candidate in trained)

    def tasks(current: archive.Archive) -> tuple[list[archive.StoredTask], None]:
        """With retrained masks, every task (those replaced); else only the new ones, to append."""
        if current.weights_sha256 != weights_digest:
            raise ConcurrentChange(f"{request.path} now holds another base network; nothing was committed")
        stored = [current.stored_task(i) for i in range(current.index.tasks)] if retrains else []
        first = 0 if retrains else current.index.tasks
        taken = {t.name for t in current.tasks}
        for candidate in trained:
            kept = [m.numpy() for m in candidate.masks]
            density = tuple(float(m.float().mean()) for m in candidate.masks)
            facts = {**asdict(request.config.resolved(current.spec)), "task_seed": stream_seed, "auto": True,
                     "steps": candidate.trainer.steps, "train_seconds": round(seconds, 3)}
            if candidate.task is None:
                name = unique_name(request.name or f"auto-{first + len(stored)}", taken)
                record = TaskRecord(name=name, data=request.data.to_plain(), classes=train.classes,
                                    mean=train.mean, std=train.std, density=density,
                                    test_accuracy=candidate.test_accuracy, mask_sha256=mask_digest(kept),
                                    training=facts)
                stored.append(archive.StoredTask.of(record, kept))
                index = first + len(stored) - 1
            else:
                index, old = candidate.task, current.tasks[candidate.task]
                before = records[index]
                if (old.name, old.mask_sha256) != (before.name, before.mask_sha256):
                    raise ConcurrentChange(f"{request.path}: task {index} ({before.name!r}) was changed by another "
                                           "writer while this one trained it; nothing was committed")
                record = replace(old, density=density, test_accuracy=candidate.test_accuracy,
                                 mask_sha256=mask_digest(kept),
                                 training={**old.training, "retrained": old.training.get("retrained", [])
                                           + [{**facts, "data": request.data.to_plain()}]})
                stored[index] = archive.StoredTask.of(record, kept)
            taken.add(record.name)
            candidate.committed_as = (record.name, index)
        return stored, None

    if retrains:
        archive.rewrite(request.path, tasks)
    else:
        archive.append_tasks(request.path, lambda current: tasks(current)[0])
