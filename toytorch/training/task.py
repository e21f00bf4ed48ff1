"""The task protocol: what the one training loop needs from a kind of training.

The loop (:func:`toytorch.training.train`) knows nothing about text or images. A task
supplies the batches, the loss of a batch and an evaluation; the loop owns the
optimizer, the schedule, the device, timing, events, stopping and checkpoints.

Contract, in the order the loop calls it:

1. ``setup(model, config, device)`` once, before the first step (build samplers and the
   fixed evaluation set; remember ``device`` for evaluation).
2. ``steps_per_epoch()`` when ``config.epochs`` is set.
3. Each step: ``train_batch(step)`` returns the batch of that step, a pure function of
   ``(config.seed, step)``, so a resumed run sees the same data as an uninterrupted one
   (and a distributed run can shard it); the loop moves it to the device
   (:func:`toytorch.training.device.to_device`), then calls ``loss(model, batch)`` (a
   scalar tensor with grad) and ``batch_items(batch)`` (tokens or samples, for
   throughput).
4. ``evaluate(model)`` every ``config.eval_every`` steps and at the end, with the model
   in eval mode and grad off: a dict of floats over a FIXED set of batches, so values
   are comparable between evaluations. ``primary_metric`` names the key that
   ``keep_best`` ranks by, ``higher_is_better`` its direction.
5. Checkpoints: ``info()`` (JSON, stored as ``config.json["task"]``), ``files()``
   (extra text files, e.g. ``{"tokenizer.json": ...}``), ``state_dict()`` /
   ``load_state_dict()`` for state a resume needs besides the model and optimizer
   (values are tensors or JSON values; e.g. the LSTM's carried state).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from toytorch.training.config import TrainConfig


@runtime_checkable
class Task(Protocol):
    unit: str
    primary_metric: str
    higher_is_better: bool

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device): ...

    def steps_per_epoch(self) -> int: ...

    def train_batch(self, step: int) -> Any: ...

    def batch_items(self, batch: Any) -> int: ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def describe(self) -> list[str]: ...

    def info(self) -> dict[str, Any]: ...

    def files(self) -> dict[str, str]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BaseTask:
    """Defaults for the optional parts of :class:`Task`; subclass and fill the rest."""

    unit: str = "samples"
    primary_metric: str = "val_loss"
    higher_is_better: bool = False

    def describe(self) -> list[str]:
        return []

    def info(self) -> dict[str, Any]:
        return {"kind": type(self).__name__}

    def files(self) -> dict[str, str]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state  # nothing to restore


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, step)``: the data of one step."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)
