"""supsup: Supermasks in Superposition, as a command-line tool and a Python library.

The library (see supsup_cli.api and the README's "Python API"): create, learn_task, learn_tasks,
infer_arrays, merge, Archive, TaskData, the result types LearnedTask and Inferred, and the error
classes. They are imported on first use, so that the command line starts without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create": "supsup_cli.api", "learn_task": "supsup_cli.api", "learn_tasks": "supsup_cli.api",
    "infer_arrays": "supsup_cli.api", "merge": "supsup_cli.archive", "Archive": "supsup_cli.archive",
    "TaskData": "supsup_cli.data.transforms", "LearnedTask": "supsup_cli.learn", "Inferred": "supsup_cli.infer",
    **{name: "supsup_cli.errors" for name in (
        "SupsupError", "ArchiveNotFound", "ArchiveExists", "NotAnArchive", "ArchiveCorrupt", "VersionTooNew",
        "WeightsMismatch", "ArchiveLocked", "ConcurrentChange", "UnknownTask", "NoTasks", "DuplicateTask",
        "BadInput", "InputNotFound", "DataUnavailable", "InvalidArgument", "DiskFull")},
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'supsup_cli' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
