"""--module: the user's own network, imported because the user named it (an archive never does)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from supsup_cli.core.errors import InputNotFound, InvalidArgument


def load_module(text: str | None) -> Any:
    """The torch module that `pkg.module:factory` or `path/to/file.py:factory` makes (factory()),
    or None without --module."""
    if text is None:
        return None
    where, _, factory = text.rpartition(":")
    if not where or not factory.isidentifier():
        raise InvalidArgument(f"--module takes pkg.module:factory or path/to/file.py:factory, got {text!r}")
    code = _import(where, text)
    make = getattr(code, factory, None)
    if not callable(make):
        raise InvalidArgument(f"--module {text}: {where} has no function {factory}")
    try:
        module = make()
    except Exception as exc:  # the user's code: whatever it raises is the user's to see, in one line
        raise InvalidArgument(f"--module {text}: {factory}() failed ({_first_line(exc)})") from None
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InvalidArgument(f"--module {text}: {factory}() returned a {type(module).__name__}, not a "
                              "torch.nn.Module")
    return module


def _import(where: str, text: str) -> Any:
    try:
        if not where.endswith(".py"):
            return importlib.import_module(where)
        path = Path(where)
        if not path.is_file():
            raise InputNotFound(f"--module {text}: {path}: no such file")
        spec = importlib.util.spec_from_file_location(f"supsup_user_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        code = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # so that it can import its neighbours
        try:
            spec.loader.exec_module(code)
        finally:
            sys.path.remove(str(path.resolve().parent))
        return code
    except InputNotFound:
        raise
    except Exception as exc:  # an import runs the user's code: any failure is reported, not raised
        raise InvalidArgument(f"--module {text}: importing {where} failed ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
