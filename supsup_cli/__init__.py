"""supsup: Supermasks in Superposition, as a Python library with a command line over it.

`supsup_cli.open(path)` gives a `Model` (an archive of supermasks: learn, infer, network, size,
verify); `Model.create(path, arch)` makes one. `load_data` gives a built-in dataset as arrays;
`merge` combines archives. The first API's five functions (create, learn_task, learn_tasks,
infer_arrays, merge) remain. Results are dataclasses with `to_dict()` (what --json prints); errors
are the classes of supsup_cli.core.errors. Everything is imported on first use, so that the command line
starts without torch; type checkers see the imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Model": "supsup_cli.api.model", "open": "supsup_cli.api.model", "merge": "supsup_cli.api.model",
    "load_data": "supsup_cli.api.model", "TaskNetwork": "supsup_cli.api.network",
    "create": "supsup_cli.api.paths", "learn_task": "supsup_cli.api.paths", "learn_tasks": "supsup_cli.api.paths",
    "infer_arrays": "supsup_cli.api.paths", "Archive": "supsup_cli.archive", "TaskRecord": "supsup_cli.archive.records",
    "TaskData": "supsup_cli.data.transforms", "LearnedTask": "supsup_cli.api.learn", "Inferred": "supsup_cli.api.infer",
    **{name: "supsup_cli.core.results" for name in (
        "StorageReport", "VerifyReport", "MergeResult", "HopfieldStored", "AutoLearned")},
    **{name: "supsup_cli.core.errors" for name in (
        "SupsupError", "ArchiveNotFound", "ArchiveExists", "NotAnArchive", "ArchiveCorrupt", "VersionTooNew",
        "WeightsMismatch", "ArchiveLocked", "ConcurrentChange", "UnknownTask", "NoTasks", "DuplicateTask",
        "BadInput", "InputNotFound", "DataUnavailable", "InvalidArgument", "DiskFull", "ModuleRequired")},
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time __getattr__ imports on first use
    from supsup_cli.api.paths import create as create, infer_arrays as infer_arrays, learn_task as learn_task
    from supsup_cli.api.paths import learn_tasks as learn_tasks
    from supsup_cli.archive import Archive as Archive
    from supsup_cli.archive.records import TaskRecord as TaskRecord
    from supsup_cli.data.transforms import TaskData as TaskData
    from supsup_cli.core.errors import (ArchiveCorrupt as ArchiveCorrupt, ArchiveExists as ArchiveExists,
                                   ArchiveLocked as ArchiveLocked, ArchiveNotFound as ArchiveNotFound,
                                   BadInput as BadInput, ConcurrentChange as ConcurrentChange,
                                   DataUnavailable as DataUnavailable, DiskFull as DiskFull,
                                   DuplicateTask as DuplicateTask, InputNotFound as InputNotFound,
                                   InvalidArgument as InvalidArgument, ModuleRequired as ModuleRequired,
                                   NoTasks as NoTasks,
                                   NotAnArchive as NotAnArchive, SupsupError as SupsupError,
                                   UnknownTask as UnknownTask, VersionTooNew as VersionTooNew,
                                   WeightsMismatch as WeightsMismatch)
    from supsup_cli.api.infer import Inferred as Inferred
    from supsup_cli.api.learn import LearnedTask as LearnedTask
    from supsup_cli.api.model import Model as Model, load_data as load_data, merge as merge, open as open
    from supsup_cli.api.network import TaskNetwork as TaskNetwork
    from supsup_cli.core.results import (AutoLearned as AutoLearned, HopfieldStored as HopfieldStored,
                                    MergeResult as MergeResult, StorageReport as StorageReport,
                                    VerifyReport as VerifyReport)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'supsup_cli' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
