"""A character/word-level LSTM language model built from toytorch layers."""

from dataclasses import dataclass

import torch

from toytorch.layers import LSTM, Dropout, Embedding, Linear
from toytorch.models.base import (
    LanguageModel,
    check_bool,
    check_dropout,
    check_positive_int,
)

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layer, B, d_model)


@dataclass
class LSTMConfig:
    """Hyper-parameters of ``LSTMLanguageModel``; invalid values raise ValueError.

    Args:
        vocab_size: number of token ids.
        context: the window length used in training and by ``generate``.
        n_layer: stacked LSTM layers.
        d_model: embedding width = hidden size of every layer.
        dropout: on the embeddings, between LSTM layers and before the head. Default 0.
        tie_weights: the head's weight is the embedding matrix. Default True.
    """

    vocab_size: int
    context: int
    n_layer: int
    d_model: int
    dropout: float = 0.0
    tie_weights: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layer", "d_model"):
            check_positive_int(name, getattr(self, name))
        check_dropout("dropout", self.dropout)
        check_bool("tie_weights", self.tie_weights)


class LSTMLanguageModel(LanguageModel):
    """Embedding -> Dropout -> LSTM -> Dropout -> Linear head over the vocabulary.

    Args:
        config: an ``LSTMConfig``.
        device, dtype: where and in which float type the parameters are made.

    Shape:
        - idx: (B, T) token ids, any T (the LSTM itself has no window limit).
        - state: None (zeros) or (h, c), each (n_layer, B, d_model).
        - output: logits (B, T, vocab_size) and the final (h, c).

    Attributes:
        embed.weight: (vocab_size, d_model), uniform(-0.1, 0.1), small so that the tied
            head starts with logits near zero (an N(0, 1) embedding would make the first
            losses far above log(vocab_size)).
        lstm: toytorch LSTM, torch's default initialisation U(-1/sqrt(H), 1/sqrt(H)).
        head.weight: (vocab_size, d_model), the same tensor as ``embed.weight`` when
            ``tie_weights``, else its own uniform(-0.1, 0.1); ``head.bias``
            (vocab_size,) starts at zero.

    ``generate(use_cache=True)`` feeds the prompt once and then one token per step,
    carrying (h, c): memory reaches back past the window, the way the model is trained
    (windows fed in order, the state carried). ``use_cache=False`` restarts from zero
    state on the last ``context`` tokens for every new token. The two agree exactly
    while prompt plus generated tokens fit in the window; past it the recomputed path
    forgets everything before the window, so their tokens may differ.
    """

    stateful = True

    def __init__(
        self,
        config: LSTMConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        C = config.d_model
        # nn.LSTM warns about dropout with a single layer, where it would do nothing.
        between = config.dropout if config.n_layer > 1 else 0.0

        self.embed = Embedding(config.vocab_size, C, **factory)
        self.drop = Dropout(config.dropout)
        self.lstm = LSTM(
            C,
            C,
            num_layers=config.n_layer,
            batch_first=True,
            dropout=between,
            **factory,
        )
        self.head = Linear(C, config.vocab_size, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.tie_weights()
        self.lstm.reset_parameters()
        with torch.no_grad():
            self.embed.weight.uniform_(-0.1, 0.1)
            if not self.config.tie_weights:
                self.head.weight.uniform_(-0.1, 0.1)
            self.head.bias.zero_()

    def forward(
        self, idx: torch.Tensor, state: LSTMState | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T), got shape {tuple(idx.shape)}")
        x = self.drop(self.embed(idx))  # (B, T, C)
        x, state = self.lstm(x, state)  # (B, T, C), ((L, B, C), (L, B, C))
        logits = self.head(self.drop(x))  # (B, T, V)
        return logits, state

    def _cached_logits(
        self, tokens: list[int], state: LSTMState | None
    ) -> tuple[torch.Tensor, LSTMState]:
        # First call: the whole (cropped) prompt; then only the newest token.
        new = tokens[-self.config.context :] if state is None else tokens[-1:]
        return self._last_logits(self._ids_tensor(new), state)

    def extra_repr(self) -> str:
        c = self.config
        return f"n_layer={c.n_layer}, d_model={c.d_model}, tie_weights={c.tie_weights}"
