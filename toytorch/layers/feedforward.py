"""The Transformer's feed-forward block ``linear2(gelu(linear1(x)))`` as one node.

Why fused: the block's (M, dim_feedforward) activations are the largest tensors of a
small Transformer's step, and on a CPU each pass over them costs more in memory
traffic than in arithmetic. As one ``torch.autograd.Function`` the block computes the
exact GELU and its slope in the buffers it owns, never makes a fresh buffer for the
gradient, and folds GELU's factor 1/2 into the matmuls (their ``alpha``) instead of
spending a pass on it. The weights are the two ``Linear`` modules' own parameters, so
state_dict keys and initialisation do not change.

With ``H = x W1^T + b1``, ``Phi`` the standard normal CDF and ``phi`` its density:

    out = gelu(H) W2^T + b2,    gelu(H) = H Phi(H),    gelu'(H) = Phi(H) + H phi(H)

The forward keeps ``Y2 = 2 gelu(H) = H (1 + erf(H / sqrt 2))`` and
``S2 = 2 gelu'(H) = (1 + erf(H / sqrt 2)) + sqrt(2 / pi) H exp(-H^2 / 2)``. As
with ``toytorch.func``, the backward gives first derivatives only (see its note on
``torch.autograd.grad(..., create_graph=True)``).
"""

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _double_gelu_and_slope(h: Tensor) -> tuple[Tensor, Tensor]:
    """``(2 gelu(h), 2 gelu'(h))`` for the pre-activations ``h``, in two new buffers."""
    y2 = torch.mul(h, _INV_SQRT2)  # u = h / sqrt 2
    s2 = torch.addcmul(h.new_zeros(()), y2, y2, value=-1.0).exp_()  # exp(-h^2 / 2)
    y2.erf_().add_(1.0)  # 1 + erf(u) = 2 Phi(h)
    torch.addcmul(y2, h, s2, value=_SQRT_2_OVER_PI, out=s2)  # 2 Phi + 2 h phi
    return y2.mul_(h), s2


def _mm_scaled(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """``alpha * a @ b`` in one kernel (beta=0: the 0-d input is never read)."""
    return torch.addmm(a.new_zeros(()), a, b, beta=0.0, alpha=alpha)


class _GELUFeedForward(torch.autograd.Function):
    """linear2(gelu(linear1(x))) on (M, C) rows; gelu is the exact (erf) GELU."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        h = x.mm(w1.t()) if b1 is None else torch.addmm(b1, x, w1.t())  # (M, F)
        y2, s2 = _double_gelu_and_slope(h)
        if b2 is None:
            out = _mm_scaled(y2, w2.t(), 0.5)  # (M, C)
        else:
            out = torch.addmm(b2, y2, w2.t(), alpha=0.5)
        ctx.save_for_backward(x, w1, w2, y2, s2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, w1, w2, y2, s2 = ctx.saved_tensors
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        dw2 = _mm_scaled(g.t(), y2, 0.5) if need_w2 else None  # (C, F)
        db2 = g.sum(0) if need_b2 else None

        if not (need_x or need_w1 or need_b1):
            return None, None, None, dw2, db2

        # dL/dH = (g W2) gelu'(H) = (g W2) S2 / 2: the product goes into g W2's own
        # buffer, and the 1/2 rides on the matmuls below.
        gh2 = g.mm(w2).mul_(s2)  # (M, F), twice dL/dH
        dw1 = _mm_scaled(gh2.t(), x, 0.5) if need_w1 else None  # (F, C)
        db1 = gh2.sum(0).mul_(0.5) if need_b1 else None
        dx = _mm_scaled(gh2, w1, 0.5) if need_x else None  # (M, C)
        return dx, dw1, db1, dw2, db2


def gelu_feed_forward(
    x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None
) -> Tensor:
    """``gelu(x W1^T + b1) W2^T + b2`` with the exact GELU, as one autograd node.

    Shape:
        - x: (*, C); w1: (F, C); b1: (F,) or None; w2: (C, F); b2: (C,) or None.
        - output: (*, C).
    """
    C = x.shape[-1]
    out = _GELUFeedForward.apply(x.reshape(-1, C), w1, b1, w2, b2)  # (M, C)
    return out.view(*x.shape[:-1], w2.shape[0])
