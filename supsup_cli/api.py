"""The Python API: what the command line does, on paths and arrays in memory, with typed results.

    import supsup_cli as supsup
    supsup.create("model.supsup", "lenet300-100")
    task = supsup.learn_task("model.supsup", supsup.TaskData("mnist", permute=7))
    found = supsup.infer_arrays("model.supsup", images)   # found.task_names, .classes, .confidences

Errors are the classes of supsup_cli.errors (all subclasses of SupsupError), as on the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from supsup_cli import archive, registry
from supsup_cli.data.arrays import as_uint8_images, data_of_arrays, examples_of_arrays
from supsup_cli.data.transforms import TaskData
from supsup_cli.errors import BadInput
from supsup_cli.learn import LearnedTask, LearnRequest, learn_tasks as _learn_tasks
from supsup_cli.infer import Inferred, InferRequest, infer_pixels
from supsup_cli.training import TrainConfig

Progress = Callable[[int, float, float], None]  # (steps done, loss, batch accuracy)


def create(path: str | Path, arch: str, seed: int = 0, output_size: int | None = None,
           force: bool = False) -> str:
    """A new archive with no tasks (`supsup init`); returns the base weights' SHA-256."""
    return archive.create(Path(path), registry.resolve(arch, output_size), seed=seed, force=force)


def learn_task(path: str | Path, data: TaskData | Any, labels: Any = None, *, test: tuple[Any, Any] | None = None,
               name: str | None = None, steps: int = 1000, batch_size: int = 128, lr: float | None = None,
               optimizer: str | None = None, density: float | None = None, density_budget: str = "uniform",
               er_scale: float | None = None,
               init: str = "kaiming", seed: int = 0, device: str = "auto", data_dir: str | Path | None = None,
               progress: Progress | None = None) -> LearnedTask:
    """Train one supermask and commit it (`supsup learn-task`).

    `data` is a TaskData (a dataset and its transform, as on the command line), or images in memory
    (uint8 or float in [0, 1], N x H x W or N x C x H x W, numpy or torch) with their `labels`; then
    `test=(images, labels)` gives the test accuracy (without it, `test_accuracy` is None).
    """
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, density=density, seed=seed, optimizer=optimizer,
                         budget=density_budget, er_scale=er_scale)
    if isinstance(data, TaskData):
        if labels is not None or test is not None:
            raise BadInput("labels and test are for images in memory; a TaskData brings its own")
        request = LearnRequest(Path(path), data, config, name, init, device, _path(data_dir))
    else:
        if labels is None:
            raise BadInput("images in memory need their labels")
        train = examples_of_arrays(data, labels)
        held_out = None if test is None else examples_of_arrays(*test, classes=train.classes)
        request = LearnRequest(Path(path), data_of_arrays(train), config, name, init, device,
                               examples=(train, held_out))
    return next(iter(_learn_tasks([request], progress)))


def learn_tasks(path: str | Path, datas: Sequence[TaskData], **options: Any) -> Iterator[LearnedTask]:
    """Learn tasks one after another (`supsup learn-task --permute 1-250`), each committed as it is
    learned; takes the options of learn_task (but `name`), and `tasks_per_step` (how many train
    together in one batched step, with the masks they would get one at a time)."""
    progress = options.pop("progress", None)
    config_keys = {"steps", "batch_size", "lr", "optimizer", "density", "seed", "er_scale"}
    config = TrainConfig(**{k: options.pop(k) for k in list(options) if k in config_keys},
                         budget=options.pop("density_budget", "uniform"))
    init, device = options.pop("init", "kaiming"), options.pop("device", "auto")
    data_dir = _path(options.pop("data_dir", None))
    together = options.pop("tasks_per_step", 1)
    if options:
        raise BadInput(f"learn_tasks takes no option {', '.join(sorted(options))}")
    requests = [LearnRequest(Path(path), data, config, None, init, device, data_dir) for data in datas]
    return _learn_tasks(requests, progress, together=together)


def infer_arrays(path: str | Path, images: Any, method: str = "one-shot", objective: str = "entropy",
                 task: int | str | None = None, same_task: bool = False, device: str = "auto",
                 hopfield: bool = False) -> Inferred:
    """Each image's task (by superposition, or `task` given, or with `hopfield` one mask recovered
    for all images from the archive's Hopfield reservoir) and class (`supsup infer`). `images`:
    uint8 or float in [0, 1], N x H x W or N x C x H x W (numpy or torch)."""
    pixels = as_uint8_images(images)
    with archive.Archive(Path(path)) as opened:
        shape = opened.spec.input_shape
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    if tuple(pixels.shape[1:]) != tuple(shape):
        raise BadInput(f"images are {'x'.join(map(str, pixels.shape[1:]))} (channels x height x width); the "
                       f"archive's network takes {'x'.join(map(str, shape))}")
    request = InferRequest(Path(path), [], None if task is None else str(task), method, objective, same_task,
                           device=device, hopfield=hopfield)
    return infer_pixels(request, pixels.astype(np.float32) / 255.0)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
