"""A decoder-only (GPT-style) Transformer language model built from toytorch layers."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from toytorch.layers.attention import KVCache
from toytorch.layers.basic import Embedding, LayerNorm, Linear
from toytorch.layers.positional import PositionalEncoding, sinusoidal_table
from toytorch.layers.transformer import TransformerEncoderLayer
from toytorch.models.base import (
    LanguageModel,
    check_bool,
    check_choice,
    check_dropout,
    check_positive_int,
)

ACTIVATIONS = ("gelu", "relu")
POSITIONS = ("learned", "sinusoidal")
INIT_STD = 0.02  # GPT-2's initialiser range

KVState = list[KVCache]  # one cache per layer


@dataclass
class TransformerConfig:
    """Hyper-parameters of ``TransformerLanguageModel``; bad values raise ValueError.

    Args:
        vocab_size: number of token ids.
        context: the longest sequence the model sees (its position table's length).
        n_layer: number of Transformer blocks.
        n_head: attention heads per block; must divide ``d_model``.
        d_model: width of the residual stream; the feed-forward is ``4 * d_model``.
        dropout: on the embeddings, attention weights and residual branches. Default 0.
        norm_first: pre-norm (GPT-2, plus a final LayerNorm) when True, post-norm (the
            original Transformer) when False. Default True.
        activation: feed-forward activation, "gelu" (exact) or "relu". Default "gelu".
        tie_weights: the head's weight is the token-embedding matrix. Default True.
        positions: "learned" (a trained table) or "sinusoidal" (fixed). Default
            "learned".
        bias: biases in the linear layers and LayerNorms. Default True.
    """

    vocab_size: int
    context: int
    n_layer: int
    n_head: int
    d_model: int
    dropout: float = 0.0
    norm_first: bool = True
    activation: str = "gelu"
    tie_weights: bool = True
    positions: str = "learned"
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model"):
            check_positive_int(name, getattr(self, name))
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"n_head must divide d_model, got n_head={self.n_head} and "
                f"d_model={self.d_model}"
            )
        check_dropout("dropout", self.dropout)
        for name in ("norm_first", "tie_weights", "bias"):
            check_bool(name, getattr(self, name))
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("positions", self.positions, POSITIONS)

    @property
    def dim_feedforward(self) -> int:
        return 4 * self.d_model


class TransformerLanguageModel(LanguageModel):
    """Token + position embeddings, ``n_layer`` causal blocks, a vocabulary head.

    The blocks are toytorch ``TransformerEncoderLayer``s (batch_first) run with a causal
    mask, which makes them GPT decoder blocks (there is no cross-attention).

    Args:
        config: a ``TransformerConfig``.
        device, dtype: where and in which float type the parameters are made.

    Shape:
        - idx: (B, T) token ids with T <= context (minus the cached length).
        - state: None, or a list of one ``KVCache`` per layer (see ``new_cache``) that
          this call reads and extends in place: idx then holds the next positions.
        - output: logits (B, T, vocab_size) and the same state.

    Attributes:
        embed.weight: (vocab_size, d_model).
        pos: ``PositionalEncoding`` (learned table (context, d_model), or sinusoids).
        layers: ``ModuleList`` of ``n_layer`` ``TransformerEncoderLayer``s.
        norm: final ``LayerNorm(d_model)`` for pre-norm; None for post-norm, whose
            blocks already end in one.
        head.weight: (vocab_size, d_model), no bias; the same tensor as
            ``embed.weight`` when ``tie_weights`` (``num_parameters`` counts it once).

    Initialisation (GPT-2 / nanoGPT): every linear weight, the attention in-projection,
    the token embedding and a learned position table are N(0, 0.02); the projections
    that write into the residual stream (attention ``out_proj`` and the feed-forward's
    ``linear2``) are N(0, 0.02 / sqrt(2 * n_layer)), so the stream's variance does not
    grow with depth; biases are zero and LayerNorms start as the identity. The
    sinusoidal table is added as it is (not scaled by sqrt(d_model)).
    """

    def __init__(
        self,
        config: TransformerConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        C = config.d_model

        self.embed = Embedding(config.vocab_size, C, **factory)
        # embedding dropout lives in PositionalEncoding (after the addition)
        self.pos = PositionalEncoding(
            C, config.context, config.dropout, kind=config.positions, **factory
        )
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                C,
                config.n_head,
                dim_feedforward=config.dim_feedforward,
                dropout=config.dropout,
                activation=config.activation,
                batch_first=True,
                norm_first=config.norm_first,
                bias=config.bias,
                **factory,
            )
            for _ in range(config.n_layer)
        )
        self.norm = (
            LayerNorm(C, bias=config.bias, **factory) if config.norm_first else None
        )
        self.head = Linear(C, config.vocab_size, bias=False, **factory)
        T = config.context
        mask = torch.empty(T, T, dtype=torch.bool, device=device)
        self.register_buffer("causal_mask", mask, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation, chosen by parameter name (see the class docstring)."""
        self.tie_weights()
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        with torch.no_grad():
            for name, p in self.named_parameters():  # a tied weight appears once
                if name.endswith(("out_proj.weight", "linear2.weight")):
                    p.normal_(0.0, residual_std)
                elif p.dim() >= 2:  # linear, in-projection, embeddings, position table
                    p.normal_(0.0, INIT_STD)
                elif name.endswith("weight"):  # the only 1-D weights are LayerNorms'
                    p.fill_(1.0)
                else:  # biases
                    p.zero_()
        self._fill_buffers()

    @torch.no_grad()
    def _fill_buffers(self) -> None:
        """(Re)compute the constant buffers, e.g. after ``to_empty()`` from meta."""
        # (context, context), True above the diagonal: key j lies after query i, so it
        # is masked (as torch.nn). Built once; forward slices it, allocating nothing.
        T, mask = self.config.context, self.causal_mask
        mask.copy_(torch.ones(T, T, dtype=torch.bool, device=mask.device).triu_(1))
        pe = self.pos.pe
        if pe is not None:  # sinusoidal
            pe.copy_(sinusoidal_table(T, self.config.d_model, pe.device, pe.dtype))

    def new_cache(self) -> KVState:
        """An empty KV cache (one per layer) to pass as ``state`` to ``forward``."""
        return [KVCache() for _ in self.layers]

    def forward(
        self, idx: torch.Tensor, state: KVState | None = None
    ) -> tuple[torch.Tensor, KVState | None]:
        x, state = self._features(idx, state)  # (B, T, C)
        return self.head(x), state  # (B, T, V)

    def _features(
        self, idx: torch.Tensor, state: KVState | None
    ) -> tuple[torch.Tensor, KVState | None]:
        """The final hidden states (B, T, C), before the head."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T), got shape {tuple(idx.shape)}")
        T, context = idx.shape[1], self.config.context
        past = 0 if state is None else len(state[0])
        if past + T > context:
            raise ValueError(
                f"{past} cached + {T} new positions exceed context={context}"
            )

        x = self.pos(self.embed(idx), offset=past)  # (B, T, C)
        # T == 1 attends to every cached position: nothing to mask.
        mask = self.causal_mask[past : past + T, : past + T] if T > 1 else None
        for i, layer in enumerate(self.layers):
            cache = None if state is None else state[i]
            x = layer(x, src_mask=mask, is_causal=True, cache=cache)  # (B, T, C)
        if self.norm is not None:
            x = self.norm(x)
        return x, state

    def _last_logits(
        self, idx: torch.Tensor, state: KVState | None
    ) -> tuple[torch.Tensor, KVState | None]:
        # the head on the last position only: (C,) -> (V,) instead of (T, V)
        x, state = self._features(idx, state)
        return self.head(x[0, -1]), state

    def _cached_logits(
        self, tokens: list[int], state: KVState | None
    ) -> tuple[torch.Tensor, KVState]:
        # Absolute positions cannot slide: once the window is full, re-prefill a fresh
        # cache with the last `context` tokens, exactly what the uncached path sees.
        # Past the window every step is then a full prefill (no saving over no cache).
        context = self.config.context
        if state is None or len(state[0]) + 1 > context:
            state, new = self.new_cache(), tokens[-context:]
        else:
            new = tokens[-1:]
        return self._last_logits(self._ids_tensor(new), state)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"n_layer={c.n_layer}, n_head={c.n_head}, d_model={c.d_model}, "
            f"context={c.context}, norm_first={c.norm_first}, positions={c.positions}"
        )
