"""Text windows for language-model training, cut from one tensor of token ids.

A corpus becomes one 1-D LongTensor of ids. From it:

- :func:`split_by_position` keeps the first part for training and the last part for
  validation (no shuffling across the boundary, so validation text is never seen).
- :class:`TextWindows` is a ``torch.utils.data.Dataset`` of ``(input, target)`` pairs:
  window ``i`` is ``ids[i*stride : i*stride + T]`` and its target is the same window
  shifted by one token. It works with ``torch.utils.data.DataLoader``.
- :func:`random_windows` draws a batch of windows at random offsets from a seeded
  generator (the nanoGPT way of sampling a Transformer's training batches).
- :class:`StreamBatcher` cuts the ids into ``B`` contiguous streams and serves them
  window after window, so a recurrent model can carry its state across windows.

Worked example (``T = 3``)::

    ids = [10, 11, 12, 13, 14, 15, 16]
    TextWindows(ids, 3)[0] == ([10, 11, 12], [11, 12, 13])
    TextWindows(ids, 3)[1] == ([13, 14, 15], [14, 15, 16])   # stride defaults to T
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


def _check_ids(ids: torch.Tensor) -> None:
    if ids.dim() != 1 or ids.dtype != torch.long:
        raise ValueError(
            f"ids must be a 1-D LongTensor, got dim={ids.dim()} dtype={ids.dtype}"
        )


def split_by_position(
    ids: torch.Tensor, val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``ids`` into the first ``1 - val_fraction`` and the last ``val_fraction``.

    Args:
        ids: 1-D LongTensor of token ids.
        val_fraction: share of tokens kept for validation, in [0, 1). Default: 0.1.

    Returns:
        ``(train_ids, val_ids)``, views of ``ids``; ``val_ids`` is empty at 0.
    """
    _check_ids(ids)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_train = len(ids) - int(len(ids) * val_fraction)
    return ids[:n_train], ids[n_train:]


class TextWindows(Dataset):
    """Dataset of ``(input, target)`` windows of ``T`` tokens from one id tensor.

    Args:
        ids: 1-D LongTensor of token ids.
        context: window length ``T``.
        stride: distance between the starts of consecutive windows. Default: ``T``
            (non-overlapping windows that cover the text once).

    Shape:
        - item: ``(input (T,), target (T,))`` with ``target[t] == ids[start + t + 1]``.

    The last window must have its target inside ``ids``, so there are
    ``(len(ids) - T - 1) // stride + 1`` windows (none when ``len(ids) <= T``).
    """

    def __init__(self, ids: torch.Tensor, context: int, stride: int | None = None):
        _check_ids(ids)
        if context < 1:
            raise ValueError(f"context must be at least 1, got {context}")
        stride = context if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.ids = ids
        self.context = context
        self.stride = stride

    def __len__(self) -> int:
        span = len(self.ids) - self.context - 1
        return 0 if span < 0 else span // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        start = (i % len(self)) * self.stride
        chunk = self.ids[start : start + self.context + 1]
        return chunk[:-1], chunk[1:]


def random_windows(
    ids: torch.Tensor, context: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` windows at uniformly random offsets.

    Returns:
        ``(x, y)``, each ``(B, T)``; ``y`` is ``x`` shifted by one token.
    """
    _check_ids(ids)
    if len(ids) <= context:
        raise ValueError(f"need more than context={context} ids, got {len(ids)}")
    starts = torch.randint(len(ids) - context, (batch_size,), generator=generator)
    offsets = torch.arange(context + 1)
    chunks = ids[starts[:, None] + offsets]  # (B, T+1)
    return chunks[:, :-1], chunks[:, 1:]


class StreamBatcher:
    """``B`` contiguous streams of the text, served one ``T``-token window at a time.

    The ids are cut into ``B`` equal, consecutive pieces of ``L`` tokens, a multiple
    of ``T`` (stream ``b`` starts at token ``b * L``); batch ``k`` holds window ``k``
    of every stream. Row ``b`` of batch ``k + 1`` continues exactly where row ``b`` of
    batch ``k`` stopped, which is what lets an LSTM carry its ``(h, c)`` across
    batches (detached) and learn dependencies longer than one window.
    After ``len(self)`` batches the streams start over.

    Args:
        ids: 1-D LongTensor of token ids.
        context: window length ``T``.
        batch_size: number of parallel streams ``B``.

    Shape:
        - ``batch(k)``: ``(x (B, T), y (B, T))``.

    Only the last ``< B * T`` tokens (too few for one more window in every stream)
    are left out.
    """

    def __init__(self, ids: torch.Tensor, context: int, batch_size: int):
        _check_ids(ids)
        if context < 1 or batch_size < 1:
            raise ValueError(
                f"context and batch_size must be at least 1, got {context}, "
                f"{batch_size}"
            )
        # Every stream gets the same whole number of windows, and stream b + 1 starts
        # where stream b ends, so no token inside the covered span is skipped.
        self.n_windows = (len(ids) - 1) // (batch_size * context)
        if self.n_windows < 1:
            raise ValueError(
                f"{len(ids)} ids are too few for {batch_size} streams of at least "
                f"context={context} tokens"
            )
        self.context = context
        self.batch_size = batch_size
        L = self.n_windows * context  # tokens per stream
        starts = torch.arange(batch_size) * L
        offsets = torch.arange(L + 1)  # one more: the target of the last input
        self.streams = ids[starts[:, None] + offsets]  # (B, L+1)

    def __len__(self) -> int:
        return self.n_windows

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window ``k mod len(self)`` of every stream."""
        k = k % self.n_windows
        chunk = self.streams[:, k * self.context : (k + 1) * self.context + 1]
        return chunk[:, :-1], chunk[:, 1:]
