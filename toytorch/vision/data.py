"""Image datasets by name or path, split into train / validation / test.

``--data cifar10`` reads CIFAR-10 from the data folder (``toytorch data fetch
cifar10`` puts it there): the 50,000 training images are shuffled once by the seed
and split 45,000 / 5,000 (train / validation); the 10,000 test images are the test set.

``--data PATH`` reads an image folder. With ``PATH/train`` (and ``PATH/test``) the
split is given; otherwise every image is in ``PATH/<class>/`` and a seeded shuffle
keeps ``val_fraction`` of them for validation and as many again for the test. With
``PATH/train`` but no ``PATH/test``, the validation images double as the test set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from toytorch.errors import ToytorchError
from toytorch.vision import cifar
from toytorch.vision.imagefolder import read_image_folder

CIFAR10_VAL = 5000


@dataclass
class Split:
    """uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass
class ImageData:
    """A labelled image data set: its name, class names and three splits.

    ``label_names[i]`` names label ``i``; ``image_size`` is read from the train split.
    """

    name: str
    label_names: list[str]
    train: Split
    val: Split
    test: Split

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]


def load_image_data(
    data: str,
    image_size: int = 32,
    val_fraction: float = 0.1,
    seed: int = 1337,
    data_dir: str | os.PathLike | None = None,
) -> ImageData:
    """CIFAR-10 (``data="cifar10"``) or an image folder, split as the module says."""
    if data == "cifar10":
        return _cifar10(cifar.data_dir(data_dir), seed)
    return _image_folder(Path(data), image_size, val_fraction, seed)


def load_test_split(
    data: str,
    label_names: list[str],
    image_size: int,
    val_fraction: float = 0.1,
    seed: int = 1337,
    data_dir: str | os.PathLike | None = None,
) -> Split:
    """Only the test set, labels ordered as ``label_names`` (a checkpoint's)."""
    if data == "cifar10":
        c = cifar.read_cifar10(cifar.data_dir(data_dir), split="test")
        return Split(c.test_images, c.test_labels)
    # a folder: the same split as in training (same seed and fraction)
    return _image_folder(Path(data), image_size, val_fraction, seed, label_names).test


def _cifar10(folder: Path, seed: int) -> ImageData:
    c = cifar.read_cifar10(folder)
    n_val = min(CIFAR10_VAL, len(c.train_labels) // 10)  # 5,000 of the real 50,000
    train, val = _shuffle_split(Split(c.train_images, c.train_labels), n_val, seed)
    return ImageData(
        "cifar10", c.label_names, train, val, Split(c.test_images, c.test_labels)
    )


def _image_folder(
    root: Path,
    image_size: int,
    val_fraction: float,
    seed: int,
    label_names: list[str] | None = None,
) -> ImageData:
    if (root / "train").is_dir():
        images, labels, names = read_image_folder(
            root / "train", image_size, label_names
        )
        n_val = _count(len(labels), val_fraction, root)
        train, val = _shuffle_split(Split(images, labels), n_val, seed)
        test = val
        if (root / "test").is_dir():
            test = Split(*read_image_folder(root / "test", image_size, names)[:2])
        return ImageData(str(root), names, train, val, test)

    images, labels, names = read_image_folder(root, image_size, label_names)
    n_val = _count(len(labels), val_fraction, root)
    rest, test = _shuffle_split(Split(images, labels), n_val, seed)
    train, val = _shuffle_split(rest, n_val, seed + 1)
    return ImageData(str(root), names, train, val, test)


def _count(n: int, fraction: float, root: Path) -> int:
    k = max(1, round(n * fraction))
    if n - 2 * k < 1:
        raise ToytorchError(
            f"image folder {root} has only {n} images: too few to split"
        )
    return k


def _shuffle_split(split: Split, n_last: int, seed: int) -> tuple[Split, Split]:
    """A seeded shuffle, then (all but the last n_last, the last n_last)."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    head, tail = order[: len(split) - n_last], order[len(split) - n_last :]
    return (
        Split(split.images[head], split.labels[head]),
        Split(split.images[tail], split.labels[tail]),
    )
