"""Device choice and placement, in one place for every task and front end."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from toytorch.errors import ToytorchError


def resolve_device(name: str) -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a ``torch.device`` that exists.

    "auto" picks CUDA when torch sees a GPU, else the CPU. Asking for a GPU that is not
    there raises a ToytorchError with one line saying so.
    """
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        return _cuda_device(name)
    raise ToytorchError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def _cuda_device(name: str) -> torch.device:
    if not torch.cuda.is_available():
        raise ToytorchError(
            f"device {name!r} asked for, but torch sees no CUDA GPU here: use --device "
            "cpu or auto"
        )
    index_text = name.partition(":")[2]
    if index_text == "":
        return torch.device("cuda")
    if not index_text.isdigit():
        raise ToytorchError(f"bad CUDA device {name!r}: use cuda or cuda:N")
    count = torch.cuda.device_count()
    if int(index_text) >= count:
        raise ToytorchError(
            f"device {name!r} does not exist: torch sees {count} GPU(s), cuda:0 to "
            f"cuda:{count - 1}"
        )
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside ``batch`` (tensor, tuple, list, dict, dataclass)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            f.name: to_device(getattr(batch, f.name), device)
            for f in dataclasses.fields(batch)
        }
        return dataclasses.replace(batch, **changes)
    return batch
