"""A small convolutional image classifier built from toytorch layers."""

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from toytorch import func
from toytorch.layers import Convolution, Dropout, Linear, Pooling
from toytorch.models.base import check_choice, check_dropout, check_positive_int


@dataclass
class ConvConfig:
    """Hyper-parameters of ``ConvClassifier``; invalid values raise ValueError.

    The defaults are the classic CIFAR-10 demo network: two blocks of two 3x3
    convolutions (16 then 32 channels) with 2x2 max pooling, then one hidden layer.

    Args:
        num_classes: number of labels. Default 10.
        in_channels: 3 for RGB, 1 for grey. Default 3.
        image_size: side of the (square) input images. Default 32.
        channels: output channels of each block; one block per entry. Default [16, 32].
        convs_per_block: convolutions (each followed by ReLU) per block. Default 2.
        kernel_size: odd side of every convolution kernel, padded to keep the size.
            Default 3.
        hidden: widths of the hidden linear layers after the blocks. Default [128].
        dropout: before each linear layer. Default 0.25.
        pooling: "max" or "mean", the 2x2 pooling ending each block. Default "max".
    """

    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    channels: list[int] = field(default_factory=lambda: [16, 32])
    convs_per_block: int = 2
    kernel_size: int = 3
    hidden: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.25
    pooling: str = "max"

    def __post_init__(self) -> None:
        self.channels, self.hidden = list(self.channels), list(self.hidden)
        for name in ("num_classes", "in_channels", "image_size", "convs_per_block"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("kernel_size", self.kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not self.channels:
            raise ValueError("channels must name at least one block, got []")
        for name in ("channels", "hidden"):
            for value in getattr(self, name):
                check_positive_int(name, value)
        check_dropout("dropout", self.dropout)
        check_choice("pooling", self.pooling, ("max", "mean"))
        if self.feature_size < 1:
            raise ValueError(
                f"image_size={self.image_size} is too small for {len(self.channels)} "
                f"blocks: each one halves it"
            )

    @property
    def feature_size(self) -> int:
        """Side of the feature maps after the last block (each pooling halves it)."""
        return self.image_size // 2 ** len(self.channels)


class ConvBlock(nn.Module):
    """n x (Convolution + ReLU), then 2x2 pooling; halves H and W."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        n_conv: int,
        kernel_size: int,
        pooling: str,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2  # keeps H and W
        self.convs = nn.ModuleList(
            Convolution(
                c, channels, kernel_size, padding=pad, device=device, dtype=dtype
            )
            for c in [in_channels] + [channels] * (n_conv - 1)
        )
        self.pool = Pooling(2, mode=pooling)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = func.relu(conv(x))
        return self.pool(x)


class ConvClassifier(nn.Module):
    """Convolution blocks, then dropout + linear layers: images to class logits.

    Args:
        config: a ``ConvConfig``.
        device, dtype: where and in which float type the parameters are made.

    Shape:
        - x: (B, in_channels, image_size, image_size), normalised pixels.
        - output: logits (B, num_classes).

    Attributes:
        blocks: ModuleList of ``ConvBlock`` (convs.N.weight (C, C_in, k, k)), torch's
            default initialisation for every layer.
        head: ModuleList of ``Linear``: flattened features -> hidden... -> num_classes.
    """

    stateful = False

    def __init__(
        self,
        config: ConvConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.config = c = config
        kw = {"device": device, "dtype": dtype}
        ins = [c.in_channels] + c.channels[:-1]
        self.blocks = nn.ModuleList(
            ConvBlock(i, o, c.convs_per_block, c.kernel_size, c.pooling, **kw)
            for i, o in zip(ins, c.channels, strict=True)
        )
        widths = [c.channels[-1] * c.feature_size**2, *c.hidden, c.num_classes]
        self.head = nn.ModuleList(
            Linear(i, o, **kw) for i, o in zip(widths[:-1], widths[1:], strict=True)
        )
        self.dropout = Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        for block in self.blocks:
            x = block(x)
        x = x.flatten(1)  # (B, C * f * f)
        for i, linear in enumerate(self.head):
            x = linear(self.dropout(x))
            x = func.relu(x) if i < len(self.head) - 1 else x
        return x  # (B, num_classes)

    def _check_input(self, x: Tensor) -> None:
        c = self.config
        want = (c.in_channels, c.image_size, c.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"x must be (B, {', '.join(map(str, want))}), got {tuple(x.shape)}"
            )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
