"""Checkpoints, generation and classification, for the Generate and Classify tabs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_ROOT = Path("checkpoints")


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointEntry:
    """A checkpoint on offer in the pickers, described without loading its weights."""

    path: Path
    arch: str
    corpus: str
    params: int
    step: int
    val_loss: float | None

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.arch}, {_count(self.params)})"

    @property
    def details(self) -> str:
        val = "-" if self.val_loss is None else f"{self.val_loss:.3f}"
        return (
            f"corpus {self.corpus}\n{self.arch}, {_count(self.params)} parameters\n"
            f"step {self.step}, val loss {val}"
        )


def list_checkpoints(root: Path) -> list[CheckpointEntry]:
    """The readable checkpoints directly under ``root``, newest first."""
    from toytorch.errors import ToytorchError
    from toytorch.training import checkpoint

    entries = []
    for path in checkpoint.list_checkpoints(root):
        try:
            entries.append(_describe(path))
        except (ToytorchError, OSError, KeyError, TypeError, ValueError):
            continue  # a broken folder is left out of the picker, not fatal
    return entries


def _describe(path: Path) -> CheckpointEntry:
    from safetensors import safe_open

    from toytorch.training import checkpoint

    config = checkpoint.read_config(path)
    metrics = checkpoint.read_metrics(path)
    with safe_open(str(path / checkpoint.MODEL_FILE), "pt") as f:
        params = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
    corpus = (config.get("task") or {}).get("corpus") or {}
    evals = [e for e in metrics.get("evals", []) if e.get("val_loss") is not None]
    return CheckpointEntry(
        path=path,
        arch=str(config["model"].get("arch", "?")),
        corpus=str(corpus.get("name", "?")) if isinstance(corpus, dict) else "?",
        params=params,
        step=int(config.get("step", 0)),
        val_loss=float(evals[-1]["val_loss"]) if evals else None,
    )


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1000 else str(n)


_loaded: dict[tuple[str, float], object] = {}


def load_for_generation(path: Path):
    """The checkpoint's model and tokenizer, loaded once per folder version."""
    from toytorch.errors import ToytorchError
    from toytorch.training import checkpoint

    key = (str(path), (path / checkpoint.MODEL_FILE).stat().st_mtime)
    if key not in _loaded:
        _loaded.clear()  # one model in memory at a time
        ck = checkpoint.load_checkpoint(path, device="cpu")
        if ck.tokenizer is None:
            raise ToytorchError(f"checkpoint {path} has no tokenizer.json")
        _loaded[key] = ck
    return _loaded[key]


def stream_text(
    path: Path, prompt: str, settings: dict, should_stop: Callable[[], bool]
) -> Iterator[str]:
    """The prompt, then text pieces as the model makes them (runs in a worker thread).

    ``settings``: temperature, top_k, top_p, max_tokens, seed. ``should_stop`` is
    checked before every token.
    """
    from toytorch.errors import ToytorchError

    ck = load_for_generation(path)
    model, tok = ck.model, ck.tokenizer
    unknown = tok.unknown(prompt)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise ToytorchError(f"the prompt has tokens the vocabulary lacks: {shown}")
    ids = model.generate(
        tok.encode(prompt),
        settings["max_tokens"],
        temperature=settings["temperature"],
        top_k=settings["top_k"],
        top_p=settings["top_p"],
        seed=settings["seed"],
        start_id=tok.start_id,
    )

    def until_stopped() -> Iterator[int]:
        for token in ids:
            if should_stop():
                return
            yield token

    yield prompt
    yield from tok.stream(until_stopped())


# ---------------------------------------------------------------- classify


@dataclass
class Classified:
    """One image and the classifier's top classes (made in a worker thread)."""

    pixels: list[list[tuple[int, int, int]]]  # rows of (r, g, b), uint8 values
    top: list[tuple[str, float]]  # (label, probability), likeliest first
    truth: str | None = None  # the CIFAR-10 label, when the image came from there


def list_classifiers(root: Path) -> list[Path]:
    """Checkpoint folders under ``root`` whose task is image classification."""
    from toytorch.errors import ToytorchError
    from toytorch.training import checkpoint
    from toytorch.vision.classify import classifier_info

    found = []
    for path in checkpoint.list_checkpoints(root):
        try:
            classifier_info(checkpoint.read_config(path), path)
        except (ToytorchError, OSError):
            continue  # unreadable, or another task: not on offer here
        found.append(path)
    return found


def classify(path: Path, image: str, k: int = 5) -> Classified:
    """Classify an image file, or test image N of CIFAR-10 when ``image`` is a number.

    Through the same library function as ``toytorch classify``.
    """
    from toytorch.vision.classify import classify as top_classes
    from toytorch.vision.classify import load_classifier

    classifier = load_classifier(path, device="cpu")
    pixels, truth = _image(image, classifier.image_size, classifier.label_names)
    top = top_classes(classifier, pixels[None], k)[0]
    rows = pixels.permute(1, 2, 0).tolist()  # (S, S, 3)
    return Classified([[tuple(p) for p in row] for row in rows], top, truth)


def _image(image: str, size: int, names: list[str]):
    """(uint8 (3, S, S), true label or None) from a file path or a CIFAR test index."""
    from toytorch.errors import ToytorchError
    from toytorch.vision.cifar import data_dir, read_cifar10
    from toytorch.vision.imagefolder import load_image

    if not image.strip().isdigit():
        return load_image(image.strip(), size), None
    cifar = read_cifar10(data_dir(), split="test")
    index = int(image)
    if index >= len(cifar.test_images):
        n = len(cifar.test_images)
        raise ToytorchError(f"CIFAR-10 test image {index} does not exist (0..{n - 1})")
    return cifar.test_images[index], names[int(cifar.test_labels[index])]
