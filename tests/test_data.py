import csv
import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest
from PIL import Image

from supsup_cli.core import prng
from supsup_cli.data import datasets, idx, transforms
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import DataUnavailable, InvalidArgument


def test_packaged_mnist_loads_offline_and_verified():
    train_x, train_y = datasets.load("mnist", "train")
    test_x, test_y = datasets.load("mnist", "test")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert np.bincount(test_y).tolist()[:3] == [980, 1135, 1032]


def test_permutation_is_version_stable_and_a_permutation():
    # Pinned: changing these changes every permuted task ever recorded (needs a new format version).
    perm = prng.permutation(7, 784)
    assert perm[:8].tolist() == [427, 305, 203, 139, 581, 407, 430, 379]
    assert sorted(perm.tolist()) == list(range(784))
    assert not np.array_equal(perm, prng.permutation(8, 784))


def test_permute_moves_pixels_as_documented():
    images = np.arange(2 * 784, dtype=np.uint8).reshape(2, 28, 28)
    out = transforms.permute(images, 3)
    perm = prng.permutation(3, 784)
    assert np.array_equal(out.reshape(2, -1), images.reshape(2, -1)[:, perm])


def test_rotate_agrees_with_pillow_and_zero_is_identity():
    images, _ = datasets.load("mnist", "test")
    sample = images[:20]
    assert np.array_equal(transforms.rotate(sample, 0.0), sample)
    rotated = transforms.rotate(sample, 30.0)
    for image, ours in zip(sample, rotated):
        theirs = np.asarray(Image.fromarray(image).rotate(30.0, resample=Image.BILINEAR))
        assert np.abs(theirs.astype(int) - ours.astype(int)).max() <= 1


def test_nearest_rotation_is_pillows_nearest_exactly_on_every_rotation_of_the_suite():
    images, _ = datasets.load("mnist", "test")
    sample = images[:50]
    assert np.array_equal(transforms.rotate(sample, 0.0, "nearest"), sample)
    for degrees in range(10, 360, 10):
        ours = transforms.rotate(sample, float(degrees), "nearest")
        theirs = np.stack([np.asarray(Image.fromarray(i).rotate(degrees, resample=Image.NEAREST)) for i in sample])
        assert np.array_equal(ours, theirs), degrees
    assert not np.array_equal(transforms.rotate(sample, 10.0, "nearest"), transforms.rotate(sample, 10.0))


def test_resampling_is_recorded_only_when_nearest_and_read_back():
    nearest = TaskData("mnist", rotate=10.0, resample="nearest")
    assert nearest.to_plain() == {"dataset": "mnist", "rotate": 10.0, "resample": "nearest"}
    assert TaskData.from_plain(nearest.to_plain()) == nearest
    assert TaskData("mnist", rotate=10.0).to_plain() == {"dataset": "mnist", "rotate": 10.0}
    assert nearest.default_name() == "mnist-rotate-10-nearest"
    with pytest.raises(InvalidArgument, match="give `rotate`"):
        TaskData("mnist", permute=1, resample="nearest")


def test_class_subset_keeps_only_those_labels():
    task = load_task(TaskData("mnist", classes=(3, 1)), "test")
    assert set(np.unique(task.labels).tolist()) == {1, 3} and task.classes == (3, 1)
    assert len(task.labels) == 1135 + 1010


def test_transform_arguments_are_checked():
    with pytest.raises(InvalidArgument, match="conflict"):
        TaskData("mnist", permute=1, rotate=10.0)
    with pytest.raises(InvalidArgument, match="out of range"):
        load_task(TaskData("mnist", classes=(0, 10)), "test")
    with pytest.raises(InvalidArgument, match="unknown dataset"):
        load_task(TaskData("cifar"), "test")


def test_idx_parser_checks_declared_sizes():
    good = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + b"\x01\x02\x03"
    assert idx.parse(good, 1, "x").tolist() == [1, 2, 3]
    with pytest.raises(DataUnavailable, match="declares"):
        idx.parse(good[:-1], 1, "x")
    with pytest.raises(DataUnavailable, match="not an IDX"):
        idx.parse(b"\x00\x00\x0d\x01" + good[4:], 1, "x")


def test_gzip_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(idx, "MAX_BYTES", 1000)
    with pytest.raises(DataUnavailable, match="more than"):
        idx.decompress(gzip.compress(bytes(10_000)), "bomb.gz")


# --- downloads, against a local HTTP server ---------------------------------------------------------

def _fake_idx_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {}
    for split, count in (("train", 50), ("t10k", 20)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        files[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(
            bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes())
        files[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(
            bytes([0, 0, 8, 1]) + count.to_bytes(4, "big") + labels.tobytes())
    return files


@pytest.fixture
def http_server():
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            hits.append(name)
            if name not in files:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(files[name])))
            self.end_headers()
            self.wfile.write(files[name])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", files, hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_dataset(monkeypatch, http_server):
    url, files, hits = http_server
    files.update(_fake_idx_files())
    spec = datasets.DatasetSpec("fake-mnist", md5={n: hashlib.md5(b).hexdigest() for n, b in files.items()},
                                mean=(0.5,), std=(0.25,), url=url)
    monkeypatch.setitem(datasets.DATASETS, "fake-mnist", spec)
    datasets._load.cache_clear()
    yield spec, files, hits
    datasets._load.cache_clear()


def test_download_verifies_caches_and_reuses(fake_dataset, tmp_path):
    _, _, hits = fake_dataset
    images, labels = datasets.load("fake-mnist", "train", tmp_path)
    assert images.shape == (50, 28, 28) and labels.shape == (50,)
    assert (tmp_path / "fake-mnist" / "train-images-idx3-ubyte.gz").exists()
    datasets._load.cache_clear()
    before = len(hits)
    datasets.load("fake-mnist", "train", tmp_path)
    assert len(hits) == before  # served from the cache


def test_download_with_wrong_checksum_is_refused_and_not_kept(fake_dataset, tmp_path):
    _, files, _ = fake_dataset
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"tampered")
    with pytest.raises(DataUnavailable, match="checksum mismatch"):
        datasets.load("fake-mnist", "test", tmp_path)
    assert not (tmp_path / "fake-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_offline_gives_a_clear_error(monkeypatch, tmp_path, cli):
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SUPSUP_MIRROR", f"http://127.0.0.1:{port}")
    datasets._load.cache_clear()
    result = cli("data", "export", "--data", "kmnist", "-n", "2", "--out", tmp_path / "out", "--data-dir", tmp_path)
    assert result.code == 11
    assert "offline" in result.err and len(result.err.strip().splitlines()) == 1


def test_export_writes_the_transformed_pixels_and_labels(cli, tmp_path):
    out = tmp_path / "imgs"
    result = cli("data", "export", "--data", "mnist", "--permute", "7", "-n", "3", "--out", out, "--json")
    assert result.code == 0 and result.json()["images"] == 3
    expected = load_task(TaskData("mnist", permute=7), "test")
    with open(out / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["file"], int(r["label"])) for r in rows] == [(f"{i:05d}.png", int(expected.labels[i])) for i in range(3)]
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(out / f"{i:05d}.png")), expected.images[i])
