"""Mask codecs near the entropy bound, the size report, and reading one task without the others."""

import hashlib
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.archive import maskcodec
from supsup_cli.archive import header
from supsup_cli.core.errors import ArchiveCorrupt
from supsup_cli.api.size import entropy_bits
from tests.conftest import REPO, dummy_record, random_masks


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 5000), density=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_codecs_round_trip_and_the_smaller_one_is_chosen(n, density, seed):
    bits = np.random.default_rng(seed).random(n) < density
    codec, data = maskcodec.encode(bits)
    assert np.array_equal(maskcodec.unpack(maskcodec.decode_packed(data, codec, n), n), bits)
    assert len(data) <= maskcodec.packed_size(n)
    assert len(data) <= maskcodec.max_encoded_size(codec, n)


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=300), n=st.integers(1, 2000))
def test_damaged_rice_data_is_refused_cleanly(data, n):
    try:
        bits = maskcodec.rice_decode(data, n)
    except ArchiveCorrupt:
        return
    assert bits.shape == (n,) and bits.dtype == bool


@pytest.mark.parametrize("density, limit", [(0.5, 1.001), (0.3, 1.02), (0.1, 1.03), (0.02, 1.03), (0.9, 1.03)])
def test_random_masks_cost_close_to_their_entropy(density, limit):
    n = 235200
    bits = np.random.default_rng(1).random(n) < density
    _, data = maskcodec.encode(bits)
    assert len(data) * 8 <= limit * entropy_bits(int(bits.sum()), n)


def test_rice_layout_is_as_documented():
    bits = np.zeros(20, dtype=bool)
    bits[[3, 4, 12]] = True  # gaps 3, 0, 7
    codec, data = maskcodec.encode(np.concatenate([bits, np.zeros(100, bool)]))
    assert codec == maskcodec.RICE
    coded, k, count = maskcodec.RICE_HEADER.unpack_from(data)
    assert (coded, count) == (1, 3)
    body = np.unpackbits(np.frombuffer(data[6:], np.uint8))
    remainders = [int("".join(map(str, body[i * k:(i + 1) * k])), 2) if k else 0 for i in range(3)]
    assert [(g >> k << k) + r for g, r in zip((3, 0, 7), remainders)] == [3, 0, 7]


@pytest.mark.slow
def test_trained_masks_sizes_against_the_bounds(cli, lenet_archive):
    assert cli("learn-task", lenet_archive, "--permute", "1", "--steps", "300").code == 0
    threshold = cli("size", lenet_archive, "--json").json()
    for key in ("bytes_on_disk", "mask_bytes", "entropy_bound_bytes", "csc_int16_bytes",
                "dense_fp32_bytes_per_task", "tasks"):
        assert key in threshold
    assert threshold["mask_bytes"] <= 1.02 * threshold["entropy_bound_bytes"]
    assert threshold["dense_fp32_bytes_per_task"] == 4 * (784 * 300 + 300 * 100 + 100 * 100)
    assert cli("learn-task", lenet_archive, "--permute", "2", "--steps", "300", "--density", "0.1").code == 0
    both = cli("size", lenet_archive, "--json").json()
    sparse_bytes = both["mask_bytes"] - threshold["mask_bytes"]
    sparse_bound = both["entropy_bound_bytes"] - threshold["entropy_bound_bytes"]
    assert sparse_bytes <= 1.10 * sparse_bound
    assert sparse_bytes < (both["csc_int16_bytes"] - threshold["csc_int16_bytes"])
    assert both["layers"][0]["codecs"] == {"bitpack": 1, "rice": 1}


def test_reading_one_task_of_a_thousand_decodes_only_that_task(lenet_archive, monkeypatch):
    spec = registry.resolve("lenet300-100")
    masks = random_masks(spec, 0, density=0.1)
    with archive.writer.transaction(lenet_archive) as (_, f):
        for task in range(1000):
            archive.writer.write_task(f, archive.StoredTask.of(dummy_record(f"t{task}", spec, masks), masks))
    decoded = []
    real_decode = maskcodec.decode_packed
    monkeypatch.setattr(maskcodec, "decode_packed", lambda *a: decoded.append(a) or real_decode(*a))
    with archive.Archive(lenet_archive) as opened:
        assert len(opened.tasks) == 1000 and not decoded  # opening decodes no mask
        mask = opened.packed_mask(777)
    assert len(decoded) == len(masks)
    assert all(np.array_equal(maskcodec.unpack(p, m.size), m.reshape(-1)) for p, m in zip(mask, masks))


V1 = REPO / "tests" / "data" / "archives" / "v1" / "lenet-2tasks.supsup"
V1_MASK_SHA256 = ["53b497b70262458c22def0e0053aae772dc7d58047ca2d1911362f602c8bcc7b",
                  "11440bb5ef2c38684db8f4c001f06e664afcf2bda3012ee46837c9f2b935126e"]


def _mask_digest(opened, task):
    return hashlib.sha256(b"".join(m.tobytes() for m in opened.packed_mask(task))).hexdigest()


def test_version_1_archives_stay_readable_and_are_upgraded_on_write(tmp_path):
    with archive.Archive(V1) as opened:
        assert opened.format_version == 1 and [t.name for t in opened.tasks] == ["task-0", "task-1"]
        assert [_mask_digest(opened, t) for t in range(2)] == V1_MASK_SHA256
    copy = tmp_path / "old.supsup"
    shutil.copyfile(V1, copy)
    spec = registry.resolve("lenet300-100")
    sparse = random_masks(spec, 5, density=0.05)
    archive.append_task(copy, dummy_record("sparse", spec, sparse), sparse)
    with archive.Archive(copy) as opened:
        assert opened.format_version == header.FORMAT_VERSION == 4
        assert [_mask_digest(opened, t) for t in range(2)] == V1_MASK_SHA256
        assert int(opened.index.mask_codec[2, 0]) == maskcodec.RICE


def test_a_version_1_archive_cannot_contain_rice_masks(tmp_path):
    import h5py

    from supsup_cli.archive import layout

    copy = tmp_path / "forged.supsup"
    shutil.copyfile(V1, copy)
    with h5py.File(copy, "r+") as f:
        f[layout.MASK_CODEC][0, 2] = maskcodec.RICE
    raw = bytearray(copy.read_bytes())
    parsed = header.Header(1, len(raw), hashlib.sha256(raw[header.SIZE:]).digest())
    raw[: header.SIZE] = parsed.to_bytes()
    copy.write_bytes(bytes(raw))
    with pytest.raises(ArchiveCorrupt, match="does not exist in format version 1"):
        archive.Archive(copy)


def test_rice_data_with_too_few_stops_is_refused_not_crashed():
    for body in (b"", b"\xff"):
        with pytest.raises(ArchiveCorrupt, match="unary"):
            maskcodec.rice_decode(maskcodec.RICE_HEADER.pack(1, 0, 1) + body, 100)


def test_rice_refuses_non_zero_padding_after_the_remainders():
    bits = np.zeros(1000, bool)
    bits[[3, 50, 700]] = True
    data = bytearray(maskcodec.rice_encode(bits))
    assert np.array_equal(maskcodec.rice_decode(bytes(data), 1000), bits)
    coded, k, count = maskcodec.RICE_HEADER.unpack_from(data)
    assert (count * k) % 8  # there is padding in the last remainder byte to damage
    data[maskcodec.RICE_HEADER.size + (count * k) // 8] |= 1
    with pytest.raises(ArchiveCorrupt, match="padding after its remainders"):
        maskcodec.rice_decode(bytes(data), 1000)


def test_size_counts_the_papers_scheme_with_batch_norm_statistics(cli):
    frozen = REPO / "tests" / "data" / "archives" / "v2"
    report = cli("size", frozen / "resnet18-narrow-stats.supsup", "--json").json()
    paper = report["paper_scheme"]
    assert paper["batch_norm_statistics_bytes"] == 4 * registry.stats_size(registry.resolve("resnet18-narrow"))
    assert paper["masks_csc_int16_bytes"] == report["csc_int16_bytes"] == sum(s["csc_int16_bytes"] for s in report["layers"])
    assert paper["total_bytes"] == paper["masks_csc_int16_bytes"] + paper["batch_norm_statistics_bytes"]
    # half-density random masks keep more than 65,535 weights in the widest layers: named, not hidden
    assert "layer4.1.conv2" in paper["layers_past_int16_pointers"] and "conv1" not in paper["layers_past_int16_pointers"]
    lenet = cli("size", frozen / "lenet-bitpacked-rice.supsup", "--json").json()["paper_scheme"]
    assert lenet["batch_norm_statistics_bytes"] == 0 and lenet["layers_past_int16_pointers"] == ["fc1"]
