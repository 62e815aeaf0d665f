"""The frozen random base network, regenerated from the seed, bit-identical everywhere.

Method (formats/supsup-v4.md, "Base weights"): the sign of weight t of layer l is bit t of
stream l of supsup_cli.core.prng. Only 64-bit integer arithmetic is involved, so neither torch's nor
numpy's random generators, versions or thread counts can change the result.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from supsup_cli.core.prng import random_bits
from supsup_cli.core.registry import ArchSpec, WeightLayer, weight_layers


def kaiming_constant(layer: WeightLayer) -> np.float32:
    """sqrt(2 / fan_in), rounded once from the correctly rounded double to float32."""
    return np.float32(math.sqrt(2.0 / layer.fan_in))


def layer_weight(seed: int, index: int, layer: WeightLayer) -> np.ndarray:
    signs = random_bits(seed, index, layer.numel).reshape(layer.shape)
    c = kaiming_constant(layer)
    return np.where(signs == 1, c, -c).astype(np.float32)


def base_weights(spec: ArchSpec, seed: int) -> list[np.ndarray]:
    """The signed Kaiming constant weights of every layer, float32, torch layout."""
    return [layer_weight(seed, index, layer) for index, layer in enumerate(weight_layers(spec))]


def weights_sha256(weights: list[np.ndarray]) -> str:
    """SHA-256 of every layer's float32 little-endian bytes, concatenated in layer order."""
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(weight, dtype="<f4").tobytes())
    return digest.hexdigest()
