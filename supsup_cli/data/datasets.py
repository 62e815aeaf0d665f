"""IDX image datasets: MNIST ships with the package; others download once into a cache.

The cache is `--data-dir`, else $SUPSUP_DATA, else ~/.cache/supsup. $SUPSUP_MIRROR replaces the
download base URL (for an internal mirror); checksums are verified whatever the source.
"""

from __future__ import annotations

import functools
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from supsup_cli.data import cifar, folders, idx
from supsup_cli.core.errors import DataUnavailable, InvalidArgument

SPLITS = ("train", "test")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    md5: dict[str, str]  # packaged: of the decompressed file; downloaded: of the file as published
    mean: tuple[float, ...]
    std: tuple[float, ...]
    url: str | None = None  # None: shipped inside the package
    num_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)
    format: str = "idx"  # or "cifar-binary"
    augment: bool = False  # random crops and flips when training (natural images)
    max_download_bytes: int = 64 * 1024 * 1024


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist",
            md5={
                "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
                "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
                "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
                "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
            },
            mean=(0.1307,),
            std=(0.3081,),
        ),
        DatasetSpec(
            "fashion-mnist",
            md5={
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            },
            mean=(0.2860,),
            std=(0.3530,),
            url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        DatasetSpec(
            "kmnist",
            md5={
                "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
                "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
                "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
                "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
            },
            mean=(0.1918,),
            std=(0.3483,),
            url="http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ),
        DatasetSpec(
            "cifar100",
            md5={"cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8"},
            mean=(0.491, 0.482, 0.447),  # as the paper's code normalizes SplitCIFAR-100
            std=(0.247, 0.243, 0.262),
            url="https://www.cs.toronto.edu/~kriz/",
            num_classes=100,
            image_shape=(3, 32, 32),
            format="cifar-binary",
            augment=True,
            max_download_bytes=256 * 1024 * 1024,
        ),
    )
}


def spec_of(name: str) -> DatasetSpec:
    """A registered dataset, or `folder:ROOT` (users' own images, see supsup_cli.data.folders)."""
    if folders.is_folder(name):
        return DatasetSpec(name, md5={}, mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=len(folders.classes(name)),
                           image_shape=(3, 0, 0), format="folder", augment=True)
    if name not in DATASETS:
        raise InvalidArgument(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, or folder:PATH")
    return DATASETS[name]


def cache_dir(data_dir: Path | None = None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("SUPSUP_DATA"):
        return Path(os.environ["SUPSUP_DATA"])
    return Path.home() / ".cache" / "supsup"


def load(name: str, split: str, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, H, W] (one channel) or [N, C, H, W] uint8, labels [N] int64) of one split,
    read-only, cached per process."""
    if split not in SPLITS:
        raise InvalidArgument(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return _load(name, split, cache_dir(data_dir) if spec_of(name).url else None)


def normalization(name: str, data_dir: Path | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of inputs in [0, 1]: published figures, or measured on a folder's images."""
    if folders.is_folder(name):
        return folders.normalization(load(name, "train", data_dir)[0])
    spec = spec_of(name)
    return spec.mean, spec.std


@functools.lru_cache(maxsize=8)
def _load(name: str, split: str, directory: Path | None) -> tuple[np.ndarray, np.ndarray]:
    spec = spec_of(name)
    if spec.format == "folder":
        return _read_only(*folders.load(name, split))
    if spec.format == "cifar-binary":
        assert directory is not None
        tarball = directory / spec.name / "cifar-100-binary.tar.gz"
        if not (directory / spec.name / cifar.MEMBERS[split]).exists():
            _fetch(spec, "cifar-100-binary.tar.gz", tarball)
        return _read_only(*cifar.parse(cifar.read_split(directory / spec.name, tarball, split), split, str(tarball)))
    image_file, label_file = _FILES[split]
    images = idx.parse(_file_bytes(spec, image_file, directory), 3, f"{spec.name}/{image_file}")
    labels = idx.parse(_file_bytes(spec, label_file, directory), 1, f"{spec.name}/{label_file}")
    if images.shape[0] != labels.shape[0] or images.shape[1:] != spec.image_shape[1:]:
        raise DataUnavailable(f"{spec.name} {split}: {images.shape[0]} images of {images.shape[1:]} "
                              f"but {labels.shape[0]} labels")
    if labels.size and labels.max() >= spec.num_classes:
        raise DataUnavailable(f"{spec.name} {split}: label {labels.max()} out of range")
    return _read_only(images, labels.astype(np.int64))


def _read_only(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _file_bytes(spec: DatasetSpec, filename: str, directory: Path | None) -> bytes:
    if spec.url is None:
        raw = idx.decompress(resources.files("supsup_cli.data").joinpath(spec.name, filename).read_bytes(), filename)
        if hashlib.md5(raw).hexdigest() != spec.md5[filename]:
            raise DataUnavailable(f"packaged {spec.name}/{filename} fails its checksum; reinstall supsup")
        return raw
    assert directory is not None
    path = directory / spec.name / filename
    _fetch(spec, filename, path)
    return idx.decompress(path.read_bytes(), str(path))


def _fetch(spec: DatasetSpec, filename: str, path: Path) -> None:
    """Download the file unless it is there; either way, check it against its published MD5."""
    if not path.exists():
        download(_base_url(spec) + filename, path, spec.md5[filename], spec.max_download_bytes)
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != spec.md5[filename]:
        raise DataUnavailable(f"{path}: checksum mismatch; delete it to download it again")


def _base_url(spec: DatasetSpec) -> str:
    mirror = os.environ.get("SUPSUP_MIRROR")
    return mirror.rstrip("/") + f"/{spec.name}/" if mirror else str(spec.url)


def download(url: str, path: Path, md5: str, limit: int) -> None:
    """Fetch url into path (atomically), or raise DataUnavailable with what to do about it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            received = 0
            while block := response.read(1 << 16):
                received += len(block)
                if received > limit:
                    raise DataUnavailable(f"{url}: larger than {limit} bytes; refusing it")
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != md5:
            raise DataUnavailable(f"{url}: checksum mismatch (md5 {digest.hexdigest()}, expected {md5})")
        os.replace(partial, path)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataUnavailable(
            f"cannot download {url} ({reason}); are you offline? Put the file at {path}, "
            "or point SUPSUP_DATA or --data-dir at a folder that has it"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
