"""Position encodings added to token embeddings: sinusoidal or learned."""

import math

import torch
from torch import Tensor, nn

from .basic import Dropout

_KINDS = ("sinusoidal", "learned")


def sinusoidal_table(
    max_len: int,
    d_model: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """The (max_len, d_model) table of "Attention is all you need".

    ``pe[pos, 2i] = sin(pos / 10000^(2i / d_model))`` and
    ``pe[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))``; computed in float64, then
    cast to ``dtype`` (default: torch's default dtype). An odd ``d_model`` gets one
    more sine column than cosine columns.
    """
    pos = torch.arange(max_len, dtype=torch.float64, device=device).unsqueeze(1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)
    inv_freq = torch.exp(two_i * (-math.log(10000.0) / d_model))  # 10000^(-2i/d)
    angles = pos * inv_freq  # (max_len, ceil(d_model / 2))

    pe = torch.empty(max_len, d_model, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.to(dtype or torch.get_default_dtype())


class PositionalEncoding(nn.Module):
    r"""Adds a position vector to each time step, then dropout.

    ``kind="sinusoidal"`` uses the fixed table of "Attention is all you need" (see
    :func:`sinusoidal_table`), a registered **non-persistent** buffer ``pe``: it moves
    with ``.to()`` but is left out of the state_dict, since it is a function of
    ``max_len`` and ``d_model`` alone. ``kind="learned"`` learns one vector per
    position instead, the Parameter ``weight`` (as GPT-2's position embedding).

    Args:
        d_model: model width C.
        max_len: number of positions available (default 5000).
        dropout: dropout probability after the addition (default 0.0).
        kind: ``"sinusoidal"`` (default) or ``"learned"``.
        batch_first: x is (B, T, C) (default ``True``) instead of (T, B, C).
        device, dtype: factory arguments for the table or the parameter.

    Shape:
        - x: :math:`(B, T, C)` if ``batch_first`` else :math:`(T, B, C)`.
        - output: same as x.

    Attributes:
        pe: (sinusoidal) buffer :math:`(max\_len, C)`.
        weight: (learned) Parameter :math:`(max\_len, C)`, initialised from
            :math:`\mathcal{N}(0, 0.02^2)`.

    Example::

        >>> pos = PositionalEncoding(16, max_len=64)
        >>> x = torch.zeros(2, 5, 16)
        >>> pos(x).shape
        torch.Size([2, 5, 16])
        >>> torch.equal(pos(x[:, 3:4], offset=3), pos(x)[:, 3:4])  # decoding step 3
        True
    """

    d_model: int
    max_len: int
    kind: str
    batch_first: bool

    def __init__(
        self,
        d_model: int,
        max_len: int = 5000,
        dropout: float = 0.0,
        kind: str = "sinusoidal",
        batch_first: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind must be 'sinusoidal' or 'learned', got {kind!r}")
        if d_model <= 0 or max_len <= 0:
            raise ValueError(
                f"d_model and max_len must be > 0, got {d_model} and {max_len}"
            )
        self.d_model, self.max_len, self.kind = d_model, max_len, kind
        self.batch_first = batch_first
        if kind == "sinusoidal":
            table = sinusoidal_table(max_len, d_model, device=device, dtype=dtype)
            self.register_buffer("pe", table, persistent=False)
            self.register_parameter("weight", None)
        else:
            self.register_buffer("pe", None)
            self.weight = nn.Parameter(
                torch.empty(max_len, d_model, device=device, dtype=dtype)
            )
        self.dropout = Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the learned table; the sinusoidal one is fixed."""
        if self.weight is not None:
            with torch.no_grad():
                self.weight.normal_(0.0, 0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Add the vectors of positions ``offset .. offset + T - 1`` to ``x``.

        ``offset`` is the position of x's first time step: pass the number of
        tokens already decoded (e.g. the KV cache length) when feeding new tokens.
        """
        T = x.shape[1] if self.batch_first else x.shape[0]
        if offset < 0 or offset + T > self.max_len:
            raise ValueError(
                f"positions offset={offset} .. {offset + T - 1} exceed "
                f"max_len={self.max_len}"
            )
        table = self.pe if self.weight is None else self.weight
        pos = table[offset : offset + T].to(x.dtype)  # (T, C)
        if not self.batch_first:
            pos = pos.unsqueeze(1)  # (T, 1, C)
        return self.dropout(x + pos)

    def extra_repr(self) -> str:
        return f"{self.d_model}, max_len={self.max_len}, kind={self.kind!r}"
