"""CIFAR-10: reading the real format safely, splitting it, fetching it over HTTP."""

import hashlib
import os
import pickle

import numpy as np
import pytest
import torch
from corpora_http import FileServer
from typer.testing import CliRunner
from vision_helpers import (
    LABEL_NAMES,
    make_cifar,
    py2_pickle,
    write_cifar_archive,
    write_cifar_folder,
)

from toytorch.cli.main import app
from toytorch.errors import ToytorchError
from toytorch.vision import cifar, data

runner = CliRunner()


def _expected(files: dict[str, bytes], name: str):
    """Images and labels of one file, decoded with plain numpy (not the reader)."""
    raw = pickle.loads(files[name], encoding="bytes")
    images = raw[b"data"].reshape(-1, 3, 32, 32)  # R plane, G plane, B plane
    return torch.from_numpy(images.copy()), torch.tensor(raw[b"labels"])


@pytest.mark.parametrize("form", ["archive", "folder", "parent folder"])
def test_reads_every_batch_with_labels_and_names(tmp_path, form):
    files = make_cifar(per_batch=4)
    if form == "archive":
        path = write_cifar_archive(tmp_path / cifar.ARCHIVE_NAME, files)
    else:
        write_cifar_folder(tmp_path / cifar.FOLDER_NAME, files)
        path = tmp_path / cifar.FOLDER_NAME if form == "folder" else tmp_path

    c = cifar.read_cifar10(path)

    assert c.label_names == LABEL_NAMES
    assert (
        c.train_images.shape == (20, 3, 32, 32) and c.train_images.dtype == torch.uint8
    )
    first_images, first_labels = _expected(files, "data_batch_1")
    assert torch.equal(c.train_images[:4], first_images)
    assert torch.equal(c.train_labels[:4], first_labels)
    test_images, test_labels = _expected(files, "test_batch")
    assert torch.equal(c.test_images, test_images)
    assert torch.equal(c.test_labels, test_labels)


def test_pixel_layout_is_red_green_blue_planes(tmp_path):
    """Row 0 of b'data': 1024 red values, row by row, then green, then blue."""
    files = make_cifar(per_batch=1)
    row = np.zeros(3072, dtype=np.uint8)
    row[5] = 200  # red, y 0, x 5
    row[1024 + 32 * 2 + 1] = 100  # green, y 2, x 1
    raw = {b"data": row[None], b"labels": [3], b"batch_label": b"t"}
    files["test_batch"] = py2_pickle(raw)
    c = cifar.read_cifar10(write_cifar_folder(tmp_path / "c", files))
    assert c.test_images[0, 0, 0, 5] == 200 and c.test_images[0, 1, 2, 1] == 100
    assert c.test_images.sum() == 300


class _Exploit:
    def __init__(self, canary):
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def test_a_malicious_pickle_is_refused_before_it_runs(tmp_path):
    canary = tmp_path / "pwned"
    payload = py2_pickle({b"data": _Exploit(canary), b"labels": []})
    assert b"system" in payload  # the payload really calls os.system
    with pytest.raises(ToytorchError, match=r"system.*refusing to unpickle"):
        cifar.unpickle(payload, "data_batch_1")
    assert not canary.exists()


def test_a_tampered_archive_is_refused(tmp_path):
    canary = tmp_path / "pwned"
    files = make_cifar()
    files["data_batch_3"] = pickle.dumps({b"x": _Exploit(canary)})
    archive = write_cifar_archive(tmp_path / cifar.ARCHIVE_NAME, files)
    with pytest.raises(ToytorchError, match="data_batch_3.*refusing"):
        cifar.read_cifar10(archive)
    assert not canary.exists()


def test_other_globals_are_refused_too():
    for obj in (set, torch.Tensor, np.random.default_rng):
        with pytest.raises(ToytorchError, match="refusing"):
            cifar.unpickle(pickle.dumps({b"data": obj}), "f")


def test_numpy_2_pickles_are_read_as_well():
    """The new module name numpy._core.multiarray (a re-pickled set) is admitted."""
    images = np.arange(3072, dtype=np.uint8)[None]
    raw = pickle.dumps({b"data": images, b"labels": [1]}, protocol=4)
    assert b"numpy._core" in raw or b"numpy.core" in raw
    x, y = cifar.parse_batch(cifar.unpickle(raw, "f"), "f")
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [1]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"not a pickle", "not a readable CIFAR-10 batch"),
        (pickle.dumps([1, 2]), "no b'data'"),
        (
            pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
            "3072",
        ),
        (
            pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}),
            "0..9",
        ),
    ],
)
def test_malformed_batches_are_one_line_errors(raw, message):
    with pytest.raises(ToytorchError, match=message):
        cifar.parse_batch(cifar.unpickle(raw, "f"), "f")


def test_missing_data_says_how_to_fetch(tmp_path):
    with pytest.raises(ToytorchError, match="toytorch data fetch cifar10"):
        cifar.read_cifar10(tmp_path)
    files = make_cifar()
    del files["data_batch_4"]
    with pytest.raises(ToytorchError, match="lacks data_batch_4"):
        cifar.read_cifar10(write_cifar_archive(tmp_path / cifar.ARCHIVE_NAME, files))


def test_train_val_test_split(tmp_path):
    """Training images go to train or val (a tenth, at most 5,000), none to both."""
    write_cifar_archive(tmp_path / cifar.ARCHIVE_NAME, make_cifar(per_batch=4))
    d = data.load_image_data("cifar10", data_dir=tmp_path, seed=3)
    assert (len(d.train), len(d.val), len(d.test)) == (18, 2, 4)
    c = cifar.read_cifar10(tmp_path)
    together = torch.cat([d.train.images, d.val.images]).view(20, -1)
    assert sorted(map(bytes, together.numpy())) == sorted(
        map(bytes, c.train_images.view(20, -1).numpy())
    )
    again = data.load_image_data("cifar10", data_dir=tmp_path, seed=3)
    assert torch.equal(again.val.images, d.val.images)  # the seed fixes the split


# -------------------------------------------------------------------- fetching


@pytest.fixture
def served_archive(tmp_path, monkeypatch):
    archive = write_cifar_archive(tmp_path / "served.tar.gz", make_cifar())
    body = archive.read_bytes()
    with FileServer({"/cifar.tar.gz": body}) as server:
        monkeypatch.setattr(cifar, "CIFAR10_URL", server.url("/cifar.tar.gz"))
        monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(body).hexdigest())
        yield server, body


def test_fetch_downloads_checks_and_is_usable(tmp_path, served_archive):
    server, body = served_archive
    result = runner.invoke(
        app, ["data", "fetch", "cifar10", "--dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    archive = tmp_path / "d" / cifar.ARCHIVE_NAME
    assert archive.read_bytes() == body and "MD5 checked" in result.output
    assert cifar.read_cifar10(tmp_path / "d").label_names == LABEL_NAMES


def test_fetch_resumes_a_broken_download(tmp_path, served_archive):
    server, body = served_archive
    folder = tmp_path / "d"
    folder.mkdir()
    part = folder / (cifar.ARCHIVE_NAME + ".part")
    part.write_bytes(body[:1000])  # what an interrupted run left
    path = cifar.fetch_cifar10(folder)
    assert path.read_bytes() == body and not part.exists()
    assert server.requests[-1]["range"] == "bytes=1000-"


def test_fetch_refuses_a_corrupt_download(tmp_path, served_archive, monkeypatch):
    monkeypatch.setattr(cifar, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(ToytorchError, match="(?i)md5"):
        cifar.fetch_cifar10(tmp_path / "d")
    assert not (tmp_path / "d" / cifar.ARCHIVE_NAME).exists()


def test_fetch_unknown_dataset_is_an_error():
    result = runner.invoke(app, ["data", "fetch", "mnist"])
    assert result.exit_code != 0
    assert "unknown dataset 'mnist'" in str(result.exception)
