"""Classify images with a trained classifier checkpoint, for every front end.

``load_classifier(path)`` loads a checkpoint whose task is image classification, with
what classifying needs from its ``config.json["task"]``: label names, image size and
the training set's normalisation. ``classify(classifier, pixels, k)`` normalises
uint8 images, runs the model and returns the ``k`` likeliest labels of each image.
``toytorch classify``, ``toytorch eval`` and the TUI's Classify tab all go through here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from toytorch import func
from toytorch.errors import ToytorchError
from toytorch.vision.transforms import normalize


@dataclass
class Classifier:
    """A loaded image classifier (model in eval mode) and its task settings."""

    path: Path
    model: nn.Module
    config: dict[str, Any]  # the checkpoint's config.json
    label_names: list[str]
    image_size: int
    mean: list[float]
    std: list[float]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def classifier_info(config: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's ``task`` entry; a ToytorchError if it is no image classifier."""
    info = config.get("task") or {}
    if info.get("kind") != "classify":
        kind = info.get("kind", "unknown")
        raise ToytorchError(
            f"checkpoint {path} is not an image classifier (its task is {kind!r})"
        )
    return info


def load_classifier(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> Classifier:
    """Load the classifier checkpoint at ``path`` onto ``device`` (auto, cpu, cuda...).

    The task is checked before the weights are read, so a language-model checkpoint
    fails fast with a one-line error.
    """
    from toytorch.training import load_checkpoint, resolve_device
    from toytorch.training.checkpoint import read_config

    path = Path(path)
    info = classifier_info(read_config(path), path)
    loaded = load_checkpoint(path, resolve_device(device))
    return Classifier(
        path=loaded.path,
        model=loaded.model,
        config=loaded.config,
        label_names=list(info["label_names"]),
        image_size=int(info["image_size"]),
        mean=info["mean"],
        std=info["std"],
    )


def probabilities(classifier: Classifier, pixels: Tensor) -> Tensor:
    """uint8 images (N, C, S, S) -> class probabilities float32 (N, classes), on CPU."""
    x = normalize(pixels, classifier.mean, classifier.std).to(classifier.device)
    with torch.no_grad():
        return func.softmax(classifier.model(x), dim=-1).cpu()  # (N, classes)


def classify(
    classifier: Classifier, pixels: Tensor, k: int = 5
) -> list[list[tuple[str, float]]]:
    """The ``k`` likeliest (label, probability) pairs of each image, likeliest first.

    ``pixels``: uint8 (N, C, S, S) at the classifier's image size. ``k`` is clipped
    to 1..number of classes.
    """
    names = classifier.label_names
    k = max(1, min(k, len(names)))
    tops = []
    for p in probabilities(classifier, pixels):
        values, labels = p.topk(k)
        tops.append(
            [
                (names[i], v)
                for v, i in zip(values.tolist(), labels.tolist(), strict=True)
            ]
        )
    return tops
