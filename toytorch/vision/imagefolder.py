"""Pictures on disk as a dataset: one subfolder per class, PNG or JPEG, any size.

``root/cat/1.png, root/dog/x.jpg, ...`` gives the labels ``["cat", "dog"]`` (subfolder
names, sorted) and every image converted to RGB and resized to ``image_size`` squared
(bilinear, aspect ratio not kept), as uint8 (N, 3, S, S).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from toytorch.errors import ToytorchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_image(path: str | os.PathLike, image_size: int) -> torch.Tensor:
    """One image file -> uint8 (3, S, S); a missing or unreadable file is a
    ToytorchError naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ToytorchError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ToytorchError(f"{path} is not a readable image ({e})") from None
    return data.view(image_size, image_size, 3).permute(2, 0, 1).contiguous()


def class_folders(root: str | os.PathLike) -> list[Path]:
    """The class subfolders of ``root``, sorted by name; errors when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise ToytorchError(f"image folder {root} does not exist")
    folders = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if len(folders) < 2:
        raise ToytorchError(
            f"image folder {root} needs one subfolder per class (at least 2), "
            f"found {len(folders)}"
        )
    return folders


def read_image_folder(
    root: str | os.PathLike, image_size: int, label_names: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All images under ``root``: uint8 (N, 3, S, S), int64 labels (N,), label names.

    ``label_names`` fixes the label order (a test folder must use the training
    folder's); a subfolder not among them is an error.
    """
    folders = class_folders(root)
    names = label_names or [f.name for f in folders]
    index = {name: i for i, name in enumerate(names)}
    images, labels = [], []
    for folder in folders:
        if folder.name not in index:
            raise ToytorchError(f"{folder} is not one of the classes {names}")
        files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        images += [load_image(p, image_size) for p in files]
        labels += [index[folder.name]] * len(files)
    if not images:
        raise ToytorchError(f"image folder {root} holds no PNG or JPEG files")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64), names
