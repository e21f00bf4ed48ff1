"""The arithmetic behind ``Convolution``: a 2-D convolution as matmuls, by hand.

The input is zero-padded, laid out channel-major (C, B, H, W) and flattened to C rows
of B*H*W values; seen that way, kernel tap (i, j) of every output position is the
column a fixed offset further on, so the convolution is a sum of kH*kW matmuls over
shifted views of one tensor (strides become "phases" of the input, dilation a longer
offset). Nothing grows with H*W*H*W and no patch matrix is built except for thin layers
(few input channels), where one im2col matmul is faster. ``ConvFunction`` is a custom
autograd Function with a hand-written backward that saves only the input and the
weight.

Why channel-major: every layout change (padding the input, the output gradient, the
output and the input gradient back to (B, C, H, W)) is then a copy of whole image
rows; the channels-last layout this module used before needed 4-D transposes there,
each slower than a tap matmul. On CPU the fresh 30-40 MB buffers are costly too (their
first touch page-faults about as long as a tap matmul), so backward writes the input
gradient over the frame it rebuilt (one fresh buffer less).
"""

from dataclasses import dataclass

import torch
from torch import Tensor

# Widest patch row (C_in * kH * kW) for which one im2col matmul is used instead of taps.
PATCH_COLUMNS = 256
# Output frame columns the forward computes at a time (whole images, at least one);
# it bounds the forward's scratch buffer. Kept large: smaller, cache-sized blocks were
# ~15% faster with one thread but many times slower with two on a busy 2-core machine
# (each small threaded matmul waits for a descheduled thread).
BLOCK_COLUMNS = 2**18


def as_pair(value: int | tuple[int, int], name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least minimum, as a pair."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    ok = len(pair) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair
    )
    if not ok:
        raise ValueError(
            f"{name} must be an int or a pair of ints >= {minimum}, got {value!r}"
        )
    return pair


@dataclass(frozen=True)
class Geometry:
    """Where the windows of a convolution lie; padding is (top, bottom, left, right)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    groups: int

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        (kH, kW), (sH, sW), (dH, dW) = self.kernel, self.stride, self.dilation
        top, bottom, left, right = self.padding
        Ho = (H + top + bottom - dH * (kH - 1) - 1) // sH + 1
        Wo = (W + left + right - dW * (kW - 1) - 1) // sW + 1
        return Ho, Wo


def _pad_channel_major(x: Tensor, padding: tuple[int, int, int, int]) -> Tensor:
    """(B, C, H, W) -> zero-padded channel-major (C, B, Hp, Wp), contiguous.

    Always a fresh tensor, never x itself: backward overwrites it.
    """
    top, bottom, left, right = padding
    x = x.transpose(0, 1)  # (C, B, H, W); rows of W stay contiguous, a cheap copy
    C, B, H, W = x.shape
    xp = x.new_empty(C, B, H + top + bottom, W + left + right)
    _zero_outside(xp, slice(top, top + H), slice(left, left + W))
    xp[:, :, top : top + H, left : left + W] = x
    return xp


def _zero_outside(t: Tensor, rows: slice, cols: slice) -> None:
    """Zero t (C, B, H, W) outside t[:, :, rows, cols]; cheaper than zeroing it all."""
    t[:, :, : rows.start] = 0
    t[:, :, rows.stop :] = 0
    t[:, :, rows, : cols.start] = 0
    t[:, :, rows, cols.stop :] = 0


def _tap_frame(x: Tensor, geo: Geometry) -> tuple[Tensor, tuple[int, int]]:
    """Padded input as stride phases: (sH, sW, C, B*Hf*Wf) and the frame size (Hf, Wf).

    Phase (a, b) holds xp[:, :, a::sH, b::sW]. In it, kernel tap (i, j) of output
    (ho, wo) sits at (ho + i*dH // sH, wo + j*dW // sW) of phase (i*dH % sH,
    j*dW % sW), so each tap is one matmul over the flattened frame shifted by a fixed
    offset. Columns of the output frame beyond (Ho, Wo) are scratch space, dropped.
    """
    top, bottom, left, right = geo.padding
    (sH, sW), (B, C, H, W) = geo.stride, x.shape
    Hf, Wf = -(-(H + top + bottom) // sH), -(-(W + left + right) // sW)
    xp = _pad_channel_major(x, (top, Hf * sH - H - top, left, Wf * sW - W - left))
    phases = xp.view(C, B, Hf, sH, Wf, sW).permute(3, 5, 0, 1, 2, 4)  # free if s = 1
    return phases.reshape(sH, sW, C, B * Hf * Wf), (Hf, Wf)


def _taps(geo: Geometry, Wf: int) -> list[tuple[int, int, int, int, int]]:
    """(i, j, phase row a, phase col b, flat offset) of every kernel tap, in order."""
    (kH, kW), (sH, sW), (dH, dW) = geo.kernel, geo.stride, geo.dilation
    taps = []
    for i in range(kH):
        for j in range(kW):
            qi, a = divmod(i * dH, sH)
            qj, b = divmod(j * dW, sW)
            taps.append((i, j, a, b, qi * Wf + qj))
    return taps


@dataclass
class _Frame:
    """The padded input laid out for the taps, and where each tap reads it."""

    data: Tensor  # (sH, sW, C, N), N = B * Hf * Wf
    Hf: int
    Wf: int
    taps: list[tuple[int, int, int, int, int]]
    L: int  # columns of the output frame that every tap can read
    geo: Geometry

    @classmethod
    def of(cls, x: Tensor, geo: Geometry) -> "_Frame":
        data, (Hf, Wf) = _tap_frame(x, geo)
        taps = _taps(geo, Wf)
        L = data.shape[-1] - max(t[-1] for t in taps)
        return cls(data, Hf, Wf, taps, L, geo)

    def tap(self, a: int, b: int, off: int, cols: slice | None = None) -> Tensor:
        """What tap (a, b, off) reads for output columns cols (default all L)."""
        c0, c1 = (0, self.L) if cols is None else (cols.start, cols.stop)
        return self.data[a, b, :, c0 + off : c1 + off]  # (C, columns), a view

    def patches(self, cols: slice | None = None) -> Tensor:
        """im2col, transposed: (kH*kW*C, columns), rows ordered (i, j, c)."""
        if self.geo.stride != (1, 1):  # taps come from several phases
            taps = [self.tap(a, b, off, cols) for _, _, a, b, off in self.taps]
            return torch.cat(taps)
        # stride 1: tap (i, j) is the frame shifted by i*dH*Wf + j*dW, an affine view
        c0, c1 = (0, self.L) if cols is None else (cols.start, cols.stop)
        C, N = self.data.shape[-2:]
        (kH, kW), (dH, dW) = self.geo.kernel, self.geo.dilation
        flat = self.data[0, 0]  # (C, N), contiguous
        view = flat.as_strided(
            (kH, kW, C, c1 - c0), (dH * self.Wf, dW, N, 1), flat.storage_offset() + c0
        )
        return view.reshape(kH * kW * C, c1 - c0)


def _group_slices(G: int, C: int, Co: int) -> list[tuple[slice, slice]]:
    """(input channels, output channels) of each group."""
    Cg, Og = C // G, Co // G
    return [
        (slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)) for g in range(G)
    ]


def _use_patches(weight: Tensor, groups: int) -> bool:
    """One im2col matmul beats kH*kW thin ones when the patch columns are few."""
    return groups == 1 and weight[0].numel() <= PATCH_COLUMNS


def _weight_matrix(weight: Tensor) -> Tensor:
    """(Co, C, kH, kW) -> (Co, kH*kW*C), columns ordered like the patch rows."""
    Co = weight.shape[0]
    return weight.permute(0, 2, 3, 1).reshape(Co, -1)


def _mm_into(dst: Tensor, a: Tensor, b: Tensor, first: bool, bias=None) -> None:
    """dst = a @ b (+ bias) for the first tap, dst += a @ b for the others."""
    if not first:
        dst.addmm_(a, b)
    elif bias is None:
        torch.mm(a, b, out=dst)
    else:
        torch.addmm(bias, a, b, out=dst)


def _reuse_as_grad_frame(f: _Frame) -> Tensor:
    """f's storage for the input gradient, zeroed where the first tap (0, 0, 0) skips.

    The frame is rebuilt in backward and read only for the weight gradient, so its
    memory can take the input gradient afterwards: one fresh buffer less (a fresh
    buffer's first touch costs about as much as a tap matmul).
    """
    grad = f.data  # (sH, sW, C, N)
    grad[0, 0, :, f.L :] = 0
    grad[0, 1:] = 0
    grad[1:] = 0
    return grad


class ConvFunction(torch.autograd.Function):
    """2-D convolution as a sum of shifted matmuls, one per kernel tap, by hand.

    With the padded input laid out channel-major and flattened to (C, B*Hf*Wf), tap
    (i, j) of every output position reads the column a fixed offset further on, so
    the whole convolution is kH*kW matmuls (Co, C) @ (C, columns) over strided views:
    no patch matrix, no copy per tap. When C*kH*kW is small (the first layer on RGB
    images) those matmuls are too thin to be fast, and one matmul over the stacked
    taps (im2col, at most PATCH_COLUMNS rows) is used instead. Backward is the same,
    transposed. Channel-major keeps every layout change a copy of whole image rows
    (channels-last needed a transpose there, slower than a tap matmul). Saves only x
    and weight (the frame is rebuilt in backward), so memory stays close to
    nn.Conv2d's. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, geo: Geometry):
        B, C, H, W = x.shape
        Co = weight.shape[0]
        Ho, Wo = geo.output_size(H, W)
        f = _Frame.of(x, geo)
        bias = None if bias is None else bias[:, None]  # (Co, 1), added to every column

        # a block of images at a time, written straight into the (B, Co, Ho, Wo) output
        P = f.Hf * f.Wf
        n = min(B, max(1, BLOCK_COLUMNS // P))  # images per block
        block = x.new_empty(Co, n * P)  # (Co, frame columns of n images)
        out = x.new_empty(B, Co, Ho, Wo)
        for b0 in range(0, B, n):
            cols = slice(b0 * P, min((b0 + n) * P, f.L))  # the last stops at L
            _forward_block(f, weight, bias, block[:, : cols.stop - cols.start], cols)
            nb = min(n, B - b0)
            y = block[:, : nb * P].view(Co, nb, f.Hf, f.Wf)[:, :, :Ho, :Wo]
            out[b0 : b0 + nb] = y.transpose(0, 1)  # (nb, Co, Ho, Wo)
        ctx.save_for_backward(x, weight)
        ctx.geo, ctx.has_bias = geo, bias is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        geo: Geometry = ctx.geo
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        B, C, H, W = x.shape
        Co, (Ho, Wo) = weight.shape[0], grad_out.shape[-2:]
        f = _Frame.of(x, geo)

        # the output gradient in the output frame, zero on the scratch columns
        g = grad_out.new_empty(Co, B, f.Hf, f.Wf)
        _zero_outside(g, slice(0, Ho), slice(0, Wo))
        g[:, :, :Ho, :Wo] = grad_out.transpose(0, 1)
        g = g.view(Co, -1)[:, : f.L]  # (Co, L)

        grad_w = None
        if need_w and _use_patches(weight, geo.groups):
            grad_w = _patch_weight_grad(f, g, weight)
        elif need_w:
            grad_w = _tap_weight_grad(f, g, weight, geo.groups)

        grad_x = None
        if need_x:  # overwrites the frame
            if _use_patches(weight, geo.groups):
                _patch_input_grad(f, g, weight)
            else:
                _tap_input_grad(f, g, weight, geo.groups)
            grad_x = _frame_to_input(f.data, geo, x.shape, f.Hf, f.Wf)
        grad_b = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None


def _forward_block(
    f: _Frame, weight: Tensor, bias: Tensor | None, dst: Tensor, cols: slice
) -> None:
    """dst (Co, columns) = the convolution at output frame columns cols."""
    if _use_patches(weight, f.geo.groups):
        _mm_into(dst, _weight_matrix(weight), f.patches(cols), True, bias)
        return
    C, Co = f.data.shape[-2], weight.shape[0]
    for t, (i, j, a, b, off) in enumerate(f.taps):
        src = f.tap(a, b, off, cols)  # (C, columns)
        for cs, os in _group_slices(f.geo.groups, C, Co):
            bias_g = None if bias is None else bias[os]
            _mm_into(dst[os], weight[os, :, i, j], src[cs], t == 0, bias_g)


def _patch_weight_grad(f: _Frame, g: Tensor, weight: Tensor) -> Tensor:
    """Weight gradient of the im2col matmul: (Co, C, kH, kW)."""
    Co, C, kH, kW = weight.shape
    grad_w = g @ f.patches().t()  # (Co, kH*kW*C)
    return grad_w.view(Co, kH, kW, C).permute(0, 3, 1, 2).contiguous()


def _patch_input_grad(f: _Frame, g: Tensor, weight: Tensor) -> None:
    """Input gradient of the im2col matmul, written over f's frame (col2im)."""
    Co, C, kH, kW = weight.shape
    gpatch = _weight_matrix(weight).t() @ g  # (kH*kW*C, L)
    gpatch = gpatch.view(kH * kW, C, -1)  # (taps, C, L)
    grad_frame = _reuse_as_grad_frame(f)
    for t, (_, _, a, b, off) in enumerate(f.taps):
        dst = grad_frame[a, b, :, off : off + f.L]  # (C, L), whole rows
        if t == 0:
            dst.copy_(gpatch[t])
        else:
            dst.add_(gpatch[t])


def _tap_weight_grad(f: _Frame, g: Tensor, weight: Tensor, groups: int) -> Tensor:
    """Weight gradient of the tap matmuls, one (Og, Cg) block per tap and group."""
    Co, C = weight.shape[0], weight.shape[1] * groups
    grad_w = torch.empty_like(weight)
    for i, j, a, b, off in f.taps:
        src = f.tap(a, b, off)  # (C, L)
        for cs, os in _group_slices(groups, C, Co):
            grad_w[os, :, i, j] = g[os] @ src[cs].t()  # (Og, Cg)
    return grad_w


def _tap_input_grad(f: _Frame, g: Tensor, weight: Tensor, groups: int) -> None:
    """Input gradient of the tap matmuls, written over f's frame."""
    Co, C = weight.shape[0], weight.shape[1] * groups
    grad_frame = _reuse_as_grad_frame(f)
    for t, (i, j, a, b, off) in enumerate(f.taps):
        for cs, os in _group_slices(groups, C, Co):
            dst = grad_frame[a, b, cs, off : off + f.L]  # (Cg, L)
            _mm_into(dst, weight[os, :, i, j].t(), g[os], t == 0)


def _frame_to_input(
    frame: Tensor, geo: Geometry, shape: torch.Size, Hf: int, Wf: int
) -> Tensor:
    """Inverse of _tap_frame: (sH, sW, C, B*Hf*Wf) -> (B, C, H, W), padding dropped."""
    B, C, H, W = shape
    (sH, sW), (top, _, left, _) = geo.stride, geo.padding
    xp = frame.view(sH, sW, C, B, Hf, Wf).permute(3, 2, 4, 0, 5, 1)
    xp = xp.reshape(B, C, Hf * sH, Wf * sW)  # (B, C, Hp, Wp)
    return xp[:, :, top : top + H, left : left + W]  # a view; its consumer copies
