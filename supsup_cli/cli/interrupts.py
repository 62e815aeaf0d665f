"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. When that is inside a
finalizer or a weakref callback (h5py runs them all the time while an archive is read), the
exception is printed as "ignored" and dropped, and a 1000-step `learn-task` would run on after the
user pressed Ctrl-C. Our handler also remembers the signal, and every long loop's progress callback
calls `check()`, which raises it again if it was swallowed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_pending = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Take over SIGINT; only the main thread may, and elsewhere signals never arrive anyway."""
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:
        pass


@contextmanager
def watching() -> Iterator[None]:
    """SIGINT is ours inside, and the caller's handler is back afterwards (tests run commands in-process)."""
    global _pending
    previous = signal.getsignal(signal.SIGINT)
    install()
    try:
        yield
    finally:
        _pending = False
        try:
            signal.signal(signal.SIGINT, previous)
        except ValueError:
            pass


def check() -> None:
    """Raise the Ctrl-C that Python swallowed, if one was."""
    if _pending:
        raise KeyboardInterrupt
