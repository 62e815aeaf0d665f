"""Archives written by every format version, frozen in tests/data/archives and pinned by digest:
this supsup must read each one, task by task, and predict what the version that wrote it predicted
(tests/data/archives/freeze.py wrote them and MANIFEST.json)."""

import hashlib
import json
import shutil

import h5py

import numpy as np
import pytest

from supsup_cli import archive
from supsup_cli.archive import header, maskcodec
from supsup_cli.archive.records import mask_sha256
from supsup_cli.archive.verify import verify
from tests.conftest import REPO
from tests.data.archives.freeze import frozen_file, frozen_model, probe_images

FROZEN = REPO / "tests" / "data" / "archives"
MANIFEST = json.loads((FROZEN / "MANIFEST.json").read_text())


def test_every_frozen_archive_is_pinned_and_every_version_has_one():
    on_disk = {f"{p.parent.name}/{p.name.removesuffix('.xz')}" for p in FROZEN.glob("v*/*.supsup*")}
    assert on_disk == set(MANIFEST)
    assert {entry["format_version"] for entry in MANIFEST.values()} == set(range(1, header.FORMAT_VERSION + 1))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_a_frozen_archive_reads_task_by_task_as_it_was_written(name, tmp_path):
    path, pinned = frozen_file(name, tmp_path), MANIFEST[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned["sha256"]  # the file itself is unchanged
    report = verify(path)
    assert report["ok"] and [t["name"] for t in report["tasks"]] == [t["name"] for t in pinned["tasks"]]
    with archive.Archive(path) as opened:
        assert opened.format_version == pinned["format_version"]
        spec = opened.spec
        for index, expected in enumerate(pinned["tasks"]):
            record = opened.tasks[index]
            assert record.name == expected["name"]
            assert record.mask_sha256 == expected["mask_sha256"]
            if (opened.index.mask_codec[index] == maskcodec.NONE).all():
                continue  # kept only in the Hopfield reservoir
            packed = opened.packed_mask(index)
            if expected["mask_sha256"] is not None:
                assert mask_sha256(packed) == expected["mask_sha256"]
            densities = [float(maskcodec.unpack(p, site.numel).mean()) for p, site in zip(packed, opened.sites)]
            assert np.allclose(densities, record.density, atol=1e-6)
    images, model = probe_images(spec), frozen_model(path)
    if "hopfield" in pinned:
        found = model.infer(images, hopfield=True)
        assert {"tasks": found.tasks.tolist(), "classes": found.classes.tolist()} == pinned["hopfield"]
        return
    for index, expected in enumerate(pinned["tasks"]):
        assert model.infer(images, task=index).classes.tolist() == expected["classes"]
    if "one_shot_tasks" in pinned:
        assert model.infer(images).tasks.tolist() == pinned["one_shot_tasks"]


def test_the_frozen_archives_cover_both_codecs_statistics_and_a_reservoir(tmp_path):
    for version, data in (("v2", {"dataset": "mnist", "rotate": 30.0}),
                          ("v3", {"dataset": "mnist", "rotate": 30.0, "resample": "nearest"})):
        with archive.Archive(FROZEN / version / "lenet-bitpacked-rice.supsup") as opened:
            assert set(np.unique(opened.index.mask_codec).tolist()) == {maskcodec.BITPACK, maskcodec.RICE}
            assert opened.tasks[1].data == data
    with archive.Archive(FROZEN / "v2" / "resnet18-narrow-stats.supsup") as opened:
        stats = opened.stats(0)
        assert stats.size > 0 and not np.allclose(stats[: stats.size // 2], 0)  # running means were learned
    with archive.Archive(frozen_file("v3/hopfield-dropped.supsup", tmp_path)) as opened:
        assert (opened.index.mask_codec == maskcodec.NONE).all() and opened.reservoir_info.tasks == 2


def _relabelled(tmp_path, name: str, version: int):
    """A frozen archive whose file claims another format version (root attribute and header)."""
    path = tmp_path / "relabelled.supsup"
    shutil.copyfile(FROZEN / name, path)
    with h5py.File(path, "r+") as f:
        f.attrs.create("format_version", version, dtype="<u4")
    image = bytearray(path.read_bytes())
    image[: header.SIZE] = header.Header(version, len(image), hashlib.sha256(image[header.SIZE:]).digest()).to_bytes()
    path.write_bytes(bytes(image))
    return path


@pytest.mark.parametrize("name, version, element", [
    ("v3/lenet-bitpacked-rice.supsup", 2, "data field 'resample' exists only since format version 3"),
    ("v2/resnet18-narrow-stats.supsup", 1, "architecture resnet18-narrow exists only since format version 2"),
    ("v2/lenet-bitpacked-rice.supsup", 1, "mask codec 2 does not exist in format version 1"),
    ("v4/mlp-of-ones-own.supsup", 3, "architecture mlp:64-32 exists only since format version 4"),
])
def test_an_element_newer_than_its_files_version_is_refused(cli, tmp_path, name, version, element):
    path = _relabelled(tmp_path, name, version)
    result = cli("inspect", path)
    assert result.code == 5 and element in result.err, result.err


def test_a_file_newer_than_this_supsup_is_refused_as_newer(cli, tmp_path):
    path = _relabelled(tmp_path, "v3/lenet-bitpacked-rice.supsup", header.FORMAT_VERSION + 1)
    result = cli("inspect", path)
    assert result.code == 6 and f"version {header.FORMAT_VERSION + 1}" in result.err
