"""The pieces of attention below the layer: the softmax-attention core with a
hand-written backward, the key/value cache, and the mask helpers.

Boolean masks: ``True`` means *masked* (as torch.nn). Float masks are added to the
scores. A query row with every key masked gets all-zero weights (torch: NaN).
"""

import math

import torch
from torch import Tensor


class KVCache:
    """Keys and values of the positions one attention layer has already seen.

    Pass one cache per layer as ``cache=`` to :meth:`MultiheadAttention.forward` (or a
    Transformer layer's forward). Each call appends the keys and values of its new
    positions, and its queries attend to every cached and new position; with
    ``is_causal=True`` the causal mask is shifted by the cached length, so feeding a
    sequence token by token (or a prefill chunk, then token by token) gives the same
    outputs as the whole sequence at once.

    The cache grows by concatenation, which keeps it autograd-safe; the positions a
    model may use are bounded by its context, so the quadratic copying is small.

    Attributes:
        k: cached keys of shape :math:`(B, nh, T, hs)`, or ``None`` when empty.
        v: cached values of shape :math:`(B, nh, T, hs)`, or ``None`` when empty.

    Example::

        >>> mha = MultiheadAttention(16, 4, batch_first=True)
        >>> cache = KVCache()
        >>> x = torch.randn(2, 5, 16)
        >>> y0, _ = mha(x[:, :3], x[:, :3], x[:, :3], is_causal=True, cache=cache)
        >>> y1, _ = mha(x[:, 3:], x[:, 3:], x[:, 3:], is_causal=True, cache=cache)
        >>> len(cache)
        5
    """

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return self.length

    @property
    def length(self) -> int:
        """Number of cached positions T."""
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys and values (B, nh, T_new, hs); return all of them."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (B, nh, T + T_new, hs)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions (``0`` empties the cache)."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if self.k is None or self.v is None or length >= self.length:
            return
        if length == 0:
            self.reset()
            return
        self.k = self.k[:, :, :length]
        self.v = self.v[:, :, :length]

    def reset(self) -> None:
        """Forget every cached position."""
        self.k = None
        self.v = None

    def __repr__(self) -> str:
        shape = None if self.k is None else tuple(self.k.shape)
        return f"KVCache(length={self.length}, shape={shape})"


_EXP_FLOOR = -80.0  # exp(-80) = 1.8e-35: still a normal float32


class _AttentionCore(torch.autograd.Function):
    """softmax(q k^T / sqrt(hs) + mask) v as one autograd node.

    Autograd would record about six nodes here (matmul, scale, mask, the softmax
    steps, matmul) and keep several (B, nh, L, S) intermediates; the hand-written
    backward keeps only the probabilities. The heads are folded into the batch,
    (B * nh, T, hs), so every product is one bmm; the scale rides on the copy of q
    that bmm needs anyway, and a mask is added inside the first product (baddbmm).
    A row whose scores are all ``-inf`` gets zero probabilities instead of NaN.
    """

    @staticmethod
    def forward(
        ctx,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        dropout_p: float,
    ) -> tuple[Tensor, Tensor]:
        B, nh, L, hs = q.shape
        S = k.shape[2]
        q3 = (q * (1.0 / math.sqrt(hs))).reshape(B * nh, L, hs)  # scaled, contiguous
        k3 = k.reshape(B * nh, S, hs)
        v3 = v.reshape(B * nh, S, hs)
        if mask is None:
            att = torch.bmm(q3, k3.transpose(1, 2))  # (B*nh, L, S)
        else:
            att = torch.baddbmm(_additive_3d(mask, B, nh, L, S, q.dtype), q3, k3.mT)

        # Softmax shifted by the row maximum. A fully masked row has max -inf:
        # clamping the shift keeps exp() at 0 there (not NaN), and a row whose max
        # is finite sums to >= 1 (its max term is exp(0)), so clamping the sum at 1
        # changes only the fully masked rows, which then stay all zeros.
        if S == 0:  # no key at all: amax has nothing to reduce; the output is 0
            shift = att.new_zeros(B * nh, L, 1)
        else:
            shift = att.amax(dim=-1, keepdim=True)
        shift.clamp_min_(torch.finfo(att.dtype).min)
        # Subtle (speed): on CPU, exp() runs over ten times slower on inputs far
        # below its range (-inf, as every masked score is, or where the result
        # underflows). So exp runs on scores clamped at -80 (exp(-80) = 1.8e-35,
        # far under the rounding of a sum >= 1), and the masked scores are then set
        # to exactly 0 by a multiply with the kept positions.
        att.sub_(shift).clamp_min_(_EXP_FLOOR).exp_()
        _zero_masked(att, mask, B, nh, L, S)
        att.mul_(att.sum(dim=-1, keepdim=True).clamp_min_(1.0).reciprocal_())

        keep, weights = None, att
        if dropout_p > 0.0:
            keep = torch.empty_like(att).bernoulli_(1.0 - dropout_p)
            if dropout_p < 1.0:  # at p == 1 keep is all zeros: no 1/0
                keep.div_(1.0 - dropout_p)
            weights = att * keep
        y3 = torch.bmm(weights, v3)  # (B*nh, L, hs)

        ctx.save_for_backward(q3, k3, v3, att, keep, y3)
        ctx.shapes = (q.shape, k.shape)
        ctx.set_materialize_grads(False)
        return y3.view(B, nh, L, hs), weights.view(B, nh, L, S)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor | None, dweights: Tensor | None):
        q3, k3, v3, p, keep, y3 = ctx.saved_tensors
        if dy is None and dweights is None:
            return None, None, None, None, None
        BH, L, hs = q3.shape
        weights = p if keep is None else p * keep  # what multiplied v

        # G = dL/dweights = dy v^T (+ dweights). The softmax backward needs the row
        # sums D = sum_j G_ij weights_ij; for the dy v^T part that sum equals
        # dy_i . y_i (y = weights v), a (BH, L, hs) product instead of (BH, L, S).
        if dy is None:  # only the returned weights were used
            dv3 = torch.zeros_like(v3)
            G = dweights.reshape(p.shape).clone()  # modified in place below
            D = (G * weights).sum(dim=-1, keepdim=True)
        else:
            dy3 = dy.reshape(BH, L, hs)
            dv3 = torch.bmm(weights.transpose(1, 2), dy3)  # (BH, S, hs)
            G = torch.bmm(dy3, v3.transpose(1, 2))  # (BH, L, S)
            D = (dy3 * y3).sum(dim=-1, keepdim=True)  # (BH, L, 1)
            if dweights is not None:
                dweights = dweights.reshape(p.shape)
                G.add_(dweights)
                D.add_((dweights * weights).sum(dim=-1, keepdim=True))
        if keep is not None:
            G.mul_(keep)  # gradient reaching the probabilities p

        # Softmax backward ds = p * (dp - D); q3 carries the 1/sqrt(hs) scale, so
        # dk needs none and dq gets it once.
        ds = G.sub_(D).mul_(p)  # (BH, L, S)
        dq3 = torch.bmm(ds, k3).mul_(1.0 / math.sqrt(hs))  # (BH, L, hs)
        dk3 = torch.bmm(ds.transpose(1, 2), q3)  # (BH, S, hs)
        shape_q, shape_k = ctx.shapes  # (B, nh, L, hs), (B, nh, S, hs)
        return dq3.view(shape_q), dk3.view(shape_k), dv3.view(shape_k), None, None


def _zero_masked(
    p: Tensor, mask: Tensor | None, B: int, nh: int, L: int, S: int
) -> None:
    """Set to 0, in place, the entries of ``p`` (B * nh, L, S) that ``mask`` masks.

    A bool mask masks where it is True, a float mask where it is -inf. The kept
    positions are found at the mask's own size (often (L, S)), not per score.
    """
    if mask is None:
        return
    keep = mask.logical_not() if mask.dtype == torch.bool else mask != float("-inf")
    keep = keep.to(p.dtype)
    if keep.dim() > 2:
        keep = keep.expand(B, nh, L, S).reshape(B * nh, L, S)
    p.mul_(keep)


def _additive_3d(
    mask: Tensor, B: int, nh: int, L: int, S: int, dtype: torch.dtype
) -> Tensor:
    """A bool or float mask broadcastable to (B, nh, L, S), as a float mask that
    broadcasts to (B * nh, L, S) (the input of baddbmm)."""
    mask = as_float_mask(mask, dtype)
    if mask.dim() <= 2:
        return mask  # (L, S) or (S,): broadcasts over the folded batch as it is
    return mask.expand(B, nh, L, S).reshape(B * nh, L, S)


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention with its weights.

    Args:
        q: queries :math:`(B, nh, L, hs)`.
        k: keys :math:`(B, nh, S, hs)`.
        v: values :math:`(B, nh, S, hs)`.
        mask: ``None``, a bool mask (``True`` = masked) or a float mask (added to the
            scores), broadcastable to :math:`(B, nh, L, S)`.
        dropout_p: dropout probability on the attention weights (0 = none).

    A float ``mask`` receives no gradient (it is treated as a constant).

    Returns:
        ``(y, weights)``: :math:`(B, nh, L, hs)` and :math:`(B, nh, L, S)`; a fully
        masked row has zero weights and a zero output.
    """
    return _AttentionCore.apply(q, k, v, mask, dropout_p)


def causal_mask(
    L: int, S: int, offset: int = 0, device: torch.device | str | None = None
) -> Tensor:
    """Bool mask (L, S), ``True`` where key j lies after query i's position.

    Query i sits at position ``offset + i`` (``offset`` = cached positions), so the
    mask is ``j > offset + i``. Without a cache (offset 0) this is the top-left
    aligned causal mask of ``scaled_dot_product_attention(is_causal=True)``.
    """
    return torch.ones(L, S, dtype=torch.bool, device=device).triu_(offset + 1)


def check_mask_dtype(mask: Tensor, name: str) -> None:
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(f"{name} must be a bool or float tensor, got {mask.dtype}")


def as_float_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return zeros.masked_fill_(mask, float("-inf"))


def merge_masks(a: Tensor | None, b: Tensor | None, dtype: torch.dtype):
    """One mask from two (either may be None); bool OR, else float sum."""
    if a is None or b is None:
        return a if b is None else b
    if a.dtype == torch.bool and b.dtype == torch.bool:
        return a | b
    return as_float_mask(a, dtype) + as_float_mask(b, dtype)
