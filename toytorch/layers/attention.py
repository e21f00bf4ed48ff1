"""Multi-head attention written from scratch, a drop-in twin of nn.MultiheadAttention.

Everything here is tensor operations; the softmax-attention core (one
``torch.autograd.Function`` with a hand-written backward) and the key/value cache for
incremental decoding, which torch.nn does not have, live in ``attention_core``.

Boolean masks follow torch.nn on every path: ``True`` means *masked* (the key is not
attended to). Float masks are added to the attention scores, so ``-inf`` masks.

A query row whose every key is masked (torch.nn returns NaN there) gets all-zero
attention weights here, so its attention output is ``out_proj.bias`` (zeros without
bias); its gradients are zeros, never NaN.
"""

import math

import torch
from torch import Tensor, nn

from .attention_core import (
    KVCache,
    attention,
    causal_mask,
    check_mask_dtype,
    merge_masks,
)
from .basic import Linear

__all__ = ["KVCache", "MultiheadAttention", "attention", "causal_mask"]


def _project(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x @ weight^T + bias over the last dim, as one addmm when there is a bias."""
    if bias is None:
        return torch.matmul(x, weight.t())
    out = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.t())
    return out.view(*x.shape[:-1], weight.shape[0])


def _xavier_uniform_(weight: Tensor) -> None:
    """Glorot uniform init of a 2D weight (out, in), as nn.init.xavier_uniform_."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(3.0) * math.sqrt(2.0 / float(fan_in + fan_out))
    weight.uniform_(-bound, bound)


class MultiheadAttention(nn.Module):
    r"""Multi-head attention, a drop-in twin of :class:`torch.nn.MultiheadAttention`.

    ``MultiHead(q, k, v) = Concat(head_1, ..., head_h) W^O`` with
    ``head_i = softmax(q W_i^Q (k W_i^K)^T / sqrt(hs) + mask) v W_i^V``.
    Self-attention (``query is key is value``) projects q, k and v with one matmul;
    cross-attention splits ``in_proj_weight`` as torch does. Parameters, state_dict
    keys, forward arguments and return values match torch.nn, so
    ``mine.load_state_dict(theirs.state_dict())`` works.

    Differences from torch.nn, on purpose:

    * a fully masked query row (torch.nn: NaN) gets zero attention weights, so its
      output is ``out_proj.bias``; no NaN reaches outputs or gradients;
    * ``is_causal=True`` without ``attn_mask`` builds the causal mask (torch.nn
      requires the mask as well); with an ``attn_mask``, the mask is used as given;
    * ``forward`` takes an optional ``cache`` (:class:`KVCache`) for incremental
      decoding.

    ``add_bias_kv`` and ``add_zero_attn`` append their extra key/value after the
    cached ones; they cannot be combined with a ``cache`` (a ValueError says so).

    Args:
        embed_dim: model width E; must be divisible by ``num_heads``.
        num_heads: number of heads nh; each has ``hs = E // nh`` features.
        dropout: dropout probability on the attention weights (default ``0.0``).
        bias: add biases to the input and output projections (default ``True``).
        add_bias_kv: append a learned key ``bias_k`` and value ``bias_v`` to every
            sequence (default ``False``).
        add_zero_attn: append an all-zero key and value to every sequence
            (default ``False``).
        kdim: features of ``key`` (default ``embed_dim``).
        vdim: features of ``value`` (default ``embed_dim``).
        batch_first: inputs and outputs are (B, T, E) instead of (T, B, E)
            (default ``False``, as torch.nn).
        device, dtype: factory arguments for the parameters.

    Shape:
        - query: :math:`(L, B, E)`, or :math:`(B, L, E)` if ``batch_first``, or
          :math:`(L, E)` unbatched.
        - key: :math:`(S, B, E_k)` / :math:`(B, S, E_k)` / :math:`(S, E_k)`.
        - value: :math:`(S, B, E_v)` / :math:`(B, S, E_v)` / :math:`(S, E_v)`.
        - key_padding_mask: :math:`(B, S)` or :math:`(S,)`, bool (``True`` = pad)
          or float (added).
        - attn_mask: :math:`(L, S)` or :math:`(B \cdot nh, L, S)`, bool
          (``True`` = masked) or float (added).
        - With a ``cache``, S in both masks counts the cached positions too.
        - attn_output: like query, with E features.
        - attn_weights: :math:`(B, L, S)` averaged over heads, else
          :math:`(B, nh, L, S)` (unbatched: without B); ``None`` unless
          ``need_weights``.

    Attributes:
        in_proj_weight: :math:`(3E, E)` stacked q, k, v projections, Glorot uniform
            (only when ``kdim == vdim == embed_dim``; else ``q_proj_weight``
            :math:`(E, E)`, ``k_proj_weight`` :math:`(E, E_k)`, ``v_proj_weight``
            :math:`(E, E_v)`).
        in_proj_bias: :math:`(3E,)`, zeros.
        out_proj: :class:`~toytorch.layers.Linear` (E, E), its default init with a
            zero bias.
        bias_k, bias_v: :math:`(1, 1, E)`, Glorot normal (only with
            ``add_bias_kv``; else ``None``).

    Example::

        >>> mha = MultiheadAttention(16, 4, batch_first=True)
        >>> x = torch.randn(2, 5, 16)
        >>> y, w = mha(x, x, x, is_causal=True)
        >>> y.shape, w.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 5, 5]))
    """

    embed_dim: int
    num_heads: int
    head_dim: int
    kdim: int
    vdim: int
    dropout: float
    batch_first: bool

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_arguments(embed_dim, num_heads, dropout)
        factory = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.add_zero_attn = add_zero_attn

        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * E, E, **factory))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(E, E, **factory))
            self.k_proj_weight = nn.Parameter(torch.empty(E, self.kdim, **factory))
            self.v_proj_weight = nn.Parameter(torch.empty(E, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * E, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        # out_proj initialises itself here, as torch's does, before in_proj below:
        # with the same seed both draw the same random numbers in the same order.
        self.out_proj = Linear(E, E, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, E, **factory))
            self.bias_v = nn.Parameter(torch.empty(1, 1, E, **factory))
        else:
            self.bias_k = self.bias_v = None
        self._reset_projections()

    def reset_parameters(self) -> None:
        """Re-draw every parameter (out_proj: its own init, then a zero bias)."""
        self.out_proj.reset_parameters()
        self._reset_projections()

    @torch.no_grad()
    def _reset_projections(self) -> None:
        if self._qkv_same_embed_dim:
            _xavier_uniform_(self.in_proj_weight)
        else:
            _xavier_uniform_(self.q_proj_weight)
            _xavier_uniform_(self.k_proj_weight)
            _xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            self.in_proj_bias.zero_()
            self.out_proj.bias.zero_()
        if self.bias_k is not None:  # Glorot normal of a (1, 1, E) tensor
            std = math.sqrt(2.0 / float(self.embed_dim + self.embed_dim))
            self.bias_k.normal_(0.0, std)
            self.bias_v.normal_(0.0, std)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``; see the class docstring.

        With ``cache``, the new keys and values are appended to it first and the
        queries attend to every cached and new position; ``is_causal`` then masks
        key j for new query i when ``j > cache_length_before + i``.
        """
        extra_keys = self.bias_k is not None or self.add_zero_attn
        if cache is not None and extra_keys:
            raise ValueError("cache cannot be used with add_bias_kv or add_zero_attn")
        batched = query.dim() == 3
        if not batched:
            query, key, value, key_padding_mask = self._add_batch_dim(
                query, key, value, key_padding_mask
            )
        self._check_inputs(query, key, value)

        q, k, v = self._in_projection(query, key, value)  # (B, nh, L|S, hs)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (B, nh, past + S, hs)
        mask = self._attention_mask(attn_mask, key_padding_mask, is_causal, q, k, past)
        if extra_keys:
            k, v, mask = self._extra_keys(k, v, mask)  # S + 1 or S + 2 keys

        # y (B, nh, L, hs); weights (B, nh, L, S)
        dropout_p = self.dropout if self.training else 0.0
        y, weights = attention(q, k, v, mask, dropout_p)
        y = self.out_proj(self._merge_heads(y))  # (B, L, E) or (L, B, E)

        if not need_weights:
            return (y if batched else y.squeeze(self._batch_dim)), None
        if average_attn_weights:
            weights = weights.mean(dim=1)  # (B, L, S)
        if not batched:
            y, weights = y.squeeze(self._batch_dim), weights.squeeze(0)
        return y, weights

    def _extra_keys(self, k: Tensor, v: Tensor, mask: Tensor | None):
        """Append bias_k/bias_v and/or a zero key/value; unmask their columns."""
        B, nh, _, hs = k.shape
        extra_k, extra_v = [], []
        if self.bias_k is not None:
            extra_k.append(self.bias_k.view(1, nh, 1, hs).expand(B, nh, 1, hs))
            extra_v.append(self.bias_v.view(1, nh, 1, hs).expand(B, nh, 1, hs))
        if self.add_zero_attn:
            extra_k.append(k.new_zeros(B, nh, 1, hs))
            extra_v.append(v.new_zeros(B, nh, 1, hs))
        k = torch.cat([k, *extra_k], dim=2)  # (B, nh, S + n, hs)
        v = torch.cat([v, *extra_v], dim=2)
        if mask is not None:  # False / 0.0 (attend) for the extra columns
            mask = torch.cat([mask, mask.new_zeros(*mask.shape[:-1], len(extra_k))], -1)
        return k, v, mask

    @property
    def _batch_dim(self) -> int:
        return 0 if self.batch_first else 1

    def _add_batch_dim(self, query, key, value, key_padding_mask):
        """Unbatched (T, E) inputs -> batch of one, keeping `query is key` intact."""
        if query.dim() != 2:
            raise ValueError(
                f"query must be 2D (unbatched) or 3D, got shape {tuple(query.shape)}"
            )
        d = self._batch_dim
        new_query = query.unsqueeze(d)
        new_key = new_query if key is query else key.unsqueeze(d)
        new_value = new_key if value is key else value.unsqueeze(d)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
        return new_query, new_key, new_value, key_padding_mask

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        if query.shape[-1] != self.embed_dim:
            raise ValueError(
                f"query must have embed_dim={self.embed_dim} features, "
                f"got shape {tuple(query.shape)}"
            )
        if key.dim() != 3 or key.shape[-1] != self.kdim:
            raise ValueError(
                f"key must be 3D with kdim={self.kdim} features like query, "
                f"got shape {tuple(key.shape)}"
            )
        if value.dim() != 3 or value.shape[-1] != self.vdim:
            raise ValueError(
                f"value must be 3D with vdim={self.vdim} features like query, "
                f"got shape {tuple(value.shape)}"
            )

    def _in_projection(
        self, query: Tensor, key: Tensor, value: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Project and split into heads: q (B, nh, L, hs), k and v (B, nh, S, hs)."""
        E, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
        if not self._qkv_same_embed_dim:
            q = self._split_heads(_project(query, self.q_proj_weight, bq), 1)[0]
            k = self._split_heads(_project(key, self.k_proj_weight, bk), 1)[0]
            v = self._split_heads(_project(value, self.v_proj_weight, bv), 1)[0]
            return q, k, v

        w = self.in_proj_weight
        if query is key and key is value:  # self-attention: one matmul
            q, k, v = self._split_heads(_project(query, w, b), 3).unbind(0)
            return q, k, v
        w_q, w_kv = w.split([E, 2 * E])
        q = self._split_heads(_project(query, w_q, bq), 1)[0]
        if key is value:  # encoder-decoder attention: k and v in one matmul
            b_kv = None if b is None else b[E:]
            k, v = self._split_heads(_project(key, w_kv, b_kv), 2).unbind(0)
            return q, k, v
        w_k, w_v = w_kv.chunk(2)
        k = self._split_heads(_project(key, w_k, bk), 1)[0]
        v = self._split_heads(_project(value, w_v, bv), 1)[0]
        return q, k, v

    def _split_heads(self, x: Tensor, n: int) -> Tensor:
        """(B, T, n*E) or (T, B, n*E) -> (n, B, nh, T, hs), a view."""
        perm = (2, 0, 3, 1, 4) if self.batch_first else (2, 1, 3, 0, 4)
        x = x.view(x.shape[0], x.shape[1], n, self.num_heads, self.head_dim)
        return x.permute(perm)  # (n, B, nh, T, hs)

    def _merge_heads(self, y: Tensor) -> Tensor:
        """(B, nh, L, hs) -> (B, L, E) or (L, B, E)."""
        B, nh, L, hs = y.shape
        if self.batch_first:
            return y.transpose(1, 2).reshape(B, L, nh * hs)  # (B, L, E)
        return y.permute(2, 0, 1, 3).reshape(L, B, nh * hs)  # (L, B, E)

    def _attention_mask(
        self,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        is_causal: bool,
        q: Tensor,
        k: Tensor,
        past: int,
    ) -> Tensor | None:
        """Merge the masks into one, broadcastable to (B, nh, L, S)."""
        B, nh, L, _ = q.shape
        S = k.shape[2]
        mask = None
        if attn_mask is not None:
            mask = self._shape_attn_mask(attn_mask, B, L, S)
        elif is_causal and past + 1 < S:  # else no key lies after any query
            mask = causal_mask(L, S, past, device=q.device)  # (L, S)

        if key_padding_mask is not None:
            check_mask_dtype(key_padding_mask, "key_padding_mask")
            if tuple(key_padding_mask.shape) != (B, S):
                raise ValueError(
                    f"key_padding_mask must have shape (B, S)={(B, S)}, "
                    f"got {tuple(key_padding_mask.shape)}"
                )
            padding = key_padding_mask.reshape(B, 1, 1, S)  # (B, 1, 1, S)
            mask = merge_masks(mask, padding, q.dtype)
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(q.dtype)
        return mask

    def _shape_attn_mask(self, attn_mask: Tensor, B: int, L: int, S: int) -> Tensor:
        check_mask_dtype(attn_mask, "attn_mask")
        shape = tuple(attn_mask.shape)
        if shape == (L, S):
            return attn_mask
        if shape == (1, L, S):
            return attn_mask.unsqueeze(0)  # (1, 1, L, S)
        if shape == (B * self.num_heads, L, S):
            return attn_mask.reshape(B, self.num_heads, L, S)
        raise ValueError(
            f"attn_mask must have shape (L, S)={(L, S)} or (B*num_heads, L, S)="
            f"{(B * self.num_heads, L, S)}, got {shape}"
        )

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if not self._qkv_same_embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        return s + f", batch_first={self.batch_first}"


def _check_arguments(embed_dim: int, num_heads: int, dropout: float) -> None:
    if embed_dim <= 0 or num_heads <= 0:
        raise ValueError(
            f"embed_dim and num_heads must be > 0, got {embed_dim} and {num_heads}"
        )
    if embed_dim % num_heads != 0:
        raise ValueError(
            f"embed_dim must be divisible by num_heads, got {embed_dim} and {num_heads}"
        )
    if not 0.0 <= dropout <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {dropout}")
