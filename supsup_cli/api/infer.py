"""infer: read input files, find each one's task (or use the given one), and classify it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supsup_cli import archive
from supsup_cli.engine import device as device_, hopfield, inference, superposition
from supsup_cli.api.base import base_network
from supsup_cli.archive import maskcodec
from supsup_cli.data.images import read_inputs
from supsup_cli.core.errors import BadInput, InvalidArgument, SupsupError
from supsup_cli.api.learn import mask_digest
from supsup_cli.engine.masks import unpack
from supsup_cli.engine.models import MaskedNet, batches_of, normalize, real_outputs
from supsup_cli.archive.records import TaskRecord
from supsup_cli.api.hopfield_store import reservoir_of


@dataclass(frozen=True)
class InferRequest:
    path: Path
    inputs: list[Path]
    task: str | None = None  # given: scenario GG, no inference
    method: str = "one-shot"
    objective: str = "entropy"
    same_task: bool = False
    resize: bool = False
    device: str = "auto"
    hopfield: bool = False  # recover one mask for all inputs from the Hopfield reservoir
    hopfield_steps: int | None = None  # None: hopfield.STEPS
    module: Any = None  # the torch module of an archive over one's own module


@dataclass(frozen=True)
class Inferred:
    """What inference found for N inputs, as arrays (the CLI rounds and lays them out)."""

    tasks: np.ndarray  # int64 [N]: task index; -1 where no stored task matches (Hopfield, masks dropped)
    task_names: list[str | None]
    classes: np.ndarray  # int64 [N]: the dataset's label
    confidences: np.ndarray  # float32 [N]: softmax probability of the class among the task's classes
    hamming: np.ndarray | None = None  # int64 [N], Hopfield only: distance of the recovered mask to the task's

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        def head(values: Any) -> str:
            shown = ", ".join(map(str, list(values[:5])))
            return f"[{shown}{', ...' if len(values) > 5 else ''}]"

        mean = float(self.confidences.mean()) if len(self) else float("nan")
        return (f"Inferred({len(self)} inputs, tasks={head(self.tasks.tolist())}, classes={head(self.classes.tolist())}, "
                f"mean confidence {mean:.3f})")

    def to_dict(self) -> list[dict[str, Any]]:
        """One object per input, as `supsup infer --json` prints them (without the input's name)."""
        rows = []
        for row in range(len(self)):
            result = {"task": None if self.tasks[row] < 0 else int(self.tasks[row]), "task_name": self.task_names[row],
                      "class": int(self.classes[row]), "confidence": float(self.confidences[row])}
            if self.hamming is not None:
                result["hamming"] = None if self.hamming[row] < 0 else int(self.hamming[row])
            rows.append(result)
        return rows


@dataclass
class Prediction:
    results: list[dict[str, Any]] = field(default_factory=list)  # one per readable input, in order
    failures: list[tuple[str, SupsupError]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Loaded:
    """What inference needs from the archive, read once."""

    spec: Any
    tasks: list[TaskRecord]
    net: MaskedNet  # on the CPU
    given: int | None
    packed: list[torch.Tensor] | None = None
    stats: list[np.ndarray] | None = None
    reservoir: hopfield.Reservoir | None = None
    stored: list[list[torch.Tensor]] | None = None


def infer(request: InferRequest, nets: dict[str, MaskedNet] | None = None) -> Prediction:
    """Read the request's input files and infer each readable one; unreadable ones become failures."""
    loaded = _load(request, nets)
    inputs = read_inputs(request.inputs, loaded.spec.input_shape, request.resize)
    if not inputs:
        raise BadInput(f"no input images found (PNG, JPEG or .npy) in {', '.join(map(str, request.inputs))}")
    prediction = Prediction(failures=[(i.name, i.error) for i in inputs if i.error is not None])
    readable = [i for i in inputs if i.pixels is not None]
    if not readable:
        return prediction
    found = _predict(loaded, request, np.stack([i.pixels for i in readable]), prediction.notes)
    for image, result in zip(readable, found.to_dict()):
        prediction.results.append({"input": image.name, **result})
    return prediction


def infer_pixels(request: InferRequest, pixels: np.ndarray, notes: list[str] | None = None,
                 nets: dict[str, MaskedNet] | None = None) -> Inferred:
    """Infer images given as float32 [N, C, H, W] pixels in [0, 1] (request.inputs is not read).
    `nets`: base networks by their weights' SHA-256, kept across calls (a `Model` keeps them): the
    network is made once, not at every call."""
    return _predict(_load(request, nets), request, pixels, notes if notes is not None else [])


def _load(request: InferRequest, nets: dict[str, MaskedNet] | None = None) -> _Loaded:
    inference.check_choices(request.method, request.objective)
    with archive.Archive(request.path) as opened:
        opened.task_index("0")  # raises NoTasks on an empty archive
        given = opened.task_index(request.task) if request.task is not None else None
        _check_mode(opened, request, given)
        held = {} if nets is None else nets
        if opened.weights_sha256 not in held:
            held.clear()
            held[opened.weights_sha256] = base_network(opened, request.module)
        loaded = _Loaded(opened.spec, opened.tasks, held[opened.weights_sha256], given)
        if request.hopfield:
            loaded.reservoir = reservoir_of(opened)
            if opened.reservoir_info.explicit_masks:
                loaded.stored = [_unpacked(opened, t) for t in range(len(loaded.tasks))]
        else:
            loaded.packed = [torch.from_numpy(p) for p in opened.packed_masks()] if given is None else \
                [torch.from_numpy(p)[None] for p in opened.packed_mask(given)]
            if opened.spec.norm == "running":
                loaded.stats = [opened.stats(t) for t in ([given] if given is not None else range(len(loaded.tasks)))]
    return loaded


def _predict(loaded: _Loaded, request: InferRequest, pixels: np.ndarray, notes: list[str]) -> Inferred:
    spec, tasks, given = loaded.spec, loaded.tasks, loaded.given
    if spec.norm == "batch" and len(pixels) < 2:
        raise BadInput(f"{spec.name} normalizes each batch with its own statistics: give at least 2 images")
    device = device_.resolve(request.device)
    mean, std = _shared_normalization(tasks if given is None else [tasks[given]], notes)
    x = normalize(torch.from_numpy(pixels), mean, std).to(device)
    net = loaded.net.to(device)
    if request.hopfield:
        return _hopfield_results(net, loaded.reservoir, x, tasks, loaded.stored, request.hopfield_steps)
    candidates = list(range(len(tasks))) if given is None else [given]
    real = sorted({o for t in candidates for o in real_outputs(spec, tasks[t].classes)})
    sup = superposition.superposition(net, loaded.packed, real, stats=loaded.stats)
    chosen = torch.zeros(len(pixels), dtype=torch.long, device=device)
    if given is None:
        chosen = inference.infer_tasks(sup, x, request.method, request.objective, request.same_task)
    logits = superposition.task_logits(sup, x, chosen).cpu()
    indices = np.array([candidates[c] for c in chosen.tolist()], dtype=np.int64)
    classes, confidences = np.zeros(len(pixels), np.int64), np.zeros(len(pixels), np.float32)
    for row, task in enumerate(indices):
        positions = real_outputs(spec, tasks[task].classes)
        probabilities = logits[row, positions].softmax(dim=0)
        best = int(probabilities.argmax())
        classes[row], confidences[row] = tasks[task].classes[best], float(probabilities[best])
    return Inferred(indices, [tasks[t].name for t in indices], classes, confidences)


def _check_mode(opened: archive.Archive, request: InferRequest, given: int | None) -> None:
    if request.hopfield:
        if given is not None:
            raise InvalidArgument("--hopfield recovers the task's mask: do not also give --task")
        if opened.reservoir_info is None:
            raise InvalidArgument(f"{opened.path}: no Hopfield reservoir yet (run 'supsup hopfield-store')")
    elif given is None and opened.spec.mask_on == "neurons":
        raise InvalidArgument(f"{opened.spec.name} masks neurons: infer its tasks with --hopfield, or give --task")
    elif given is not None and (opened.index.mask_codec[given] == maskcodec.NONE).any():
        raise InvalidArgument(f"task {given}'s mask is kept only in the Hopfield reservoir: use --hopfield")


def _unpacked(opened: archive.Archive, task: int) -> list[torch.Tensor]:
    return [unpack(torch.from_numpy(p), site.numel).bool() for p, site in zip(opened.packed_mask(task), opened.sites)]


def _hopfield_results(net: MaskedNet, reservoir: hopfield.Reservoir, x: torch.Tensor, tasks: list[TaskRecord],
                      stored: list[list[torch.Tensor]] | None, steps: int | None) -> Inferred:
    """One mask recovered from all inputs, then each input classified with it over every task's classes."""
    recovered = hopfield.recover(net, reservoir, x, steps=steps or hopfield.STEPS).masks
    if stored is not None:  # masks kept: the closest by Hamming distance
        distances = [hopfield.hamming(recovered, masks) for masks in stored]
        task = min(range(len(stored)), key=distances.__getitem__)
        distance = distances[task]
    else:  # masks dropped: only an exact match can be named, by the masks' digests
        digest = mask_digest([m.numpy() for m in recovered])
        task = next((i for i, t in enumerate(tasks) if t.mask_sha256 == digest), -1)
        distance = 0 if task >= 0 else -1
    masks = [m.float().to(x.device) for m in recovered]
    with torch.no_grad():
        logits = torch.cat([net(part, masks) for part in batches_of(x, hopfield.BATCH)]).cpu()
    real = sorted({o for t in tasks for o in real_outputs(net.spec, t.classes)})
    probabilities = logits[:, real].softmax(dim=1)
    best = probabilities.argmax(dim=1)
    count = len(x)
    return Inferred(np.full(count, task, np.int64), [tasks[task].name if task >= 0 else None] * count,
                    np.array(real, dtype=np.int64)[best.numpy()],
                    probabilities.gather(1, best[:, None])[:, 0].numpy().astype(np.float32),
                    np.full(count, distance, np.int64))


def _shared_normalization(tasks: list[TaskRecord], notes: list[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Superposition needs one input normalization; tasks normally share their dataset's."""
    first = tasks[0]
    if any((t.mean, t.std) != (first.mean, first.std) for t in tasks):
        notes.append(f"tasks were trained with different input normalizations; using task 0's "
                     f"(mean {first.mean}, std {first.std})")
    return first.mean, first.std
