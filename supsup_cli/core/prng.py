"""Version-stable pseudo-random numbers: a counter-based SplitMix64, in numpy integer arithmetic.

Stream s, word w is mix(seed + gamma * (s * 2**40 + w + 1)) mod 2**64 (formats/supsup-v4.md).
Base weights use streams 0, 1, ... (one per layer); task permutations use PERMUTATION_STREAM.
"""

from __future__ import annotations

import hashlib

import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
STREAM_STRIDE = 1 << 40  # words reserved per stream: no two streams ever share a counter
PERMUTATION_STREAM = (1 << 23) - 1


def splitmix64(counters: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64's output function applied to seed + gamma * counter (mod 2**64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + counters.astype(np.uint64) * GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def stream_words(seed: int, stream: int, count: int) -> np.ndarray:
    counters = np.arange(count, dtype=np.uint64) + np.uint64(stream * STREAM_STRIDE + 1)
    return splitmix64(counters, seed)


def random_bits(seed: int, stream: int, count: int) -> np.ndarray:
    """`count` bits (uint8 0/1) of a stream: bit t is bit t mod 64 of word t // 64."""
    words = stream_words(seed, stream, (count + 63) // 64)
    return np.unpackbits(words.astype("<u8").view(np.uint8), bitorder="little")[:count]


def permutation(seed: int, n: int) -> np.ndarray:
    """A permutation of range(n): indices sorted by their word of PERMUTATION_STREAM (ties by index)."""
    keys = stream_words(seed, PERMUTATION_STREAM, n)
    return np.argsort(keys, kind="stable")


def task_seed(archive_seed: int, index: int, name: str, seed: int = 0) -> int:
    """The seed of one task's initial scores and batch order: the first 8 bytes (little-endian) of
    SHA-256 of "supsup-task/<archive seed>/<task index>/<task name>/<--seed>".

    Every task must start from its own draw: tasks that share their initial scores end with masks
    that agree on most bits, and the entropy gradient of their superposition then cannot tell them
    apart (One-Shot H fails). The same command on the same archive still gives the same mask, and the
    name keeps tasks trained in separate archives (to be merged) apart too.
    """
    key = f"supsup-task/{archive_seed}/{index}/{name}/{seed}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
