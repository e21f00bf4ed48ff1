"""A tiny regression task and model for testing the training loop without text."""

from __future__ import annotations

import torch
from torch import nn

from toytorch.training import BaseTask, TrainConfig, step_generator


class ToyRegression(BaseTask):
    """Fit y = x @ w on 4 features; ``nan_at`` makes the loss NaN at that step."""

    unit = "samples"

    def __init__(self, n: int = 256, nan_at: int | None = None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        self.nan_at = nan_at
        self.current = -1

    def setup(self, model, config: TrainConfig, device):
        self.device, self.seed, self.B = device, config.seed, config.batch_size
        self.x_val, self.y_val = self.x[:64].to(device), self.y[:64].to(device)

    def steps_per_epoch(self) -> int:
        return len(self.x) // self.B

    def train_batch(self, step: int):
        self.current = step + 1  # the step this batch is for, 1-based
        idx = torch.randint(
            len(self.x), (self.B,), generator=step_generator(self.seed, step)
        )
        return self.x[idx], self.y[idx]

    def batch_items(self, batch) -> int:
        return len(batch[0])

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        loss = ((model(x) - y) ** 2).mean()
        if self.current == self.nan_at:
            loss = loss * float("nan")
        return loss

    def evaluate(self, model) -> dict[str, float]:
        return {"val_loss": ((model(self.x_val) - self.y_val) ** 2).mean().item()}


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(0.2), nn.Linear(16, 1))


def toy_config(**kw) -> TrainConfig:
    base = dict(
        max_steps=20,
        batch_size=8,
        lr=1e-2,
        min_lr=1e-3,
        warmup=3,
        eval_every=5,
        device="cpu",
        seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)
