"""Image preprocessing on tensors: per-channel statistics, normalisation, augmentation.

Images travel as uint8 (N, C, H, W) until a batch is drawn; augmentation works on the
uint8 batch (so padding is black, as with PIL-based pipelines) and normalisation turns
it into float32 ``(x / 255 - mean) / std`` per channel.
"""

from __future__ import annotations

import torch
from torch import Tensor


def channel_stats(images: Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in [0, 1].

    Summed in float64 over chunks, so 50,000 CIFAR images need no float copy of the set.
    """
    if images.shape[0] == 0:
        raise ValueError("images is empty: no statistics to compute")
    C = images.shape[1]
    total = torch.zeros(C, dtype=torch.float64)
    squares = torch.zeros(C, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.tolist(), std.tolist()


def normalize(images: Tensor, mean: list[float], std: list[float]) -> Tensor:
    """uint8 (N, C, H, W) -> float32 (x / 255 - mean) / std, channel by channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.to(torch.float32) / 255 - m) / s


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Pad each image with ``padding`` zeros, then cut a random H x W window back out.

    (N, C, H, W) -> (N, C, H, W); one offset per image, drawn from ``generator``.
    """
    if padding == 0:
        return images
    N, C, H, W = images.shape
    padded = images.new_zeros(N, C, H + 2 * padding, W + 2 * padding)
    padded[:, :, padding : padding + H, padding : padding + W] = images
    dy = torch.randint(0, 2 * padding + 1, (N,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (N,), generator=generator)
    rows = (dy[:, None] + torch.arange(H))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(W))[:, None, :]  # (N, 1, W)
    n = torch.arange(N)[:, None, None]
    return padded.permute(0, 2, 3, 1)[n, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    out = images.clone()
    out[flip] = images[flip].flip(-1)
    return out


def augment(images: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """The standard CIFAR augmentation: random crop with padding, horizontal flip."""
    return random_flip(random_crop(images, padding, generator), generator)
