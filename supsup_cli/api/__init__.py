"""The library's verbs over archives: `Model` (model.py) and what it calls to learn, infer, export,
size and store, each opening the archive it works on; and the first API, functions over paths
(paths.py: create, learn_task, learn_tasks, infer_arrays), importable from here as before.

May import every layer below it (core, archive, data, engine); never the command line or the
benchmark (tests/test_layers.py). Imported lazily: importing the package imports nothing."""

from __future__ import annotations

import importlib
from typing import Any

_FIRST_API = ("create", "learn_task", "learn_tasks", "infer_arrays")


def __getattr__(name: str) -> Any:
    if name in _FIRST_API:
        return getattr(importlib.import_module("supsup_cli.api.paths"), name)
    raise AttributeError(f"module 'supsup_cli.api' has no attribute {name!r}")
