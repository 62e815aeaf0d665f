"""Training-time augmentation of uint8 image batches: random crop with padding, horizontal flip."""

from __future__ import annotations

import torch


def crop_and_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """[B, C, H, W] uint8: zero-pad by `padding`, take a random H x W crop, flip half the images."""
    batch, _, height, width = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(device)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(device)
    flip = (torch.rand(batch, generator=generator) < 0.5).to(device)
    rows = (torch.arange(height, device=device)[None, :] + dy[:, None])[:, None, :, None]
    cols = torch.arange(width, device=device)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    cropped = padded.gather(2, rows.expand(batch, padded.shape[1], height, padded.shape[3]))
    return cropped.gather(3, cols[:, None, None, :].expand(batch, padded.shape[1], height, width))
