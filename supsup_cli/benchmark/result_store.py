"""A benchmark's evaluated checkpoints, kept in `--out DIR/checkpoints/` so that a rerun evaluates only
the ones that are missing.

`settings.json` holds what the rows depend on; a rerun with other settings is refused rather than
mixing results. Each checkpoint c is `c.json`, holding the digest of the masks it evaluated (the
first c tasks' `mask_sha256`) and its row. Every file is written whole or not at all (files.py): a
crash leaves a checkpoint whole or absent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from supsup_cli.core import files
from supsup_cli.core.errors import InvalidArgument


class ResultStore:
    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.folder = Path(out) / "checkpoints"
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_path = self.folder / "settings.json"
        if settings_path.exists():
            kept = _read(settings_path)
            differ = sorted(k for k in set(kept) | set(settings) if kept.get(k) != settings.get(k))
            if differ:
                shown = ", ".join(f"{k} {kept.get(k)!r} vs {settings.get(k)!r}" for k in differ)
                raise InvalidArgument(f"{out} holds results of a run with other settings ({shown}); give another "
                                      f"--out, or remove {self.folder} to start over")
        else:
            _write(settings_path, settings)

    def get(self, checkpoint: int, masks_digest: str) -> dict[str, Any] | None:
        path = self.folder / f"{checkpoint}.json"
        if not path.exists():
            return None
        kept = _read(path)
        if kept.get("masks_sha256") != masks_digest:
            raise InvalidArgument(f"{path} evaluated other masks than the archive's first {checkpoint} tasks; give "
                                  f"another --out, or remove {self.folder} to start over")
        return kept["row"]

    def put(self, checkpoint: int, masks_digest: str, row: dict[str, Any]) -> None:
        _write(self.folder / f"{checkpoint}.json", {"masks_sha256": masks_digest, "row": row})


def masks_digest(mask_digests: list[str]) -> str:
    """SHA-256 of the tasks' mask digests, in order, joined by newlines."""
    return hashlib.sha256("\n".join(mask_digests).encode()).hexdigest()


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{path} cannot be read ({exc}); remove it to evaluate that checkpoint again") from None


def _write(path: Path, value: dict[str, Any]) -> None:
    files.write_text(path, json.dumps(value, allow_nan=False))
