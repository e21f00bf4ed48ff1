"""CIFAR-10 in its "python version": reading it safely, and fetching it.

The archive ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with five training
batches ``data_batch_1`` .. ``data_batch_5`` (10,000 images each), ``test_batch``
(10,000) and ``batches.meta`` (the label names). Each batch is a pickled dict:
``b"data"`` a numpy uint8 array (N, 3072), each row the 1024 red, then green, then blue
values of a 32x32 image, row by row; ``b"labels"`` a list of N ints in 0..9.

Pickle can run any code while loading, so a tampered archive could take over the
machine. :class:`CifarUnpickler` admits only the three globals a CIFAR pickle refers to
(numpy's array reconstruction function, ``numpy.ndarray`` and ``numpy.dtype``) and
refuses everything else with a ToytorchError, before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from toytorch.errors import ToytorchError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
ENV_DIR = "TOYTORCH_DATA_DIR"


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for what CIFAR pickles reference, old and new names."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
    return allowed


class CifarUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only numpy's array pieces; any other global (a
    function such as ``os.system``, a class) raises a ToytorchError."""

    def __init__(self, file, source: str) -> None:
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes, as written
        self.source = source
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise ToytorchError(
                f"{self.source} refers to {module}.{name}, which a CIFAR-10 file never "
                "does: refusing to unpickle it (the archive may be tampered with)"
            )
        return found


def unpickle(data: bytes, source: str) -> Any:
    """Load CIFAR pickle bytes with :class:`CifarUnpickler`; ``source`` names them."""
    try:
        return CifarUnpickler(io.BytesIO(data), source).load()
    except ToytorchError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise ToytorchError(
            f"{source} is not a readable CIFAR-10 batch ({e})"
        ) from None


def parse_batch(obj: Any, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch dict -> images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    import numpy as np

    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise ToytorchError(f"{source} is not a CIFAR-10 batch: no b'data'/b'labels'")
    data, labels = obj[b"data"], obj[b"labels"]
    ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
    if not ok or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise ToytorchError(
            f"{source}: b'data' must be uint8 (N, 3072) with N labels, got "
            f"{getattr(data, 'dtype', type(data).__name__)} "
            f"{getattr(data, 'shape', '?')} and {len(labels)} labels"
        )
    images = torch.from_numpy(data.copy()).view(-1, 3, 32, 32)  # (N, C, H, W)
    targets = torch.tensor([int(y) for y in labels], dtype=torch.int64)
    if len(targets) and (targets.min() < 0 or targets.max() > 9):
        raise ToytorchError(f"{source}: labels must be in 0..9")
    return images, targets


def parse_meta(obj: Any, source: str) -> list[str]:
    names = obj.get(b"label_names") if isinstance(obj, dict) else None
    if not isinstance(names, list) or len(names) != 10:
        raise ToytorchError(f"{source} has no list of 10 b'label_names'")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


@dataclass
class Cifar10:
    """The whole set in memory: uint8 images (N, 3, 32, 32), int64 labels (N,)."""

    train_images: torch.Tensor  # (50000, 3, 32, 32)
    train_labels: torch.Tensor
    test_images: torch.Tensor  # (10000, 3, 32, 32)
    test_labels: torch.Tensor
    label_names: list[str]


def find_cifar10(path: str | os.PathLike) -> Path:
    """The archive or batches folder at ``path`` (itself, or inside it)."""
    path = Path(path).expanduser()
    for candidate in (path, path / FOLDER_NAME, path / ARCHIVE_NAME):
        if candidate.is_file() and candidate.name.endswith((".tar.gz", ".tgz")):
            return candidate
        if candidate.is_dir() and (candidate / META).is_file():
            return candidate
    raise ToytorchError(
        f"no CIFAR-10 at {path}: expected {ARCHIVE_NAME} or a {FOLDER_NAME} folder "
        "(run `toytorch data fetch cifar10` to download it)"
    )


def read_cifar10(path: str | os.PathLike, split: str = "all") -> Cifar10:
    """Read CIFAR-10 from an archive or its extracted folder (see find_cifar10).

    ``split="test"`` reads only the test batch (train tensors are then empty).
    """
    source = find_cifar10(path)
    wanted = (META, TEST_BATCH) + (TRAIN_BATCHES if split == "all" else ())
    files = _read_files(source, wanted)
    names = parse_meta(unpickle(files[META], f"{source}:{META}"), f"{source}:{META}")
    test = parse_batch(
        unpickle(files[TEST_BATCH], TEST_BATCH), f"{source}:{TEST_BATCH}"
    )
    train = [parse_batch(unpickle(files[b], b), f"{source}:{b}") for b in wanted[2:]]
    empty = (torch.empty(0, 3, 32, 32, dtype=torch.uint8), torch.empty(0).long())
    images, labels = zip(*train, strict=True) if train else ([empty[0]], [empty[1]])
    return Cifar10(torch.cat(images), torch.cat(labels), *test, names)


def _read_files(source: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of each named batch file, from the folder or straight from the tar
    (nothing is extracted to disk, so member paths cannot escape anywhere)."""
    if source.is_dir():
        missing = [n for n in names if not (source / n).is_file()]
        if missing:
            raise ToytorchError(f"{source} lacks {', '.join(missing)}")
        return {n: (source / n).read_bytes() for n in names}
    try:
        with tarfile.open(source, "r:gz") as tar:
            found = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in found]
            if missing:
                raise ToytorchError(f"{source} lacks {', '.join(missing)}")
            return {n: tar.extractfile(found[n]).read() for n in names}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ToytorchError(f"{source} is not a readable .tar.gz ({e})") from None


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``override``, else $TOYTORCH_DATA_DIR, else the platform's
    user data folder (e.g. ``~/.local/share/toytorch/data``)."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("toytorch")) / "data"


def fetch_cifar10(
    folder: str | os.PathLike | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download the official archive into ``folder`` (resuming a broken download),
    check its MD5, and return its path. A complete archive already there is kept."""
    from toytorch.download import download

    dest = data_dir(folder) / ARCHIVE_NAME
    path = download(CIFAR10_URL, dest, md5=CIFAR10_MD5, progress=progress)
    find_cifar10(path)  # a gzip tar with the right name
    return path
