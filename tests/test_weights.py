import math
import subprocess
import sys

import numpy as np
import pytest

from supsup_cli.core import prng, registry, weights
from tests.conftest import REPO

LENET_SEED0_SHA256 = "cb8f5dafa140e51cb892405cb86ab65960ab337be4ab9d47761ab704967b8c5e"


def test_splitmix64_matches_the_reference_sequence():
    # Vigna's splitmix64.c with state 1234567: the first five outputs.
    expected = [6457827717110365317, 3203168211198807973, 9817491932198370423,
                4593380528125082431, 16408922859458223821]
    assert prng.splitmix64(np.arange(1, 6, dtype=np.uint64), 1234567).tolist() == expected


def test_lenet_weights_hash_is_pinned():
    # A change here breaks every archive ever written: it needs a new format version.
    spec = registry.resolve("lenet300-100")
    assert weights.weights_sha256(weights.base_weights(spec, 0)) == LENET_SEED0_SHA256


@pytest.mark.parametrize("name", sorted(registry.REGISTRY))
def test_weights_are_signed_kaiming_constants(name):
    spec = registry.resolve(name)
    for layer, w in zip(registry.weight_layers(spec), weights.base_weights(spec, 3)):
        c = np.float32(math.sqrt(2.0 / layer.fan_in))
        assert w.dtype == np.float32 and w.shape == layer.shape
        assert set(np.unique(w).tolist()) == {float(-c), float(c)}
        assert abs((w > 0).mean() - 0.5) < max(0.01, 2.5 / math.sqrt(w.size))  # 5 standard deviations


def test_seeds_and_layers_give_different_streams():
    a = prng.random_bits(0, 0, 4096)
    assert not np.array_equal(a, prng.random_bits(1, 0, 4096))
    assert not np.array_equal(a, prng.random_bits(0, 1, 4096))


@pytest.mark.parametrize("threads", [1, 2])
def test_hash_is_identical_in_another_process_and_thread_count(threads):
    code = (
        "import torch; torch.set_num_threads(%d);"
        "from supsup_cli.core import prng, registry, weights;"
        "print(weights.weights_sha256(weights.base_weights(registry.resolve('lenet300-100'), 0)))" % threads
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == LENET_SEED0_SHA256
