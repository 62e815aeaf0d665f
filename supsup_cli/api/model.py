"""`Model`: an opened archive and everything one does with it, the library's front door.

    import supsup_cli as supsup
    model = supsup.Model.create("model.supsup", "lenet300-100")
    images, labels = supsup.load_data("mnist", split="train", permute=3)
    model.learn(images, labels, steps=300)
    model.learn(supsup.TaskData("mnist", permute=4))
    found = model.infer(images[:20])                  # each image's task and class
    net = model.network(0)                            # a plain torch module of task 0

The command line is one client of this class: each command parses, makes one call here, renders.
Every write is one commit under the archive's lock, crash-safe, as on the command line; a `Model`
reads the archive again where it needs the tasks, so it sees what another writer committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.archive.records import TaskRecord
from supsup_cli.data.arrays import data_of_arrays, examples_of_arrays, network_pixels
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import BadInput, InvalidArgument
from supsup_cli.core.results import AutoLearned, HopfieldStored, MergeResult, StorageReport, VerifyReport
from supsup_cli.core.weights import weights_sha256

if TYPE_CHECKING:
    import torch

    from supsup_cli.api.infer import Inferred, Prediction
    from supsup_cli.api.learn import LearnedTask, LearnRequest
    from supsup_cli.engine.models import MaskedNet
    from supsup_cli.api.network import TaskNetwork

Progress = Callable[[int, float, float], None]  # (steps done, loss, batch accuracy)

_TRAINING = ("steps", "epochs", "batch_size", "lr", "optimizer", "density", "density_budget", "er_scale", "seed")


class Model:
    """An archive of supermasks over one frozen base network. Open one with `supsup_cli.open(path)`
    or make one with `Model.create(path, arch)`."""

    def __init__(self, path: str | Path, *, module: "torch.nn.Module | None" = None, device: str = "auto") -> None:
        """Open the archive at `path` (raises ArchiveNotFound, NotAnArchive, ArchiveCorrupt, VersionTooNew).
        `module`: for an archive over a module of one's own, that module (the archive never names
        code to run); it is checked against the archive's fingerprint now (WeightsMismatch).
        `device`: where the network computes: "auto", "cpu", "cuda" or "cuda:N"."""
        self.path = Path(path)
        self.device = device
        self.module = module
        # Structure and header only: each verb opens the archive again, checked in full, as it is then.
        with archive.Archive(self.path, verify_content=False, check_weights=False, load_records=False) as opened:
            self.spec, self.seed, self.weights_sha256 = opened.spec, opened.seed, opened.weights_sha256
            self._nets: dict[str, MaskedNet] = {}  # base networks by their weights' SHA-256, made once
            if module is not None:
                self._base_network(opened)

    @classmethod
    def create(cls, path: str | Path, arch: str | None = None, seed: int = 0, output_size: int | None = None,
               force: bool = False, *, input_shape: Sequence[int] | None = None,
               arch_spec: dict[str, Any] | None = None, module: "torch.nn.Module | None" = None,
               weights: str | None = None, mask: Sequence[str] | None = None, label: str | None = None,
               device: str = "auto") -> "Model":
        """A new archive with no tasks (`supsup init`).

        Args:
            arch: a registry name (`lenet300-100`, ...), or `mlp:W1-W2-...` (an MLP of these hidden
                widths, ReLU, masks on weights; `input_shape` default (1, 28, 28)).
            arch_spec: instead of `arch`, a spec of one's own as a dict (the fields of a stored
                spec: name, family, input_shape, widths, blocks, block, output_size, activation,
                norm, mask_on, labels), every field checked against its bounds.
            output_size: output neurons (real classes plus superfluous ones).
            module: instead of `arch`, any torch module mapping [N, *input_shape] to logits; masks go
                over the weights of its nn.Linear and nn.Conv2d layers, or over the parameters named
                in `mask`. `weights`: "random" (the default: signed Kaiming constants from `seed`, biases zero,
                norm layers the identity: the module's class and the seed give the network back) or
                "given" (the module's own weights, pretrained say: the archive keeps their
                fingerprint, not them). `label`: what to call it (default: its class). The archive
                never names code: open it again with `supsup_cli.open(path, module=...)`.
        Raises:
            ArchiveExists unless `force`; InvalidArgument for an unknown `arch`, a field out of
            bounds, or not exactly one of `arch`, `arch_spec` and `module`.
        """
        if module is not None:
            if arch is not None or arch_spec is not None or output_size is not None:
                raise InvalidArgument("`arch`, `arch_spec` and `output_size` have no effect with `module` (it has "
                                      "its own layers and outputs)")
            if input_shape is None:
                raise InvalidArgument("`module` needs `input_shape`: (channels, height, width) of its inputs")
            from supsup_cli.engine import user_module

            spec, net = user_module.prepare(module, input_shape, weights or "random", seed, mask,
                                            label if label is not None else user_module.describe(module))
            archive.create(Path(path), spec, seed=seed, force=force,
                           weights_digest=weights_sha256(user_module.base_weights(net, spec)))
            return cls(path, module=module, device=device)
        if weights is not None or mask is not None or label is not None:
            raise InvalidArgument("`weights`, `mask` and `label` are for `module`")
        if (arch is None) == (arch_spec is None):
            raise InvalidArgument("give one of `arch`, `arch_spec` and `module`")
        if arch_spec is not None:
            if output_size is not None or input_shape is not None:
                raise InvalidArgument("`output_size` and `input_shape` have no effect with `arch_spec` (it has both)")
            spec = registry.from_plain(arch_spec)
        else:
            assert arch is not None
            spec = registry.resolve(arch, output_size, None if input_shape is None else tuple(input_shape))
        archive.create(Path(path), spec, seed=seed, force=force)
        return cls(path, device=device)

    # The tasks, read from the archive on each access.

    @property
    def tasks(self) -> list[TaskRecord]:
        """Every committed task's record, in order."""
        with archive.Archive(self.path) as opened:
            return list(opened.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(self.tasks)

    def __getitem__(self, task: int | str) -> TaskRecord:
        """A task's record by index or name (raises UnknownTask)."""
        with archive.Archive(self.path) as opened:
            return opened.tasks[opened.task_index(str(task))]

    def __repr__(self) -> str:
        tasks = self.tasks
        names = ", ".join(t.name for t in tasks[:3]) + (", ..." if len(tasks) > 3 else "")
        return (f"Model({str(self.path)!r}, arch={self.spec.name!r}, output_size={self.spec.output_size}, "
                f"seed={self.seed}, tasks={len(tasks)}{f' [{names}]' if tasks else ''})")

    # Learning.

    def learn(self, data: Any, labels: Any = None, *, test: tuple[Any, Any] | None = None, name: str | None = None,
              init: str = "kaiming", progress: Progress | None = None, data_dir: str | Path | None = None,
              **training: Any) -> "LearnedTask":
        """Train one supermask and commit it (`supsup learn-task`).

        Args:
            data: a `TaskData` (a built-in dataset and its transform); images in memory (uint8, or
                float in [0, 1]; N x H x W or N x C x H x W; numpy or torch) with their `labels`; or a
                map-style `torch.utils.data.Dataset` of (image, label) pairs.
            labels: the images' integer labels (arrays only).
            test: (images, labels) to measure the test accuracy on (arrays and datasets; a TaskData
                brings its own test split).
            name: the task's name (default: from the data).
            init: "kaiming", or "mean" to start from the running mean of the committed masks.
            training: steps (1000), epochs, batch_size (128), lr, optimizer, density, density_budget,
                er_scale, seed (0).
        Returns:
            the committed task's `LearnedTask`.
        Raises:
            InvalidArgument naming the parameter out of range or in conflict; BadInput for data that
            cannot be a task; DuplicateTask when the name is taken.
        """
        from supsup_cli.api.learn import learn_tasks

        request = self._request(data, labels, test, name, init, data_dir, training)
        return next(iter(learn_tasks([request], progress)))

    def learn_many(self, datas: Iterable[Any], *, name: str | None = None, init: str = "kaiming",
                   tasks_per_step: int = 1, progress: Progress | None = None,
                   started: Callable[[int, Any, int], None] | None = None, data_dir: str | Path | None = None,
                   **training: Any) -> Iterator["LearnedTask"]:
        """Learn tasks one after another (`supsup learn-task --permute 1-250`), each committed as soon as
        it is learned; yields each committed task's `LearnedTask`. `datas`: TaskData, (images, labels)
        pairs or datasets. `tasks_per_step`: that many train together in one batched step, with the
        masks they would get one at a time. `name` names a single task. `started(position, request,
        steps)` announces each task. Takes `learn`'s training parameters."""
        from supsup_cli.api.learn import learn_tasks

        datas = list(datas)
        if name is not None and len(datas) > 1:
            raise InvalidArgument(f"`name` names one task; there are {len(datas)}")
        requests = [self._request(*_pair(data), None, name, init, data_dir, training) for data in datas]
        return learn_tasks(requests, progress, started, together=tasks_per_step)

    def learn_auto(self, data: Any, labels: Any = None, *, test: tuple[Any, Any] | None = None,
                   name: str | None = None, decide_every: int = 100, epsilon: float = 0.125,
                   max_masks: int | None = None, init: str = "kaiming", progress: Progress | None = None,
                   notes: list[str] | None = None, data_dir: str | Path | None = None,
                   **training: Any) -> AutoLearned | None:
        """Scenario NNs (`supsup learn-task --auto`): no task id; every `decide_every` batches One-Shot
        over the archive's masks decides whether the data belongs to a known mask (trained further)
        or needs a new one (allocated when K max(nu) < 1 + `epsilon`; never past `max_masks`).
        Takes `learn`'s data and training parameters."""
        from supsup_cli.api.autolearn import learn_auto

        if decide_every < 1:
            raise InvalidArgument(f"`decide_every` must be at least 1, got {decide_every}")
        if not epsilon > 0:
            raise InvalidArgument(f"`epsilon` must be positive, got {epsilon}")
        if max_masks is not None and max_masks < 1:
            raise InvalidArgument(f"`max_masks` must be at least 1, got {max_masks}")
        if training.get("epochs") is not None:
            raise InvalidArgument("`epochs` has no effect with `auto`: a decision every `decide_every` steps")
        request = self._request(data, labels, test, name, init, data_dir, training)
        result = learn_auto(request, decide_every, epsilon, max_masks, progress, notes)
        return None if result is None else AutoLearned.from_dict(result)  # None: a torchrun rank but the first

    def _request(self, data: Any, labels: Any, test: tuple[Any, Any] | None, name: str | None, init: str,
                 data_dir: str | Path | None, training: dict[str, Any]) -> "LearnRequest":
        from supsup_cli.api.learn import LearnRequest

        config = _train_config(training)
        if isinstance(data, TaskData):
            if labels is not None or test is not None:
                raise BadInput("`labels` and `test` are for images in memory; a TaskData brings its own")
            return LearnRequest(self.path, data, config, name, init, self.device, _path(data_dir), module=self.module)
        train = _examples(data, labels)
        held_out = None if test is None else _examples(*test, classes=train.classes)
        return LearnRequest(self.path, data_of_arrays(train), config, name, init, self.device,
                            examples=(train, held_out), module=self.module)

    # Inference.

    def infer(self, inputs: Any, *, method: str = "one-shot", objective: str = "entropy", task: int | str | None = None,
              same_task: bool = False, hopfield: bool = False, hopfield_steps: int | None = None,
              notes: list[str] | None = None) -> "Inferred":
        """Each image's task and class (`supsup infer`).

        Args:
            inputs: images as `learn` takes them (uint8 or float in [0, 1]; N x H x W, N x C x H x W, or
                N x pixels for a single-channel network; numpy or torch).
            method, objective: how the task is inferred ("one-shot", "binary" or "exhaustive";
                "entropy" or "g"); not with `task` or `hopfield`.
            task: index or name: use that task's mask, nothing is inferred (scenario GG).
            same_task: one task for all the images together.
            hopfield: recover one mask for all images from the archive's Hopfield reservoir.
        Raises:
            InvalidArgument for conflicting parameters; UnknownTask; NoTasks; BadInput.
        """
        from supsup_cli.api.infer import InferRequest, infer_pixels

        _check_infer(method, objective, task, same_task, hopfield, hopfield_steps)
        pixels = network_pixels(inputs, self.spec.input_shape)
        request = InferRequest(self.path, [], None if task is None else str(task), method, objective, same_task,
                               device=self.device, hopfield=hopfield, hopfield_steps=hopfield_steps,
                               module=self.module)
        return infer_pixels(request, pixels.astype(np.float32) / 255.0, notes, nets=self._nets)

    def network(self, task: int | str) -> "TaskNetwork":
        """Task `task`'s network as a plain `torch.nn.Module`: frozen, in eval mode, its mask applied and
        its batch-norm statistics loaded. It takes what `infer` takes and returns logits over the
        task's classes (`module.classes` are their labels), as `infer(..., task=task)` computes them."""
        from supsup_cli.api.network import TaskNetwork

        with archive.Archive(self.path) as opened:
            index = opened.task_index(str(task))
            if opened.index.mask_codec[index].min() == 0:
                raise InvalidArgument(f"task {index}'s mask is kept only in the Hopfield reservoir")
            stats = opened.stats(index) if opened.spec.norm == "running" else None
            network = TaskNetwork(self._base_network(opened), opened.tasks[index], opened.packed_mask(index), stats)
        return network.to(_torch_device(self.device))

    def export(self, task: int | str | None, format: str, out: str | Path, *,  # noqa: A002 (as the flag)
               all_tasks: bool = False, infer: str | None = None) -> dict[str, Any]:
        """Write task `task`'s network to `out` (`supsup export`): `format` "onnx" (uint8 images in,
        logits over the task's classes and the predicted label out, normalization included) or
        "safetensors" (the masked weights and statistics under the layers' names). The classes,
        architecture and digests go into the file's metadata.

        Instead of `task` (ONNX, weight-masked MLPs): `all_tasks`, one model for every task, its
        inputs the images and a task index, the masks packed in it; or `infer="one-shot"`, a model
        that finds each image's task itself (outputs task, label, confidence).
        Raises MissingExtra without the `supsup[export]` extra, InvalidArgument for an unknown
        format, conflicting parameters, or a network ONNX cannot hold."""
        from supsup_cli.api.export import export, export_tasks

        if sum((task is not None, all_tasks, infer is not None)) != 1:
            raise InvalidArgument("give one of `task`, `all_tasks` and `infer`")
        if task is not None:
            record = self[task]
            return export(self.network(task).cpu(), self.weights_sha256, record.mask_sha256, format, Path(out))
        if format != "onnx":
            raise InvalidArgument(f"`all_tasks` and `infer` export ONNX models, not {format!r}")
        with archive.Archive(self.path) as opened:
            opened.task_index("0")  # raises NoTasks on an empty archive
            packed, records = opened.packed_masks(), list(opened.tasks)
            net = self._base_network(opened)
        return export_tasks(net, packed, records, self.weights_sha256, infer, Path(out))

    # The archive itself.

    def infer_files(self, inputs: Sequence[str | Path], *, resize: bool = False, method: str = "one-shot",
                    objective: str = "entropy", task: int | str | None = None, same_task: bool = False,
                    hopfield: bool = False, hopfield_steps: int | None = None) -> "Prediction":
        """`infer` on image files (PNG, JPEG, .npy arrays, or folders of them), as `supsup infer` reads
        them; `resize` to the network's input size. Unreadable files become `failures`, not errors."""
        from supsup_cli.api.infer import InferRequest, infer

        _check_infer(method, objective, task, same_task, hopfield, hopfield_steps)
        return infer(InferRequest(self.path, [Path(p) for p in inputs], None if task is None else str(task), method,
                                  objective, same_task, resize=resize, device=self.device, hopfield=hopfield,
                                  hopfield_steps=hopfield_steps, module=self.module), nets=self._nets)

    def size(self) -> StorageReport:
        """What the archive costs on disk, beside the entropy bound, the paper's scheme and dense weights."""
        from supsup_cli.api.size import storage_report

        with archive.Archive(self.path) as opened:
            return StorageReport.from_dict(storage_report(opened))

    def verify(self) -> VerifyReport:
        """Every checksum of the archive, task by task (`supsup inspect --verify`); a damaged archive
        is reported, not raised (`report.ok`)."""
        return verify_archive(self.path)

    def hopfield_store(self, drop_masks: bool = False) -> HopfieldStored:
        """Store every task's neuron mask in the Hopfield reservoir (`supsup hopfield-store`); with
        `drop_masks`, keep masks only there. Raises InvalidArgument for weight-masked networks."""
        from supsup_cli.api.hopfield_store import hopfield_store

        return HopfieldStored.from_dict(hopfield_store(self.path, drop_masks))

    def _base_network(self, opened: archive.Archive) -> "MaskedNet":
        from supsup_cli.api.base import base_network

        if opened.weights_sha256 not in self._nets:
            self._nets = {opened.weights_sha256: base_network(opened, self.module)}
        return self._nets[opened.weights_sha256]


def open(path: str | Path, *, module: "torch.nn.Module | None" = None,  # noqa: A001 (supsup_cli.open, as io.open)
         device: str = "auto") -> Model:
    """The archive at `path` as a `Model`; `module`: the network of an archive over one's own module."""
    return Model(path, module=module, device=device)


def verify_archive(path: str | Path) -> VerifyReport:
    """`Model.verify` for an archive that may be too damaged to open as a `Model`."""
    from supsup_cli.archive.verify import verify

    return VerifyReport.from_dict(verify(Path(path)))


def merge(out: str | Path, inputs: Sequence[str | Path], on_duplicate: str = "refuse",
          force: bool = False) -> MergeResult:
    """One archive with every task of `inputs`, in order (`supsup merge`); `on_duplicate`: "refuse",
    "rename" or "skip" a task name seen before. Raises ArchiveExists unless `force`."""
    return MergeResult.from_dict(archive.merge(Path(out), [Path(p) for p in inputs], on_duplicate, force))


def load_data(dataset: str = "mnist", split: str = "train", *, permute: int | None = None,
              rotate: float | None = None, classes: Sequence[int] | None = None, resample: str = "bilinear",
              data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A built-in dataset's task as arrays: (uint8 images N x H x W or N x C x H x W, int64 labels),
    transformed as `learn` would (`permute`, `rotate`, `classes`). Raises DataUnavailable when the
    dataset is neither shipped nor downloadable."""
    from supsup_cli.data.tasks import load_task

    if split not in ("train", "test"):
        raise InvalidArgument(f"`split` must be train or test, got {split!r}")
    data = TaskData(dataset, permute=permute, rotate=rotate, classes=None if classes is None else tuple(classes),
                    resample=resample)
    examples = load_task(data, split, _path(data_dir))
    return np.array(examples.images), np.array(examples.labels)  # the caller's own, writable


def _train_config(training: dict[str, Any]) -> Any:
    from supsup_cli.engine.training import TrainConfig

    unknown = sorted(set(training) - set(_TRAINING))
    if unknown:
        raise InvalidArgument(f"no training parameter {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(_TRAINING)}")
    values = dict(training)
    return TrainConfig(**{k: v for k, v in values.items() if k != "density_budget"},
                       budget=values.get("density_budget", "uniform"))


def _pair(data: Any) -> tuple[Any, Any]:
    """learn_many's items: a TaskData or dataset as it is, an (images, labels) pair split."""
    if isinstance(data, tuple) and len(data) == 2:
        return data
    return data, None


def _examples(data: Any, labels: Any, classes: tuple[int, ...] | None = None) -> Any:
    if labels is None and _is_dataset(data):
        data, labels = _dataset_arrays(data)
    if labels is None:
        raise BadInput("images in memory need their `labels` (or give a Dataset of (image, label) pairs)")
    examples = examples_of_arrays(data, labels, classes)
    if classes is None and len(examples.classes) < 2:
        raise BadInput(f"every label is {examples.classes[0]}: a task needs at least two classes")
    return examples


def _is_dataset(data: Any) -> bool:
    return hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "shape") \
        and not isinstance(data, (list, tuple))


def _dataset_arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """A map-style dataset's (image, label) pairs as two arrays."""
    if not len(dataset):
        raise BadInput("the dataset is empty")
    images, labels = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise BadInput(f"dataset item {index} is not an (image, label) pair")
        image, label = item
        images.append(image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image))
        labels.append(int(label.item() if hasattr(label, "item") else label))
    return np.stack(images), np.array(labels, dtype=np.int64)


def _check_infer(method: str, objective: str, task: int | str | None, same_task: bool, hopfield: bool,
                 hopfield_steps: int | None) -> None:
    """The rules of inference's parameters, once (the command line renders them with its flags)."""
    searching = [name for name, value, default in (("method", method, "one-shot"), ("objective", objective, "entropy"),
                                                   ("same_task", same_task, False)) if value != default]
    if task is not None and hopfield:
        raise InvalidArgument("`hopfield` recovers the task's mask: do not also give `task`")
    if searching and task is not None:
        raise InvalidArgument(f"`{searching[0]}` has no effect with `task` (the task is given: nothing is inferred)")
    if searching and hopfield:
        raise InvalidArgument(f"`{searching[0]}` has no effect with `hopfield` (the mask is recovered, not "
                              "searched for)")
    if hopfield_steps is not None and not hopfield:
        raise InvalidArgument("`hopfield_steps` has no effect without `hopfield`")
    if hopfield_steps is not None and hopfield_steps < 1:
        raise InvalidArgument(f"`hopfield_steps` must be at least 1, got {hopfield_steps}")


def _torch_device(name: str) -> "torch.device":
    from supsup_cli.engine import device as device_

    return device_.resolve(name)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
