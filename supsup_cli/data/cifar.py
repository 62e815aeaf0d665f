"""CIFAR-100 in its binary release (cifar-100-binary.tar.gz), never the pickled one.

Each record is 3074 bytes: the coarse label, the fine label, then 3 x 32 x 32 pixels (red, green,
blue planes, row-major). `train.bin` holds 50,000 records and `test.bin` 10,000, under the folder
`cifar-100-binary/` of the tarball. The tarball is read in place; nothing is extracted.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from supsup_cli.core.errors import DataUnavailable

RECORD = 3074
MEMBERS = {"train": "cifar-100-binary/train.bin", "test": "cifar-100-binary/test.bin"}
MAX_RECORDS = {"train": 50_000, "test": 10_000}


def parse(raw: bytes, split: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 3, 32, 32] uint8, fine labels [N] int64) of a split's records."""
    if not raw or len(raw) % RECORD or len(raw) // RECORD > MAX_RECORDS[split]:
        raise DataUnavailable(f"{source}: {len(raw)} bytes is not a CIFAR-100 {split} file of {RECORD}-byte records")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 1].astype(np.int64)
    if labels.max() >= 100:
        raise DataUnavailable(f"{source}: fine label {labels.max()} out of range")
    return np.ascontiguousarray(records[:, 2:]).reshape(-1, 3, 32, 32), labels


def read_split(directory: Path, tarball: Path, split: str) -> bytes:
    """The split's bytes, from an extracted `cifar-100-binary/` folder if there is one, else the tarball."""
    extracted = directory / MEMBERS[split]
    if extracted.exists():
        return extracted.read_bytes()
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            member = archive.getmember(MEMBERS[split])
            if not member.isfile() or member.size > MAX_RECORDS[split] * RECORD:
                raise DataUnavailable(f"{tarball}: {MEMBERS[split]} is not a plain file of the expected size")
            handle = archive.extractfile(member)
            assert handle is not None
            return handle.read()
    except KeyError:
        raise DataUnavailable(f"{tarball}: has no {MEMBERS[split]}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataUnavailable(f"{tarball}: cannot read the tarball ({exc})") from None
