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


class TransformerEncoderLayer(nn.Module):
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
        # Same construction order as torch.nn, so a seeded init draws the same values.
        self.self_attn = MultiheadAttention(
            d_model,
            nhead,
            dropout=dropout,
            bias=bias,
            batch_first=batch_first,
            **factory,
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _get_activation(activation)

    def reset_parameters(self) -> None:
        for m in (self.self_attn, self.linear1, self.linear2, self.norm1, self.norm2):
            m.reset_parameters()

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
        if self.norm_first:
            x = x + self._sa_block(
                self.norm1(x), src_mask, src_key_padding_mask, is_causal, cache
            )
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(
                x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal, cache)
            )
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, cache) -> Tensor:
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
            cache=cache,
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)

    def extra_repr(self) -> str:
        return (
            f"norm_first={self.norm_first}, "
            f"activation={_activation_name(self.activation)}"
        )


class TransformerDecoderLayer(nn.Module):
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
        # Same construction order as torch.nn, so a seeded init draws the same values.
        self.self_attn = MultiheadAttention(d_model, nhead, **attn, **factory)
        self.multihead_attn = MultiheadAttention(d_model, nhead, **attn, **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _get_activation(activation)

    def reset_parameters(self) -> None:
        for m in (self.self_attn, self.multihead_attn, self.linear1, self.linear2):
            m.reset_parameters()
        for norm in (self.norm1, self.norm2, self.norm3):
            norm.reset_parameters()

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
        mha = (memory_mask, memory_key_padding_mask, memory_is_causal)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *sa)
            x = x + self._mha_block(self.norm2(x), memory, *mha)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, *sa))
            x = self.norm2(x + self._mha_block(x, memory, *mha))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, cache) -> Tensor:
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
            cache=cache,
        )[0]
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.multihead_attn(
            x,
            memory,
            memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )[0]
        return self.dropout2(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)

    def extra_repr(self) -> str:
        return (
            f"norm_first={self.norm_first}, "
            f"activation={_activation_name(self.activation)}"
        )
