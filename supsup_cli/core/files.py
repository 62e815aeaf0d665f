"""Files other than archives (a benchmark's --out): written whole or not at all.

Each is written beside its name as `.NAME.PID.tmp`, fsynced and renamed into place, so a crash
leaves the old file or the new one. A writer killed mid-write leaves its temporary behind; the
next writer into the folder removes those whose process no longer runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_TEMPORARY = re.compile(r"\..+\.(\d+)\.tmp")


def write_text(path: Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text)


def write_with(path: Path, write: Callable[[IO[str]], None]) -> None:
    with replacing(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            write(handle)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write; on success it is fsynced and renamed to `path`."""
    remove_stale_temporaries(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> None:
    for entry in folder.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if match and not _running(int(match.group(1))):
            entry.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
