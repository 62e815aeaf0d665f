"""The first Python API: five functions over paths, kept for the scripts that use them. Each is a
thin wrapper over `supsup_cli.Model` (see supsup_cli.api.model), which is what new code should use.

    import supsup_cli as supsup
    supsup.create("model.supsup", "lenet300-100")
    task = supsup.learn_task("model.supsup", supsup.TaskData("mnist", permute=7))
    found = supsup.infer_arrays("model.supsup", images)   # found.task_names, .classes, .confidences
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supsup_cli.api.model import Model, Progress

if TYPE_CHECKING:
    from supsup_cli.api.infer import Inferred
    from supsup_cli.api.learn import LearnedTask


def create(path: str | Path, arch: str, seed: int = 0, output_size: int | None = None,
           force: bool = False) -> str:
    """A new archive with no tasks (`supsup init`); returns the base weights' SHA-256."""
    return Model.create(path, arch, seed=seed, output_size=output_size, force=force).weights_sha256


def learn_task(path: str | Path, data: Any, labels: Any = None, *, test: tuple[Any, Any] | None = None,
               name: str | None = None, init: str = "kaiming", device: str = "auto",
               data_dir: str | Path | None = None, progress: Progress | None = None, **training: Any) -> LearnedTask:
    """`Model.learn` on the archive at `path` (`supsup learn-task`)."""
    return Model(path, device=device).learn(data, labels, test=test, name=name, init=init, progress=progress,
                                            data_dir=data_dir, **training)


def learn_tasks(path: str | Path, datas: Sequence[Any], *, device: str = "auto", **options: Any) -> Iterator[LearnedTask]:
    """`Model.learn_many` on the archive at `path` (`supsup learn-task --permute 1-250`)."""
    return Model(path, device=device).learn_many(datas, **options)


def infer_arrays(path: str | Path, images: Any, method: str = "one-shot", objective: str = "entropy",
                 task: int | str | None = None, same_task: bool = False, device: str = "auto",
                 hopfield: bool = False) -> Inferred:
    """`Model.infer` on the archive at `path` (`supsup infer`)."""
    return Model(path, device=device).infer(images, method=method, objective=objective, task=task,
                                            same_task=same_task, hopfield=hopfield)
