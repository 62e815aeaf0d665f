"""The IDX format of MNIST-like datasets (LeCun et al.): a big-endian header, then uint8 data."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from supsup_cli.core.errors import DataUnavailable

_UBYTE = 0x08
MAX_BYTES = 512 * 1024 * 1024


def parse(raw: bytes, ndim: int, source: str) -> np.ndarray:
    """An IDX array of unsigned bytes with `ndim` dimensions, checked against its declared size."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or raw[3] != ndim:
        raise DataUnavailable(f"{source}: not an IDX file of {ndim}-dimensional unsigned bytes")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataUnavailable(f"{source}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if int(np.prod(dims, dtype=np.uint64)) != len(raw) - header:
        raise DataUnavailable(f"{source}: IDX declares {dims} but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def decompress(compressed: bytes, source: str) -> bytes:
    """gunzip, refusing output beyond MAX_BYTES (a gzip bomb) and damaged streams."""
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = decoder.decompress(compressed, MAX_BYTES + 1)
    except zlib.error as exc:
        raise DataUnavailable(f"{source}: damaged gzip data ({exc})") from None
    if len(raw) > MAX_BYTES or decoder.unconsumed_tail:
        raise DataUnavailable(f"{source}: decompresses to more than {MAX_BYTES} bytes")
    if not decoder.eof:
        raise DataUnavailable(f"{source}: truncated gzip data")
    return raw


