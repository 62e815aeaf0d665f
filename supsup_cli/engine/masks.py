"""Binary masks as tensors: kept bit-packed where they are many, unpacked in chunks to compute."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from supsup_cli.core import native

_SHIFTS = torch.arange(8, dtype=torch.uint8)
_BITS_OF_BYTE = ((torch.arange(256, dtype=torch.uint8).unsqueeze(-1) >> _SHIFTS) & 1).float()  # [256, 8]


def unpack(packed: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[..., ceil(n/8)] uint8 (little-endian bits) -> [..., n] of 0/1 in `dtype`."""
    # One table lookup per byte: 1.6x faster on CPU than shifting and converting bit planes.
    table = _BITS_OF_BYTE.to(device=packed.device, dtype=dtype)
    bits = table.index_select(0, packed.reshape(-1).int())
    return bits.view(*packed.shape[:-1], -1)[..., :n].contiguous()


@dataclass(frozen=True)
class SignedUnpacking:
    """Masks of a layer whose weights are all +c or -c, unpacked straight into W * M: in C where the
    kernels are built (core.native), else one table lookup per mask byte, indexed by that byte and
    the byte of the weights' signs at its position, instead of unpacking to 0/1 and multiplying
    (1.6x faster on CPU, and the same floats)."""

    signs: torch.Tensor  # [ceil(n/8)] uint8: the weights' sign bits (1 = +c)
    magnitude: float
    n: int

    @classmethod
    def of(cls, weight: torch.Tensor) -> "SignedUnpacking | None":
        flat = weight.reshape(-1)
        magnitude = flat[:1].abs()
        if weight.dtype != torch.float32 or not bool((flat.abs() == magnitude).all()):
            return None
        return cls(pack(flat > 0), float(magnitude), flat.numel())

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """[c, ceil(n/8)] uint8 -> [c, n] float32 W * M."""
        if packed.dtype != torch.uint8 or packed.dim() != 2 or packed.shape[1] != self.signs.numel():
            raise ValueError(f"masks of {self.n} weights are [c, {self.signs.numel()}] uint8, got "
                             f"{list(packed.shape)} {packed.dtype}")
        lib = native.kernels() if packed.device.type == "cpu" and self.signs.device.type == "cpu" else None
        if lib is not None:
            packed = packed.contiguous()  # held: C reads its memory
            out = torch.empty(packed.shape[0], self.n, dtype=torch.float32)
            lib.supsup_unpack_signed(packed.shape[0], packed.shape[1], self.n, packed.data_ptr(),
                                     self.signs.data_ptr(), self.magnitude, out.data_ptr(), torch.get_num_threads())
            return out
        values = self._table.index_select(0, (packed.int() + self.signs.int() * 256).reshape(-1))
        return values.view(packed.shape[0], -1)[:, : self.n]

    @functools.cached_property
    def _table(self) -> torch.Tensor:
        """[65536, 8]: row m + 256 p is bit j of m times (+c if bit j of p else -c)."""
        bits = _BITS_OF_BYTE.to(self.signs.device)
        return (bits.unsqueeze(0) * (2 * bits.unsqueeze(1) - 1) * self.magnitude).reshape(65536, 8)


def pack(bits: torch.Tensor) -> torch.Tensor:
    """[..., n] of 0/1 -> [..., ceil(n/8)] uint8, little-endian bit order, zero padding."""
    n = bits.shape[-1]
    padded = torch.nn.functional.pad(bits.to(torch.uint8), (0, (-n) % 8))
    grouped = padded.reshape(*bits.shape[:-1], -1, 8)
    shifts = _SHIFTS.to(bits.device)
    return (grouped << shifts).sum(dim=-1, dtype=torch.uint8)


class _ThresholdSTE(torch.autograd.Function):
    """mask = (scores >= 0); the gradient passes straight through (Mallya et al.'s rule)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        return (scores >= 0).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _ThresholdMaskedWeight(torch.autograd.Function):
    """weight * (scores >= 0) in two passes; the scores' gradient is the straight-through grad * weight."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        mask = torch.ge(scores, 0, out=torch.empty_like(scores))  # straight to float: one pass fewer
        return mask.mul_(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weight,) = ctx.saved_tensors
        # grad is the masked weight's own gradient, used by no one else: reuse its memory.
        return grad.mul_(weight), None


def threshold_masked_weight(scores: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _ThresholdMaskedWeight.apply(scores, weight)


class _TopKSTE(torch.autograd.Function):
    """mask = the `density` fraction of largest scores (edge-popup); gradient straight through."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, density: float) -> torch.Tensor:
        return topk_mask(scores, density).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    flat = scores.reshape(-1)
    keep = max(1, round(density * flat.numel()))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.reshape(scores.shape)


def straight_through(scores: torch.Tensor, density: float | None) -> torch.Tensor:
    """A differentiable 0/1 mask from real-valued scores: threshold at 0, or top-k by |score|."""
    if density is None:
        return _ThresholdSTE.apply(scores)
    return _TopKSTE.apply(scores.abs(), density)


def binarize(scores: torch.Tensor, density: float | None) -> torch.Tensor:
    """The final bool mask of trained scores, by the same rule as `straight_through`."""
    return scores >= 0 if density is None else topk_mask(scores.abs(), density)


def packed_counts(packed: torch.Tensor, n: int, chunk: int = 32) -> torch.Tensor:
    """How many of the [tasks, ceil(n/8)] packed masks keep each of the n positions (float32 [n]).

    Bits are counted as bytes, a few tasks at a time (under 256: a byte cannot overflow), a quarter
    of the memory traffic of unpacking into floats: what a superposition at alpha = 1/k needs."""
    bytes_ = packed.cpu().numpy()
    total = np.zeros(bytes_.shape[1] * 8, dtype=np.int32)
    for start in range(0, bytes_.shape[0], chunk):
        total += np.unpackbits(bytes_[start : start + chunk], axis=1, bitorder="little").sum(axis=0, dtype=np.uint8)
    return torch.from_numpy(total[:n].astype(np.float32)).to(packed.device)


def packed_dot(packed: torch.Tensor, values: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """[B, c]: sum over positions of values[b] where mask i keeps them, read from the packed bits.

    For each byte position, the 256 possible sums of its 8 values are tabulated once per input; each
    mask then costs one lookup per byte, an eighth of the work of unpacking it. Worth it for a few
    inputs: the tables grow with the batch while an unpacked matrix product amortizes over it.
    `chunk` masks are read at a time: their byte indices (int64) and looked-up values are the peak
    memory (at 32, 11 MiB for LeNet's first layer; at 256, 8 times that), and smaller chunks cost no
    time that could be measured."""
    batch, n = values.shape
    width = packed.shape[1]
    if packed.shape[0] < _TABLES_FROM:
        return _direct_dot(packed, values)
    padded = torch.nn.functional.pad(values, (0, width * 8 - n))
    table = padded.view(batch, width, 8) @ _BITS_OF_BYTE.to(values).T  # [B, width, 256]
    out = torch.empty(batch, packed.shape[0], device=values.device)
    lib = native.kernels() if packed.device.type == "cpu" and values.dtype == torch.float32 else None
    if lib is not None:
        packed, table = packed.contiguous(), table.contiguous()  # held: C reads their memory
        for row in range(batch):
            lib.supsup_packed_dot(packed.shape[0], width, packed.data_ptr(), table[row].data_ptr(),
                                  out[row].data_ptr(), torch.get_num_threads())
        return out
    for start in range(0, packed.shape[0], chunk):
        index = packed[start : start + chunk].T.long()  # [width, c]: each mask's byte at each position
        out[:, start : start + chunk] = table.gather(2, index.expand(batch, -1, -1)).sum(dim=1)
    return out


# Below this many masks, tables of 256 sums per byte position (32 floats per weight) cost more than
# reading every mask's bits (one multiply-add per weight and mask).
_TABLES_FROM = 64


def _direct_dot(packed: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """packed_dot for a few masks: each mask's bits against the values, without tables."""
    batch, n = values.shape
    width = packed.shape[1]
    out = torch.empty(batch, packed.shape[0], device=values.device)
    lib = native.kernels() if packed.device.type == "cpu" and values.dtype == torch.float32 else None
    if lib is not None:
        packed = packed.contiguous()
        padded = torch.nn.functional.pad(values, (0, width * 8 - n)).contiguous()  # held: C reads it
        for row in range(batch):
            lib.supsup_packed_dot_direct(packed.shape[0], width, packed.data_ptr(), padded[row].data_ptr(),
                                         out[row].data_ptr(), torch.get_num_threads())
        return out
    step = max(1, (64 << 20) // (4 * n))  # masks unpacked at a time: 64 MiB of floats
    for start in range(0, packed.shape[0], step):
        out[:, start : start + step] = values @ unpack(packed[start : start + step], n).T
    return out


def packed_mean(packed: torch.Tensor, n: int) -> torch.Tensor:
    """The mean over tasks of [tasks, ceil(n/8)] packed masks."""
    return packed_counts(packed, n) / max(1, packed.shape[0])


def er_densities(shapes: Sequence[tuple[int, ...]], scale: float) -> list[float]:
    """The paper's per-layer budget (its reference [35], as its code computes it): a layer of
    c_out x c_in (x kh x kw) weights keeps min(0.5, scale * (c_out + c_in) / its weights)."""
    return [min(0.5, scale * (shape[0] + shape[1]) / math.prod(shape)) for shape in shapes]


def layer_densities(shapes: Sequence[tuple[int, ...]], density: float, budget: str) -> list[float]:
    """Per-site top-k densities whose weighted mean is `density`: the same everywhere ("uniform"), or
    Erdos-Renyi-kernel ("erk"): proportional to sum(shape) / prod(shape), so small layers keep more,
    capped at 1 with the rest spread over the other layers."""
    if budget == "uniform":
        return [density] * len(shapes)
    if budget != "erk":
        raise ValueError(f"unknown density budget {budget!r}")
    sizes = [math.prod(shape) for shape in shapes]
    raw = [sum(shape) / size for shape, size in zip(shapes, sizes)]
    dense: set[int] = set()
    while True:
        left = density * sum(sizes) - sum(sizes[i] for i in dense)
        scale = left / sum(raw[i] * sizes[i] for i in range(len(sizes)) if i not in dense)
        over = {i for i in range(len(sizes)) if i not in dense and scale * raw[i] > 1}
        if not over:
            return [1.0 if i in dense else scale * raw[i] for i in range(len(sizes))]
        dense |= over
