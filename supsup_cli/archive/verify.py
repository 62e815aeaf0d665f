"""inspect --verify: every checksum of an archive, and which tasks are damaged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


from supsup_cli.archive import maskcodec
from supsup_cli.archive import header as header_
from supsup_cli.archive import layout
from supsup_cli.archive.reader import Archive
from supsup_cli.core.errors import ArchiveCorrupt, WeightsMismatch


def verify(path: Path) -> dict[str, Any]:
    """A report; files that are not archives at all still raise, as on any open."""
    with header_.open_archive_file(path) as handle:
        content_ok = header_.content_matches(handle, header_.read_header(handle, path))
    report: dict[str, Any] = {
        "path": str(path),
        "content_sha256_ok": content_ok,
        "structure_ok": False,
        "weights_sha256_ok": None,
        "tasks": [],
        "damaged": [],
        "problem": None,
    }
    try:
        opened = Archive(path, verify_content=False, check_weights=False, load_records=False)
    except ArchiveCorrupt as exc:
        report["problem"] = f"the archive's structure is damaged, so tasks cannot be checked one by one: {exc}"
        return _finish(report)
    with opened:
        report["structure_ok"] = True
        try:
            if not opened.weights_come_with_module:  # given weights: checked when the module is bound
                opened.base_weights()
                report["weights_sha256_ok"] = True
        except WeightsMismatch:
            report["weights_sha256_ok"] = False
        names: set[str] = set()
        for task in range(opened.index.tasks):
            report["tasks"].append(_check_task(opened, task, names))
    report["damaged"] = [t["index"] for t in report["tasks"] if not t["ok"]]
    if not report["content_sha256_ok"] and not report["damaged"]:
        report["problem"] = "the content checksum fails outside every task's data (HDF5 metadata or free space)"
    return _finish(report)


def _check_task(opened: Archive, task: int, names: set[str]) -> dict[str, Any]:
    """One task against every rule a command applies when it reads it: its digest, its masks'
    encoding, and its record (Archive.checked_record), names unique so far."""
    record = b""
    try:
        stored = opened.stored_task(task)
        record = stored.record
        if layout.task_digest(record, stored.encoded, stored.stats) != bytes(opened.index.sha256[task]):
            return {"index": task, "name": _name(record), "ok": False, "problem": "checksum mismatch"}
        for (codec, data), site in zip(stored.encoded, opened.sites):
            if codec != maskcodec.NONE:
                maskcodec.decode_packed(data, codec, site.numel)
        name = opened.checked_record(record).name
        if name in names:
            raise ArchiveCorrupt(f"task name {name!r} appears twice")
        names.add(name)
    except (ArchiveCorrupt, OSError, ValueError) as exc:
        return {"index": task, "name": _name(record), "ok": False, "problem": str(exc)}
    return {"index": task, "name": name, "ok": True, "problem": None}


def _name(record: bytes) -> str | None:
    try:
        name = json.loads(record.decode("utf-8")).get("name")
        return name if isinstance(name, str) else None
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None


def _finish(report: dict[str, Any]) -> dict[str, Any]:
    # Weights not checked (None) are a module's given ones: the archive cannot check them alone.
    report["ok"] = bool(report["content_sha256_ok"] and report["structure_ok"]
                        and report["weights_sha256_ok"] is not False and not report["damaged"])
    return report


