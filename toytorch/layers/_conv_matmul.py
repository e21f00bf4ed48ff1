"""The arithmetic behind ``Convolution``: a 2-D convolution as matmuls, by hand.

The input is zero-padded, laid out channels-last (B, H, W, C) and flattened to rows of C
values; seen that way, kernel tap (i, j) of every output position is the row a fixed
offset further on, so the convolution is a sum of kH*kW matmuls over shifted views of
one tensor (strides become "phases" of the input, dilation a longer offset). Nothing
grows with H*W*H*W and no patch matrix is built except for thin layers (few input
channels), where one im2col matmul is faster. ``ConvFunction`` is a custom autograd
Function with a hand-written backward that saves only the input and the weight.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

# Widest patch row (C_in * kH * kW) for which one im2col matmul is used instead of taps.
PATCH_COLUMNS = 256


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


def _pad_channels_last(x: Tensor, padding: tuple[int, int, int, int]) -> Tensor:
    """(B, C, H, W) -> zero-padded channels-last (B, Hp, Wp, C), contiguous."""
    top, bottom, left, right = padding
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    if not any(padding):
        return x.contiguous()  # free when x already is channels-last
    B, H, W, C = x.shape
    xp = x.new_empty(B, H + top + bottom, W + left + right, C)
    _zero_outside(xp, slice(top, top + H), slice(left, left + W))
    xp[:, top : top + H, left : left + W] = x
    return xp


def _zero_outside(t: Tensor, rows: slice, cols: slice) -> None:
    """Zero t (B, H, W, C) outside t[:, rows, cols]; cheaper than zeroing it all."""
    t[:, : rows.start] = 0
    t[:, rows.stop :] = 0
    t[:, rows, : cols.start] = 0
    t[:, rows, cols.stop :] = 0


def _tap_frame(x: Tensor, geo: Geometry) -> tuple[Tensor, tuple[int, int]]:
    """Padded input as stride phases: (sH, sW, B*Hf*Wf, C) and the frame size (Hf, Wf).

    Phase (a, b) holds xp[:, a::sH, b::sW]. In it, kernel tap (i, j) of output (ho, wo)
    sits at (ho + i*dH // sH, wo + j*dW // sW) of phase (i*dH % sH, j*dW % sW), so each
    tap is one matmul over the flattened frame shifted by a fixed offset. Rows of the
    output frame beyond (Ho, Wo) are scratch space and get dropped.
    """
    top, bottom, left, right = geo.padding
    (sH, sW), (_, _, H, W) = geo.stride, x.shape
    Hf, Wf = -(-(H + top + bottom) // sH), -(-(W + left + right) // sW)
    xp = _pad_channels_last(x, (top, Hf * sH - H - top, left, Wf * sW - W - left))
    B, C = x.shape[0], x.shape[1]
    phases = xp.view(B, Hf, sH, Wf, sW, C).permute(2, 4, 0, 1, 3, 5)  # free if s = 1
    return phases.reshape(sH, sW, B * Hf * Wf, C), (Hf, Wf)


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

    data: Tensor  # (sH, sW, N, C), N = B * Hf * Wf
    Hf: int
    Wf: int
    taps: list[tuple[int, int, int, int, int]]
    L: int  # rows of the output frame that every tap can read
    geo: Geometry

    @classmethod
    def of(cls, x: Tensor, geo: Geometry) -> "_Frame":
        data, (Hf, Wf) = _tap_frame(x, geo)
        taps = _taps(geo, Wf)
        L = data.shape[2] - max(t[-1] for t in taps)
        return cls(data, Hf, Wf, taps, L, geo)

    def tap(self, a: int, b: int, off: int) -> Tensor:
        return self.data[a, b, off : off + self.L]  # (L, C), a view

    def patches(self) -> Tensor:
        """im2col: (L, kH*kW*C), columns ordered (i, j, c)."""
        if self.geo.stride != (1, 1):  # taps come from several phases
            taps = [self.tap(a, b, off) for _, _, a, b, off in self.taps]
            return torch.cat(taps, dim=1)
        # stride 1: tap (i, j) of row p is row p + i*dH*Wf + j*dW, an affine view; one
        # copy of it is several times faster than cat of thin slices on a busy CPU
        C, (kH, kW), (dH, dW) = self.data.shape[-1], self.geo.kernel, self.geo.dilation
        flat = self.data[0, 0]  # (N, C), contiguous
        view = flat.as_strided(
            (self.L, kH, kW, C), (C, dH * self.Wf * C, dW * C, 1), flat.storage_offset()
        )
        return view.reshape(self.L, kH * kW * C)


def _group_slices(G: int, C: int, Co: int) -> list[tuple[slice, slice]]:
    """(input channels, output channels) of each group."""
    Cg, Og = C // G, Co // G
    return [
        (slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)) for g in range(G)
    ]


def _use_patches(weight: Tensor, groups: int) -> bool:
    """One im2col matmul beats kH*kW thin ones when the patch rows are short."""
    return groups == 1 and weight[0].numel() <= PATCH_COLUMNS


def _weight_matrix(weight: Tensor) -> Tensor:
    """(Co, C, kH, kW) -> (kH*kW*C, Co), rows ordered like the patch columns."""
    Co = weight.shape[0]
    return weight.permute(2, 3, 1, 0).reshape(-1, Co)


def _mm_into(dst: Tensor, a: Tensor, b: Tensor, first: bool, bias=None) -> None:
    """dst = a @ b (+ bias) for the first tap, dst += a @ b for the others."""
    if not first:
        dst.addmm_(a, b)
    elif bias is None:
        torch.mm(a, b, out=dst)
    else:
        torch.addmm(bias, a, b, out=dst)


def _empty_grad_frame(f: _Frame) -> Tensor:
    """Uninitialised, but zero wherever the first tap (0, 0, offset 0) skips."""
    grad = torch.empty_like(f.data)  # (sH, sW, N, C)
    grad[0, 0, f.L :] = 0
    grad[0, 1:] = 0
    grad[1:] = 0
    return grad


class ConvFunction(torch.autograd.Function):
    """2-D convolution as a sum of shifted matmuls, one per kernel tap, by hand.

    With the padded input flattened to (B*Hf*Wf, C) rows, tap (i, j) of every output
    position reads the row a fixed offset further on, so the whole convolution is
    kH*kW matmuls (rows, C) @ (C, Co) over strided views: no patch matrix, no copy per
    tap. When C*kH*kW is small (the first layer on RGB images) those matmuls are too
    thin to be fast, and one matmul over the concatenated taps (im2col, at most
    PATCH_COLUMNS wide) is used instead. Backward is the same, transposed. Saves only x
    and weight (the frame is rebuilt in backward), so memory stays close to
    nn.Conv2d's. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, geo: Geometry):
        B, C, H, W = x.shape
        Co = weight.shape[0]
        Ho, Wo = geo.output_size(H, W)
        f = _Frame.of(x, geo)
        out = x.new_empty(f.data.shape[2], Co)  # (N, Co); rows past L are never read
        if _use_patches(weight, geo.groups):
            _mm_into(out[: f.L], f.patches(), _weight_matrix(weight), True, bias)
        else:
            for t, (i, j, a, b, off) in enumerate(f.taps):
                src = f.tap(a, b, off)  # (L, C)
                for cs, os in _group_slices(geo.groups, C, Co):
                    w = weight[os, :, i, j].t()  # (Cg, Og)
                    bias_g = None if bias is None else bias[os]
                    _mm_into(out[: f.L, os], src[:, cs], w, t == 0, bias_g)
        out = out.view(B, f.Hf, f.Wf, Co)[:, :Ho, :Wo].contiguous()
        ctx.save_for_backward(x, weight)
        ctx.geo, ctx.has_bias = geo, bias is not None
        return out.permute(0, 3, 1, 2)  # (B, Co, Ho, Wo), channels-last in memory

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        geo: Geometry = ctx.geo
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        B, C, H, W = x.shape
        Co, (Ho, Wo) = weight.shape[0], grad_out.shape[-2:]
        f = _Frame.of(x, geo)

        # the output gradient in the output frame, zero on the scratch rows
        g = grad_out.new_empty(B, f.Hf, f.Wf, Co)
        _zero_outside(g, slice(0, Ho), slice(0, Wo))
        g[:, :Ho, :Wo] = grad_out.permute(0, 2, 3, 1)
        g = g.view(-1, Co)[: f.L]  # (L, Co)

        grad_frame = _empty_grad_frame(f) if need_x else None
        if _use_patches(weight, geo.groups):
            grad_w = _patch_backward(f, g, weight, grad_frame, need_w)
        else:
            grad_w = _tap_backward(f, g, weight, grad_frame, need_w, geo.groups)

        grad_x = None
        if need_x:
            grad_x = _frame_to_input(grad_frame, geo, x.shape, f.Hf, f.Wf)
        grad_b = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None


def _patch_backward(
    f: _Frame, g: Tensor, weight: Tensor, grad_frame: Tensor | None, need_w: bool
) -> Tensor | None:
    """Backward of the im2col matmul; writes the input gradient into grad_frame."""
    Co, C, kH, kW = weight.shape
    grad_w = None
    if need_w:
        grad_w = g.t() @ f.patches()  # (Co, kH*kW*C)
        grad_w = grad_w.view(Co, kH, kW, C).permute(0, 3, 1, 2).contiguous()
    if grad_frame is not None:
        # col2im channel-major: each tap adds a (C, L) block whose rows are contiguous,
        # instead of (L, C) blocks only C wide (slow when C is 3 and threads compete)
        gpatch_t = _weight_matrix(weight) @ g.t()  # (kH*kW*C, L)
        gpatch_t = gpatch_t.view(kH * kW, C, -1)  # (taps, C, L)
        sH, sW, N, _ = grad_frame.shape
        grad_t = torch.zeros(sH, sW, C, N, dtype=g.dtype, device=g.device)
        for t, (_, _, a, b, off) in enumerate(f.taps):
            grad_t[a, b, :, off : off + f.L] += gpatch_t[t]
        grad_frame.copy_(grad_t.transpose(-1, -2))  # (sH, sW, N, C)
    return grad_w


def _tap_backward(
    f: _Frame,
    g: Tensor,
    weight: Tensor,
    grad_frame: Tensor | None,
    need_w: bool,
    groups: int,
) -> Tensor | None:
    """Backward of the tap matmuls; writes the input gradient into grad_frame."""
    Co, C = weight.shape[0], weight.shape[1] * groups
    grad_w = torch.empty_like(weight) if need_w else None
    for t, (i, j, a, b, off) in enumerate(f.taps):
        for cs, os in _group_slices(groups, C, Co):
            if need_w:
                grad_w[os, :, i, j] = g[:, os].t() @ f.tap(a, b, off)[:, cs]  # (Og, Cg)
            if grad_frame is not None:
                dst = grad_frame[a, b, off : off + f.L, cs]  # (L, Cg)
                _mm_into(dst, g[:, os], weight[os, :, i, j], t == 0)
    return grad_w


def _frame_to_input(
    frame: Tensor, geo: Geometry, shape: torch.Size, Hf: int, Wf: int
) -> Tensor:
    """Inverse of _tap_frame: (sH, sW, B*Hf*Wf, C) -> (B, C, H, W), padding dropped."""
    B, C, H, W = shape
    (sH, sW), (top, _, left, _) = geo.stride, geo.padding
    xp = frame.view(sH, sW, B, Hf, Wf, C).permute(
        2, 3, 0, 4, 1, 5
    )  # (B, Hf, sH, Wf, sW, C)
    xp = xp.reshape(B, Hf * sH, Wf * sW, C)
    return xp[:, top : top + H, left : left + W].permute(0, 3, 1, 2)
