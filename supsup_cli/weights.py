"""The frozen random base network, regenerated from the seed, bit-identical everywhere.

Method (formats/supsup-v1.md, "Base weights"): the sign of weight n of layer l is bit n mod 64 of
word floor(n / 64) of a counter-based SplitMix64 stream keyed by (seed, l). Only 64-bit integer
arithmetic is involved, so neither torch's nor numpy's random generators, versions or thread
counts can change the result.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from supsup_cli.registry import ArchSpec, WeightLayer, weight_layers

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
LAYER_STRIDE = 1 << 40  # words reserved per layer: no two layers ever share a counter


def splitmix64(counters: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64's output function applied to seed + gamma * counter (mod 2**64)."""
    z = np.uint64(seed) + counters.astype(np.uint64) * GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def random_bits(seed: int, stream: int, count: int) -> np.ndarray:
    """`count` pseudo-random bits (uint8 0/1) of stream `stream`, little-endian within each word."""
    words = (count + 63) // 64
    counters = np.arange(words, dtype=np.uint64) + np.uint64(stream * LAYER_STRIDE + 1)
    with np.errstate(over="ignore"):
        stream_words = splitmix64(counters, seed)
    as_bytes = stream_words.astype("<u8").view(np.uint8)
    return np.unpackbits(as_bytes, bitorder="little")[:count]


def kaiming_constant(layer: WeightLayer) -> np.float32:
    """sqrt(2 / fan_in), rounded once from the correctly rounded double to float32."""
    return np.float32(math.sqrt(2.0 / layer.fan_in))


def layer_weight(seed: int, index: int, layer: WeightLayer) -> np.ndarray:
    signs = random_bits(seed, index, layer.numel).reshape(layer.shape)
    c = kaiming_constant(layer)
    return np.where(signs == 1, c, -c).astype(np.float32)


def base_weights(spec: ArchSpec, seed: int) -> list[torch.Tensor]:
    """The signed Kaiming constant weights of every layer, as CPU float32 tensors."""
    return [
        torch.from_numpy(layer_weight(seed, index, layer))
        for index, layer in enumerate(weight_layers(spec))
    ]


def weights_sha256(weights: list[torch.Tensor]) -> str:
    """SHA-256 of every layer's float32 little-endian bytes, concatenated in layer order."""
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(weight.numpy().astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def check_seed(seed: int) -> int:
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed
