"""Next-token prediction on one tensor of token ids: the text task of the loop.

Two ways to feed a model, chosen from ``model.stateful``:

- Windowed (the Transformer): every step draws ``B`` windows of ``T`` tokens at random
  offsets of the training split (nanoGPT's sampling), from a generator seeded by
  ``(seed, step)``. Evaluation uses a fixed, evenly spaced set of validation windows.
- Streamed (the LSTM): the training split is cut into ``B`` contiguous streams
  (:class:`toytorch.data.StreamBatcher`); step ``k`` feeds window ``k`` of every stream
  and passes the state the previous step returned, detached, so gradients stop at the
  window edge while the state still carries context across windows. The streams and
  the state start over after each pass. Evaluation streams the validation split the
  same way, from a fresh state.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from toytorch.data import StreamBatcher, TextWindows, random_windows
from toytorch.errors import ToytorchError
from toytorch.training.config import TrainConfig
from toytorch.training.task import BaseTask, step_generator


def detach_state(state: Any) -> Any:
    """The same nested tuple/list of tensors, cut from the autograd graph."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


class LanguageModelTask(BaseTask):
    """Train a ``LanguageModel`` on next-token prediction.

    Args:
        train_ids: 1-D LongTensor, the training split.
        val_ids: 1-D LongTensor, the validation split (may be empty: no val metrics).
        tokenizer: saved with the checkpoint as ``tokenizer.json`` (optional).
        corpus: a JSON description of the corpus (name, sha256...) for ``config.json``.

    Batches: ``(x (B, T), y (B, T), first)``; ``first`` is True on the first window of
    a pass over the streams, where a stateful model starts from a fresh state.
    """

    unit = "tokens"
    primary_metric = "val_loss"
    higher_is_better = False

    def __init__(
        self,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor,
        tokenizer: Any = None,
        corpus: dict[str, Any] | None = None,
    ):
        self.train_ids = train_ids
        self.val_ids = val_ids
        self.tokenizer = tokenizer
        self.corpus = corpus or {}
        self.carried: Any = None  # the stateful model's state after the last step

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device):
        from toytorch.models import lm_loss

        self.lm_loss = lm_loss
        self.device = device
        self.seed = config.seed
        self.batch_size = config.batch_size
        self.context = model.config.context
        self.stateful = bool(getattr(model, "stateful", False))
        T, B = self.context, self.batch_size
        if len(self.train_ids) < T + B:
            raise ToytorchError(
                f"the training split has {len(self.train_ids)} tokens, too few for "
                f"context {T} and batch size {B}: it needs at least {T + B}"
            )
        if self.stateful:
            self.streams = StreamBatcher(self.train_ids, T, B)
        self.eval_set = self._eval_batches(config.eval_batches)

    def _eval_batches(self, n_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed validation batches; empty when the split holds no window."""
        T, B = self.context, self.batch_size
        if self.stateful:
            B = min(B, (len(self.val_ids) - 1) // T)  # fewer streams on a short split
            if B < 1:
                return []
            streams = StreamBatcher(self.val_ids, T, B)
            return [streams.batch(k) for k in range(min(n_batches, len(streams)))]
        windows = TextWindows(self.val_ids, T)
        n = min(len(windows), n_batches * B)
        if n == 0:
            return []
        picks = torch.linspace(0, len(windows) - 1, n).round().long().tolist()
        xs, ys = zip(*(windows[i] for i in picks), strict=True)
        x, y = torch.stack(xs), torch.stack(ys)  # (n, T)
        return list(zip(x.split(B), y.split(B), strict=True))

    def steps_per_epoch(self) -> int:
        if self.stateful:
            return len(self.streams)
        return max(1, (len(self.train_ids) - 1) // (self.context * self.batch_size))

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        if self.stateful:
            x, y = self.streams.batch(step)
            return x, y, step % len(self.streams) == 0
        g = step_generator(self.seed, step)
        x, y = random_windows(self.train_ids, self.context, self.batch_size, g)
        return x, y, True

    def batch_items(self, batch: tuple[torch.Tensor, torch.Tensor, bool]) -> int:
        return batch[0].numel()

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y, first = batch
        if not self.stateful:
            logits, _ = model(x)
            return self.lm_loss(logits, y)
        state = None if first else self.carried
        logits, state = model(x, state)
        self.carried = detach_state(state)
        return self.lm_loss(logits, y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if not self.eval_set:
            return {}
        total, state = 0.0, None
        for x, y in self.eval_set:
            x, y = x.to(self.device), y.to(self.device)
            logits, state = model(x, state if self.stateful else None)
            total += self.lm_loss(logits, y).item()
        val_loss = total / len(self.eval_set)
        return {"val_loss": val_loss, "perplexity": _safe_exp(val_loss)}

    def shard_eval(self, rank: int, world_size: int) -> int:
        """Keep this process's share of the evaluation set; return its weight.

        Used by distributed training (:mod:`toytorch.training.distributed`), which
        takes the weighted mean of the processes' ``val_loss``. The loss is the mean
        over batches of each batch's mean. Windowed, a process keeps every
        ``world_size``-th batch (weight: its number of batches). Streamed, the batches
        follow each other through the carried state, so a process keeps a slice of
        the streams (rows) of every batch instead (weight: its number of rows); all
        batches have the same rows, so both weighted means are exact.
        """
        if not self.stateful:
            self.eval_set = self.eval_set[rank::world_size]
            return len(self.eval_set)
        parts = [
            (x.tensor_split(world_size)[rank], y.tensor_split(world_size)[rank])
            for x, y in self.eval_set
        ]
        self.eval_set = [(x, y) for x, y in parts if len(x)]
        return len(self.eval_set[0][0]) if self.eval_set else 0

    def describe(self) -> list[str]:
        feed = (
            f"{len(self.streams)} windows per pass over {self.batch_size} contiguous "
            "streams, state carried detached"
            if self.stateful
            else "random windows, seeded per step"
        )
        n_eval = sum(len(x) for x, _ in self.eval_set)
        return [
            f"data: {len(self.train_ids):,} train / {len(self.val_ids):,} validation "
            f"tokens (split by position), context {self.context}, {feed}",
            f"evaluation: a fixed set of {n_eval} validation windows "
            f"({len(self.eval_set)} batches)",
        ]

    def info(self) -> dict[str, Any]:
        return {"kind": "language-model", "corpus": self.corpus}

    def files(self) -> dict[str, str]:
        if self.tokenizer is None:
            return {}
        return {"tokenizer.json": self.tokenizer.to_json_str()}

    def state_dict(self) -> dict[str, Any]:
        if self.carried is None:
            return {}
        return {"carried": self.carried}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        carried = state.get("carried")
        self.carried = None if carried is None else _to(carried, self.device)


def text_task(
    tokenizer,
    text: str,
    corpus: dict[str, Any],
    context: int,
    batch_size: int,
    val_fraction: float,
) -> LanguageModelTask:
    """The language-model task of a corpus, as every front end builds it.

    Encodes ``text`` once (the ids are cached on disk, keyed by the text and the
    tokenizer), checks that it holds enough tokens for ``context`` and ``batch_size``
    (a ToytorchError that says how many it needs), and splits it by position: the
    first ``1 - val_fraction`` for training, the rest for validation.
    """
    from toytorch.corpora import check_corpus_size
    from toytorch.data import split_by_position
    from toytorch.tokenizers import encode_cached

    ids = encode_cached(tokenizer, text)
    name = corpus.get("name") or "corpus"
    check_corpus_size(len(ids), context, batch_size, val_fraction, name=name)
    train_ids, val_ids = split_by_position(ids, val_fraction)
    return LanguageModelTask(train_ids, val_ids, tokenizer, corpus)


def _to(state: Any, device: torch.device) -> Any:
    if isinstance(state, torch.Tensor):
        return state.to(device)
    return type(state)(_to(s, device) for s in state)


def _safe_exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf
