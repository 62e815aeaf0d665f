"""Binary masks as tensors: kept bit-packed where they are many, unpacked in chunks to compute."""

from __future__ import annotations

import torch

_SHIFTS = torch.arange(8, dtype=torch.uint8)


def unpack(packed: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[..., ceil(n/8)] uint8 (little-endian bits) -> [..., n] of 0/1 in `dtype`."""
    shifts = _SHIFTS.to(packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(*packed.shape[:-1], -1)[..., :n].to(dtype)


def pack(bits: torch.Tensor) -> torch.Tensor:
    """[..., n] of 0/1 -> [..., ceil(n/8)] uint8, little-endian bit order, zero padding."""
    n = bits.shape[-1]
    padded = torch.nn.functional.pad(bits.to(torch.uint8), (0, (-n) % 8))
    grouped = padded.reshape(*bits.shape[:-1], -1, 8)
    shifts = _SHIFTS.to(bits.device)
    return (grouped << shifts).sum(dim=-1, dtype=torch.uint8)
