"""The `.supsup` archive: the only code that touches HDF5 (formats/supsup-v2.md)."""

from supsup_cli.archive.reader import Archive
from supsup_cli.archive.writer import append_task, create, transaction

__all__ = ["Archive", "append_task", "create", "transaction"]
