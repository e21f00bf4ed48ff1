"""Transformer encoder and decoder layers, drop-in twins of torch.nn's.

Built from toytorch's own MultiheadAttention, Linear, Dropout and LayerNorm, with the
submodule names (and so the state_dict keys) of ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``. Beyond torch.nn, each forward takes an optional
:class:`~toytorch.layers.attention.KVCache` for its self-attention, for incremental
decoding.

Masks follow torch.nn: a bool mask is ``True`` where attention is *not* allowed; a
float mask is added to the attention scores.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import func
from .attention import KVCache, MultiheadAttention
from .basic import Dropout, LayerNorm, Linear
from .feedforward import gelu_feed_forward

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": func.relu,
    "gelu": func.gelu,
}


def _get_activation(activation: str | Callable[[Tensor], Tensor]):
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be 'relu', 'gelu' or a callable, got {activation!r}"
        )
    return _ACTIVATIONS[activation]


def _activation_name(activation) -> str:
    for name, fn in _ACTIVATIONS.items():
        if activation is fn:
            return name
    return getattr(activation, "__name__", type(activation).__name__)


class _TransformerLayer(nn.Module):
    """What the encoder and decoder layers share: construction, the self-attention
    and feed-forward blocks, ``reset_parameters`` and ``extra_repr``.

    The submodules are attributes of the layer itself (not of a shared feed-forward
    module) so the state_dict keys stay those of torch.nn. ``_cross_attention``
    (class attribute) adds the decoder's ``multihead_attn``, ``norm3`` and
    ``dropout3``.
    """

    _cross_attention = False
    norm_first: bool

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        attn = {"dropout": dropout, "bias": bias, "batch_first": batch_first}
        norm = {"eps": layer_norm_eps, "bias": bias, **factory}
        cross = self._cross_attention
        # Same construction order as torch.nn, so a seeded init draws the same values.
        self.self_attn = MultiheadAttention(d_model, nhead, **attn, **factory)
        if cross:
            self.multihead_attn = MultiheadAttention(d_model, nhead, **attn, **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, **norm)
        self.norm2 = LayerNorm(d_model, **norm)
        if cross:
            self.norm3 = LayerNorm(d_model, **norm)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if cross:
            self.dropout3 = Dropout(dropout)
        self.activation = _get_activation(activation)

    def reset_parameters(self) -> None:
        # children() runs in construction order: attention(s), linears, norms
        for m in self.children():
            if isinstance(m, MultiheadAttention | Linear | LayerNorm):
                m.reset_parameters()

    def _self_attention(
        self, x, attn_mask, key_padding_mask, is_causal, cache
    ) -> Tensor:
        """self_attn(x, x, x), before its dropout."""
        return self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
            cache=cache,
        )[0]

    def _feed_forward(self, x: Tensor) -> Tensor:
        """linear2(dropout(activation(linear1(x)))), before the block's last dropout.

        With the exact GELU and no dropout to apply, the block runs as one fused
        node (see ``toytorch.layers.feedforward``): same values, faster on a CPU.
        """
        if self._can_fuse(x):
            l1, l2 = self.linear1, self.linear2
            return gelu_feed_forward(x, l1.weight, l1.bias, l2.weight, l2.bias)
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _can_fuse(self, x: Tensor) -> bool:
        """The fused block computes exactly the plain one: exact GELU, no dropout to
        draw, plain toytorch Linears (a hook, pruning or a wrapper must see its
        module called) and no autocast (the fused backward keeps one dtype).

        Known gap: a hook registered for every module at once
        (``register_module_forward_hook``) does not see linear1 and linear2 called
        on the fused path.
        """
        if self.activation is not func.gelu or (self.training and self.dropout.p):
            return False
        device = x.device.type  # the meta device has no autocast to ask about
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(
            device
        ):
            return False
        return all(
            type(m) is Linear and not (m._forward_hooks or m._forward_pre_hooks)
            for m in (self.linear1, self.linear2)
        )

    def extra_repr(self) -> str:
        return (
            f"norm_first={self.norm_first}, "
            f"activation={_activation_name(self.activation)}"
        )


class TransformerEncoderLayer(_TransformerLayer):
    r"""Self-attention then a feed-forward block, twin of
    :class:`torch.nn.TransformerEncoderLayer`.

    Post-norm (default, as in "Attention is all you need")::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))

    Pre-norm (``norm_first=True``, as GPT-2)::

        x = x + dropout1(self_attn(norm1(x)))
        x = x + dropout2(linear2(dropout(activation(linear1(norm2(x))))))

    Args:
        d_model: model width C.
        nhead: number of attention heads; must divide ``d_model``.
        dim_feedforward: hidden width of the feed-forward block (default 2048).
        dropout: dropout probability everywhere (default 0.1).
        activation: ``"relu"`` (default), ``"gelu"`` (exact) or a callable.
        layer_norm_eps: eps of both LayerNorms (default 1e-5).
        batch_first: inputs are (B, T, C) instead of (T, B, C) (default ``False``).
        norm_first: pre-norm instead of post-norm (default ``False``).
        bias: biases in the Linear and LayerNorm layers (default ``True``).
        device, dtype: factory arguments for the parameters.

    Shape:
        - src: :math:`(T, B, C)`, :math:`(B, T, C)` if ``batch_first``, or
          :math:`(T, C)` unbatched.
        - src_mask: :math:`(T, S)` or :math:`(B \cdot nhead, T, S)`, bool
          (``True`` = masked) or float (added); S = T, plus the cached length.
        - src_key_padding_mask: :math:`(B, S)`, bool (``True`` = pad) or float.
        - output: like src.

    Attributes:
        self_attn: :class:`MultiheadAttention` (d_model, nhead).
        linear1: :class:`Linear` (d_model, dim_feedforward).
        linear2: :class:`Linear` (dim_feedforward, d_model).
        norm1, norm2: :class:`LayerNorm` (d_model).
        dropout, dropout1, dropout2: :class:`Dropout` (dropout).

    Example::

        >>> layer = TransformerEncoderLayer(32, 4, 64, batch_first=True)
        >>> layer(torch.randn(2, 10, 32), is_causal=True).shape
        torch.Size([2, 10, 32])
    """

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Encode ``src``; ``is_causal`` without ``src_mask`` builds the causal mask
        (torch.nn needs both), and ``cache`` extends self-attention over the cached
        positions (see :class:`KVCache`)."""
        x = src
        sa = (src_mask, src_key_padding_mask, is_causal, cache)
        if self.norm_first:
            x = x + self.dropout1(self._self_attention(self.norm1(x), *sa))
            x = x + self.dropout2(self._feed_forward(self.norm2(x)))
        else:
            x = self.norm1(x + self.dropout1(self._self_attention(x, *sa)))
            x = self.norm2(x + self.dropout2(self._feed_forward(x)))
        return x


class TransformerDecoderLayer(_TransformerLayer):
    r"""Self-attention, attention over the encoder output, then a feed-forward block;
    twin of :class:`torch.nn.TransformerDecoderLayer`.

    Post-norm (default)::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(multihead_attn(x, memory)))
        x = norm3(x + dropout3(linear2(dropout(activation(linear1(x))))))

    Pre-norm (``norm_first=True``) applies each norm to the block input instead and
    adds the block output to the residual stream.

    Args:
        d_model: model width C.
        nhead: number of attention heads; must divide ``d_model``.
        dim_feedforward: hidden width of the feed-forward block (default 2048).
        dropout: dropout probability everywhere (default 0.1).
        activation: ``"relu"`` (default), ``"gelu"`` (exact) or a callable.
        layer_norm_eps: eps of the three LayerNorms (default 1e-5).
        batch_first: inputs are (B, T, C) instead of (T, B, C) (default ``False``).
        norm_first: pre-norm instead of post-norm (default ``False``).
        bias: biases in the Linear and LayerNorm layers (default ``True``).
        device, dtype: factory arguments for the parameters.

    Shape:
        - tgt: :math:`(T, B, C)`, :math:`(B, T, C)` if ``batch_first``, or
          :math:`(T, C)` unbatched.
        - memory: :math:`(S, B, C)`, :math:`(B, S, C)` if ``batch_first``, or
          :math:`(S, C)`.
        - tgt_mask: :math:`(T, T)` (plus the cached length in the last dim) or
          :math:`(B \cdot nhead, T, T)`; memory_mask: :math:`(T, S)` or
          :math:`(B \cdot nhead, T, S)`; bool (``True`` = masked) or float (added).
        - tgt_key_padding_mask: :math:`(B, T)`; memory_key_padding_mask:
          :math:`(B, S)`; bool (``True`` = pad) or float.
        - output: like tgt.

    Attributes:
        self_attn, multihead_attn: :class:`MultiheadAttention` (d_model, nhead).
        linear1: :class:`Linear` (d_model, dim_feedforward).
        linear2: :class:`Linear` (dim_feedforward, d_model).
        norm1, norm2, norm3: :class:`LayerNorm` (d_model).
        dropout, dropout1, dropout2, dropout3: :class:`Dropout` (dropout).

    Example::

        >>> layer = TransformerDecoderLayer(32, 4, 64, batch_first=True)
        >>> tgt, memory = torch.randn(2, 7, 32), torch.randn(2, 10, 32)
        >>> layer(tgt, memory, tgt_is_causal=True).shape
        torch.Size([2, 7, 32])
    """

    _cross_attention = True

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Decode ``tgt`` attending to ``memory``; ``cache`` extends the
        self-attention over the cached target positions.

        Known shortcoming: the memory's keys and values are projected again on each
        call; a second, static cache for them would save that during decoding.
        """
        x = tgt
        sa = (tgt_mask, tgt_key_padding_mask, tgt_is_causal, cache)
        mha = (memory, memory_mask, memory_key_padding_mask, memory_is_causal)
        if self.norm_first:
            x = x + self.dropout1(self._self_attention(self.norm1(x), *sa))
            x = x + self.dropout2(self._memory_attention(self.norm2(x), *mha))
            x = x + self.dropout3(self._feed_forward(self.norm3(x)))
        else:
            x = self.norm1(x + self.dropout1(self._self_attention(x, *sa)))
            x = self.norm2(x + self.dropout2(self._memory_attention(x, *mha)))
            x = self.norm3(x + self.dropout3(self._feed_forward(x)))
        return x

    def _memory_attention(
        self, x, memory, attn_mask, key_padding_mask, is_causal
    ) -> Tensor:
        """multihead_attn(x, memory, memory), before its dropout."""
        return self.multihead_attn(
            x,
            memory,
            memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )[0]
