"""Where the commands look for checkpoints: a folder path, or a name under
``checkpoints/``."""

from __future__ import annotations

from pathlib import Path

from toytorch.errors import ToytorchError

CHECKPOINT_ROOT = Path("checkpoints")


def find_checkpoint(path: Path) -> Path:
    """``path`` itself, or ``checkpoints/<path>`` when only that exists; neither is a
    one-line error naming both."""
    from toytorch.training.checkpoint import checkpoint_found

    tried = [path]
    if not path.is_absolute():
        tried.append(CHECKPOINT_ROOT / path)
    for candidate in tried:
        if checkpoint_found(candidate):
            return candidate
    if len(tried) == 1:
        raise ToytorchError(f"checkpoint folder {path} does not exist")
    raise ToytorchError(
        f"checkpoint folder {path} does not exist (nor {CHECKPOINT_ROOT / path})"
    )
