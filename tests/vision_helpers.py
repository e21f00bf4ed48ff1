"""Tiny datasets written by the tests: CIFAR-10 archives in the real format, and image
folders."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
LABEL_NAMES += ["dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2's cPickle wrote CIFAR-10 (protocol 2): bytes as
    BINSTRING (not Python 3's ``_codecs.encode`` call) and numpy's array rebuilder
    under its old name ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def batch_dict(images: np.ndarray, labels: list[int], name: str) -> dict:
    """A CIFAR batch: images uint8 (N, 3, 32, 32) as rows of R, G, B planes."""
    return {
        b"batch_label": name.encode(),
        b"labels": list(labels),
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }


def make_cifar(per_batch: int = 4, seed: int = 0) -> dict[str, bytes]:
    """name -> pickled bytes of the 7 files; images are random, labels cycle 0..9."""
    rng = np.random.default_rng(seed)
    files = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [(k * per_batch + i) % 10 for i in range(per_batch)]
        files[name] = py2_pickle(batch_dict(images, labels, name))
    meta = {b"label_names": [n.encode() for n in LABEL_NAMES], b"num_vis": 3072}
    files["batches.meta"] = py2_pickle(meta)
    return files


def write_cifar_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A cifar-10-python.tar.gz holding cifar-10-batches-py/<name> for each file."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def write_colour_folder(root: Path, per_class: int = 12, size: int = 10) -> Path:
    """Two easy classes, 'blue' and 'red': noisy squares of that colour, PNG and JPEG,
    of varying sizes (the reader resizes them)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for label, channel in (("blue", 2), ("red", 0)):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            side = size + i % 3
            img = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
            img[..., channel] = rng.integers(180, 256, (side, side), dtype=np.uint8)
            suffix = ".jpg" if i % 4 == 0 else ".png"
            Image.fromarray(img).save(folder / f"{i}{suffix}")
    return root
