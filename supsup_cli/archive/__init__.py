"""The `.supsup` archive: the only code that touches HDF5 (formats/supsup-v4.md).

May import the core (errors, registry, weights), h5py and numpy; never torch, the engine, the API,
the command line or the benchmark (tests/test_layers.py)."""

from supsup_cli.archive.reader import Archive, StoredTask
from supsup_cli.archive.writer import StoredReservoir, append_task, append_tasks, create, merge, rewrite

__all__ = ["Archive", "StoredReservoir", "StoredTask", "append_task", "append_tasks", "create", "merge", "rewrite"]
