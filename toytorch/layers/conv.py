"""Convolution and pooling over images: twins of nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d.

The convolution is written from matmuls over shifted views of the padded,
channel-major input (``toytorch.layers._conv_matmul``), with a hand-written backward
that saves only the input and the weight, which keeps memory near nn.Conv2d's.

Known shortcomings: the convolution is not twice differentiable (its backward is
``once_differentiable``). Its time against nn.Conv2d (oneDNN) depends on how busy
the CPU is. Forward + backward of 128 x 64 x 32 x 32 (64 -> 64) on the quiet 2-core
machine took 1.37-1.41x as long with two threads and 1.36x with one, within the 1.5x
target; on a busy one (load 5-7) the two-thread ratio rose to 1.6-1.7x, over it
(3 -> 64: 1.05-1.2x quiet; benchmarks/bench_conv.py). The forward alone is about 2x
oneDNN's, whose blocked direct convolution reuses the cache where each of our kH*kW
tap matmuls streams the whole frame once (cache-sized blocks of images helped one
thread but were far slower with two threads on busy cores); the backward is about
1.3x. Peak memory is 0.8x nn.Conv2d's for 64 -> 64 and 1.2-1.4x for 3 -> 64.
"""

import math
from typing import Literal

import torch
from torch import Tensor, nn

from toytorch.layers._conv_matmul import ConvFunction, Geometry, as_pair


def _conv_padding(
    padding: int | tuple[int, int] | str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """The (top, bottom, left, right) padding for an int, a pair, "valid" or "same"."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
        # like torch: any odd padding unit goes to the bottom/right side
        tH, tW = (d * (k - 1) for d, k in zip(dilation, kernel, strict=True))
        return (tH // 2, tH - tH // 2, tW // 2, tW - tW // 2)
    if isinstance(padding, str):
        raise ValueError(
            f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
        )
    pH, pW = as_pair(padding, "padding", 0)
    return (pH, pH, pW, pW)


class Convolution(nn.Module):
    r"""2-D convolution over a batch of images; a drop-in twin of ``nn.Conv2d``.

    Each output channel is the sum, over the input channels of its group, of the input
    cross-correlated with a kH x kW kernel, plus a bias.

    Args:
        in_channels: C_in, channels of the input.
        out_channels: C_out, channels produced.
        kernel_size: int or (kH, kW).
        stride: int or pair (default 1).
        padding: int, pair, ``"valid"`` (none) or ``"same"`` (output size = input size,
            stride 1 only) (default 0). Zeros are padded; no other padding_mode.
        dilation: spacing between kernel taps, int or pair (default 1).
        groups: split the channels into this many independent groups (default 1);
            must divide in_channels and out_channels.
        bias: learn an additive bias per output channel (default True).
        device, dtype: where and in which type to create the parameters.

    Shape:
        - Input: (B, C_in, H, W) or (C_in, H, W), any H and W the kernel fits in.
        - Output: (B, C_out, H_out, W_out) with
          H_out = floor((H + pad_top + pad_bottom - dH * (kH - 1) - 1) / sH) + 1,
          likewise W_out. Contiguous.

    Attributes:
        weight: (C_out, C_in / groups, kH, kW), uniform in +-1/sqrt(fan_in) where
            fan_in = C_in / groups * kH * kW (kaiming-uniform with a=sqrt(5), as torch).
        bias: (C_out,), uniform in +-1/sqrt(fan_in).

    Example:
        >>> conv = Convolution(3, 16, 3, padding=1)
        >>> conv(torch.randn(8, 3, 32, 32)).shape
        torch.Size([8, 16, 32, 32])
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int
    padding_mode: str

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} "
                f"and out_channels={out_channels}"
            )
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros', got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.dilation = as_pair(dilation, "dilation", 1)
        pads = _conv_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.padding = padding if isinstance(padding, str) else (pads[0], pads[2])
        self.groups, self.padding_mode = groups, padding_mode
        self._geometry = Geometry(
            self.kernel_size, self.stride, self.dilation, pads, groups
        )

        factory = {"device": device, "dtype": dtype}
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weight (a=sqrt(5)) and uniform bias, as nn.Conv2d does."""
        fan_in = self.weight[0].numel()
        # the same arithmetic as torch's kaiming_uniform_, so one seed gives one weight
        gain = math.sqrt(2.0 / (1 + 5))
        bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                b = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                self.bias.uniform_(-b, b)

    def forward(self, x: Tensor) -> Tensor:
        unbatched = x.dim() == 3
        x = x.unsqueeze(0) if unbatched else x
        self._check_input(x)
        y = ConvFunction.apply(x, self.weight, self.bias, self._geometry)
        return y.squeeze(0) if unbatched else y

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must be (B, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        Ho, Wo = self._geometry.output_size(*x.shape[-2:])
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"input of size {tuple(x.shape[-2:])} is smaller than the kernel "
                f"{self.kernel_size} with dilation {self.dilation} and padding"
            )

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Pooling(nn.Module):
    r"""2-D max or mean pooling; the twin of ``nn.MaxPool2d`` and ``nn.AvgPool2d``.

    Each output value is the maximum (mode="max") or the mean (mode="mean") of one
    kH x kW window. Max pooling pads with -inf, so padding never wins; mean pooling pads
    with zeros and divides by the full window size (AvgPool2d's count_include_pad=True).
    Among equal maxima the first in the window (row by row) gets the gradient, as in
    torch.

    Args:
        kernel_size: int or (kH, kW).
        stride: int or pair (default kernel_size: windows side by side).
        padding: int or pair, at most half the kernel (default 0).
        mode: ``"max"`` or ``"mean"`` (default "max").

    Shape:
        - Input: (B, C, H, W) or (C, H, W).
        - Output: (B, C, H_out, W_out), H_out = floor((H + 2 * pH - kH) / sH) + 1.

    Example:
        >>> Pooling(2)(torch.randn(8, 16, 32, 32)).shape
        torch.Size([8, 16, 16, 16])
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    mode: str

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        mode: Literal["max", "mean"] = "max",
    ) -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(kernel_size if stride is None else stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(
                f"padding={padding!r} must be at most half of "
                f"kernel_size={kernel_size!r}"
            )
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        unbatched = x.dim() == 3
        x = x.unsqueeze(0) if unbatched else x
        if x.dim() != 4:
            raise ValueError(
                f"input must be (B, C, H, W) or (C, H, W), got {tuple(x.shape)}"
            )
        (kH, kW), (sH, sW) = self.kernel_size, self.stride
        x = self._pad(x)
        if x.shape[-2] < kH or x.shape[-1] < kW:
            raise ValueError(
                f"padded input of size {tuple(x.shape[-2:])} is smaller than "
                f"kernel_size={self.kernel_size}"
            )
        windows = x.unfold(2, kH, sH).unfold(3, kW, sW)  # (B, C, Ho, Wo, kH, kW)
        if self.mode == "max":
            y = windows.flatten(-2).max(dim=-1).values  # first maximum gets the grad
        else:
            y = windows.mean(dim=(-2, -1))
        return y.squeeze(0) if unbatched else y

    def _pad(self, x: Tensor) -> Tensor:
        """Pad H and W with -inf (max) or 0 (mean)."""
        pH, pW = self.padding
        if pH == 0 and pW == 0:
            return x
        B, C, H, W = x.shape
        fill = float("-inf") if self.mode == "max" else 0.0
        xp = x.new_full((B, C, H + 2 * pH, W + 2 * pW), fill)
        xp[:, :, pH : pH + H, pW : pW + W] = x
        return xp

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, mode={self.mode!r}"
        )
