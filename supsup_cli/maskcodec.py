"""How one layer's binary mask becomes bytes in the archive, and back.

Codecs are numbered in the archive (formats/supsup-v1.md, "Mask codecs"):
  0 none     the mask is not stored (its task lives only in the Hopfield reservoir)
  1 bitpack  one bit per weight, little-endian bit order within each byte, zero padding
"""

from __future__ import annotations

import numpy as np

from supsup_cli.errors import ArchiveCorrupt

NONE = 0
BITPACK = 1
NAMES = {NONE: "none", BITPACK: "bitpack"}


def packed_size(n: int) -> int:
    return (n + 7) // 8


def pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(bits, dtype=bool).reshape(-1), bitorder="little")


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(packed, count=n, bitorder="little").astype(bool)


def encode(bits: np.ndarray) -> tuple[int, bytes]:
    """Choose a codec for one layer's mask and encode it."""
    return BITPACK, pack(bits).tobytes()


def max_encoded_size(codec: int, n: int) -> int:
    """The most bytes a valid encoding of an n-bit mask may take: checked before reading."""
    if codec == NONE:
        return 0
    if codec == BITPACK:
        return packed_size(n)
    raise ArchiveCorrupt(f"unknown mask codec {codec}")


def decode_packed(data: bytes, codec: int, n: int) -> np.ndarray:
    """The mask as bit-packed uint8 (little-endian bit order), whatever codec stored it."""
    if codec == BITPACK:
        packed = np.frombuffer(data, dtype=np.uint8)
        if packed.size != packed_size(n):
            raise ArchiveCorrupt(f"bit-packed mask has {packed.size} bytes, expected {packed_size(n)}")
        if n % 8 and packed[-1] >> (n % 8):
            raise ArchiveCorrupt("bit-packed mask has non-zero padding bits")
        return packed
    if codec == NONE:
        raise ArchiveCorrupt("mask is not stored in the archive (codec 'none')")
    raise ArchiveCorrupt(f"unknown mask codec {codec}")
