"""How one site's binary mask becomes bytes in the archive, and back (formats/supsup-v4.md, 3.6).

  0 none     the mask is not stored (its task lives only in the Hopfield reservoir)
  1 bitpack  one bit per weight, little-endian bit order within each byte, zero padding
  2 rice     the positions of the rarer bit value as Rice-coded gaps, in two vectorizable
             sections: fixed-width remainders, then the quotients in unary

The writer picks, per site, whichever of bitpack and rice is smaller: half-density masks cost one
bit per weight, sparse (or dense) ones close to their entropy n * H2(density).
"""

from __future__ import annotations

import struct

import numpy as np

from supsup_cli.core.errors import ArchiveCorrupt

NONE = 0
BITPACK = 1
RICE = 2
NAMES = {NONE: "none", BITPACK: "bitpack", RICE: "rice"}
RICE_HEADER = struct.Struct("<BBI")  # coded bit value, Rice parameter k, count of coded positions
MAX_RICE_K = 31


def packed_size(n: int) -> int:
    return (n + 7) // 8


def pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(bits, dtype=bool).reshape(-1), bitorder="little")


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(packed, count=n, bitorder="little").astype(bool)


def encode(bits: np.ndarray) -> tuple[int, bytes]:
    """The smaller of bitpack and rice for this mask (bitpack on a tie)."""
    flat = np.asarray(bits, dtype=bool).reshape(-1)
    rice = rice_encode(flat)
    if len(rice) < packed_size(flat.size):
        return RICE, rice
    return BITPACK, pack(flat).tobytes()


def max_encoded_size(codec: int, n: int) -> int:
    """The most bytes a valid encoding of an n-bit mask may take: checked before reading."""
    if codec == NONE:
        return 0
    if codec == BITPACK:
        return packed_size(n)
    if codec == RICE:
        return packed_size(n) + RICE_HEADER.size
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
    if codec == RICE:
        return pack(rice_decode(data, n))
    if codec == NONE:
        raise ArchiveCorrupt("mask is not stored in the archive (codec 'none')")
    raise ArchiveCorrupt(f"unknown mask codec {codec}")


def rice_encode(bits: np.ndarray) -> bytes:
    coded = int(np.count_nonzero(bits) <= bits.size // 2)  # list the positions of the rarer value
    positions = np.flatnonzero(bits == bool(coded)).astype(np.int64)
    gaps = np.diff(positions, prepend=-1) - 1
    k = _best_rice_parameter(gaps)
    quotients = gaps >> k
    remainders = gaps & ((1 << k) - 1)
    remainder_bits = (remainders[:, None] >> np.arange(k - 1, -1, -1)) & 1
    unary = np.ones(int(quotients.sum()) + len(gaps), dtype=np.uint8)
    unary[np.cumsum(quotients + 1) - 1] = 0  # q ones, then a zero
    return (RICE_HEADER.pack(coded, k, len(gaps)) + np.packbits(remainder_bits.reshape(-1)).tobytes()
            + np.packbits(unary).tobytes())


def _best_rice_parameter(gaps: np.ndarray) -> int:
    """The k minimizing count * (k + 1) + sum(gap >> k) bits."""
    if not gaps.size:
        return 0
    top = min(MAX_RICE_K, int(gaps.max()).bit_length())
    costs = [gaps.size * (k + 1) + int((gaps >> k).sum()) for k in range(top + 1)]
    return int(np.argmin(costs))


def rice_decode(data: bytes, n: int) -> np.ndarray:
    if len(data) < RICE_HEADER.size:
        raise ArchiveCorrupt("rice-coded mask is shorter than its header")
    coded, k, count = RICE_HEADER.unpack_from(data)
    if coded > 1 or k > MAX_RICE_K or count > n:
        raise ArchiveCorrupt("rice-coded mask has an invalid header")
    body = np.frombuffer(data, dtype=np.uint8, offset=RICE_HEADER.size)
    remainder_bytes = packed_size(count * k)
    if body.size < remainder_bytes:
        raise ArchiveCorrupt("rice-coded mask is truncated")
    all_remainder_bits = np.unpackbits(body[:remainder_bytes])
    if all_remainder_bits[count * k :].any():  # one encoding per mask: its digest names it
        raise ArchiveCorrupt("rice-coded mask has non-zero padding after its remainders")
    remainder_bits = all_remainder_bits[: count * k].reshape(count, k).astype(np.int64)
    remainders = (remainder_bits << np.arange(k - 1, -1, -1)).sum(axis=1) if k else np.zeros(count, np.int64)
    unary = np.unpackbits(body[remainder_bytes:])
    stops = np.flatnonzero(unary == 0)[:count]
    if stops.size < count:
        raise ArchiveCorrupt("rice-coded mask has a damaged unary section")
    used = int(stops[-1]) + 1 if count else 0
    if unary.size - used >= 8 or unary[used:].any():
        raise ArchiveCorrupt("rice-coded mask has a damaged unary section")
    quotients = np.diff(stops, prepend=-1) - 1
    positions = np.cumsum((quotients << k) + remainders + 1) - 1
    if count and positions[-1] >= n:
        raise ArchiveCorrupt("rice-coded mask lists a position beyond its size")
    bits = np.full(n, not coded, dtype=bool)
    bits[positions] = bool(coded)
    return bits
