"""Which format version brought each element of an archive (formats/supsup-v4.md, section 0).

A file says its version; an element newer than that version cannot be in it, so it is refused as
damaged. A file newer than this supsup is refused before it is parsed (header.read_header, exit 6).
"""

from __future__ import annotations

from supsup_cli.archive import maskcodec
from supsup_cli.archive.records import TaskRecord
from supsup_cli.core.errors import ArchiveCorrupt
from supsup_cli.core.registry import ArchSpec

CODECS = {maskcodec.NONE: 2, maskcodec.BITPACK: 1, maskcodec.RICE: 2}
ARCHITECTURES = {"lenet300-100": 1, "fc1024-1024": 1, "fc2048-2048-hop": 1, "resnet18-narrow": 2, "resnet50": 2}
FAMILIES = {"mlp": 1, "resnet": 2, "module": 4}
NORMS = {"none": 1, "batch": 1, "running": 2}
DATASETS = {"mnist": 1, "fashion-mnist": 1, "kmnist": 1, "cifar100": 2, "folder:": 2, "arrays": 2}  # folder:ROOT
DATA_FIELDS = {"dataset": 1, "permute": 1, "rotate": 1, "classes": 1, "resample": 3, "images": 2, "sha256": 2}
RECORD_FIELDS = {"mask_sha256": 2}  # the other record fields are in every version
HOPFIELD_RESERVOIR = 2
CUSTOM_ARCHITECTURES = 4  # any spec not in the registry: mlp:W1-W2-..., or one's own JSON


def check_since(version: int, since: int | None, element: str) -> None:
    if since is not None and since > version:
        raise ArchiveCorrupt(f"{element} exists only since format version {since}; this file says version {version}")


def check_architecture(version: int, spec: ArchSpec) -> None:
    check_since(version, ARCHITECTURES.get(spec.name, CUSTOM_ARCHITECTURES), f"architecture {spec.name}")
    check_since(version, FAMILIES.get(spec.family), f"family {spec.family}")
    check_since(version, NORMS.get(spec.norm), f"norm {spec.norm}")


def check_record(version: int, record: TaskRecord) -> None:
    if record.mask_sha256 is not None:
        check_since(version, RECORD_FIELDS["mask_sha256"], "record field 'mask_sha256'")
    for key in record.data:
        check_since(version, DATA_FIELDS.get(key), f"data field {key!r}")
    dataset = str(record.data.get("dataset", ""))
    check_since(version, DATASETS.get("folder:" if dataset.startswith("folder:") else dataset), f"dataset {dataset}")
