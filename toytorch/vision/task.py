"""Image classification as a task of the one training loop (``toytorch.training``).

Each epoch is a seeded shuffle of the training images, cut into full batches; a step's
batch depends only on ``(seed, step)``, so a resumed run sees the same images. The
batch is augmented (random crop with 4 pixels of padding, horizontal flip; optional)
and normalised with the per-channel mean and std of the training set. Evaluation runs
over the whole validation split and reports ``val_loss`` and ``val_accuracy``; the
loop keeps the best checkpoint by ``val_accuracy``. ``config.json["task"]`` stores
what classifying needs later: the label names, the normalisation and the image size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from toytorch import func
from toytorch.errors import ToytorchError
from toytorch.training.config import TrainConfig
from toytorch.training.task import BaseTask, step_generator
from toytorch.vision.data import ImageData, Split
from toytorch.vision.transforms import augment, channel_stats, normalize

TASK_KIND = "classify"
EVAL_BATCH = 500


class ClassificationTask(BaseTask):
    """Train a ``ConvClassifier`` (or any images -> logits model) on labelled images.

    Args:
        data: the train / val / test splits and label names.
        augment: random crop + flip on training batches. Default True.
        crop_padding: pixels of zero padding for the random crop. Default 4.

    Batches: ``(x float32 (B, C, H, W) normalised, y int64 (B,))``.
    """

    unit = "images"
    primary_metric = "val_accuracy"
    higher_is_better = True

    def __init__(self, data: ImageData, augment: bool = True, crop_padding: int = 4):
        self.data = data
        self.augment = augment
        self.crop_padding = crop_padding
        self.mean, self.std = channel_stats(data.train.images)

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device):
        self.device, self.seed = device, config.seed
        n = len(self.data.train)
        self.batch_size = min(config.batch_size, n)
        classes = getattr(getattr(model, "config", None), "num_classes", None)
        if classes is not None and classes != len(self.data.label_names):
            raise ToytorchError(
                f"the model has {classes} classes but the data has "
                f"{len(self.data.label_names)}"
            )

    def steps_per_epoch(self) -> int:
        return len(self.data.train) // self.batch_size

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        spe = self.steps_per_epoch()
        epoch, k = divmod(step, spe)
        order = torch.randperm(
            len(self.data.train), generator=_epoch_generator(self.seed, epoch)
        )
        idx = order[k * self.batch_size : (k + 1) * self.batch_size]
        images = self.data.train.images[idx]
        if self.augment:
            images = augment(images, step_generator(self.seed, step), self.crop_padding)
        return normalize(images, self.mean, self.std), self.data.train.labels[idx]

    def batch_items(self, batch: Any) -> int:
        return int(batch[1].shape[0])

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return func.cross_entropy(model(x), y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        loss, accuracy, _ = evaluate_split(
            model, self.data.val, self.mean, self.std, self.device
        )
        return {"val_loss": loss, "val_accuracy": accuracy}

    def describe(self) -> list[str]:
        d = self.data
        aug = f"crop (padding {self.crop_padding}) + flip" if self.augment else "none"
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        return [
            f"data: {d.name}, {len(d.train):,} train / {len(d.val):,} val / "
            f"{len(d.test):,} test images of {d.in_channels}x{d.image_size}x"
            f"{d.image_size}, {len(d.label_names)} classes",
            f"augmentation: {aug}; normalisation mean ({mean}) std ({std})",
        ]

    def info(self) -> dict[str, Any]:
        return {
            "kind": TASK_KIND,
            "data": self.data.name,
            "label_names": list(self.data.label_names),
            "mean": self.mean,
            "std": self.std,
            "image_size": self.data.image_size,
            "in_channels": self.data.in_channels,
            "augment": self.augment,
        }


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle of one epoch: a function of (seed, epoch) only."""
    return torch.Generator().manual_seed((seed % 2**31) * 65_537 + epoch + 1)


def evaluate_split(
    model: nn.Module,
    split: Split,
    mean: list[float],
    std: list[float],
    device: torch.device | str = "cpu",
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy and the predicted labels (N,) over a split."""
    if len(split) == 0:
        return float("nan"), float("nan"), torch.empty(0, dtype=torch.int64)
    total, preds = 0.0, []
    with torch.no_grad():
        for start in range(0, len(split), EVAL_BATCH):
            x = normalize(split.images[start : start + EVAL_BATCH], mean, std)
            y = split.labels[start : start + EVAL_BATCH].to(device)
            logits = model(x.to(device))
            total += func.cross_entropy(logits, y, reduction="sum").item()
            preds.append(logits.argmax(dim=-1).cpu())
    predicted = torch.cat(preds)
    accuracy = (predicted == split.labels).double().mean().item()
    return total / len(split), accuracy, predicted


def confusion_matrix(
    labels: torch.Tensor, predicted: torch.Tensor, n: int
) -> torch.Tensor:
    """(n, n) counts: row = true label, column = predicted label."""
    flat = labels * n + predicted
    return torch.bincount(flat, minlength=n * n).view(n, n)
