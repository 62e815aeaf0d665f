"""The `.supsup` archive: the only code that touches HDF5 (formats/supsup-v3.md)."""

from supsup_cli.archive.reader import Archive, StoredTask
from supsup_cli.archive.writer import StoredReservoir, append_task, append_tasks, create, merge, rewrite

__all__ = ["Archive", "StoredReservoir", "StoredTask", "append_task", "append_tasks", "create", "merge", "rewrite"]
