"""toytorch.download against a local HTTP server: progress, resume, checksums."""

import hashlib
import random

import pytest
from corpora_http import FileServer

from toytorch.download import download
from toytorch.errors import ToytorchError

DATA = random.Random(0).randbytes(200_000)
MD5 = hashlib.md5(DATA).hexdigest()
SHA256 = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    with FileServer({"/data.bin": DATA}) as s:
        yield s


def test_download_whole_file_with_progress_and_checksums(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    calls = []

    path = download(
        server.url("/data.bin"),
        dest,
        md5=MD5,
        sha256=SHA256,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert path == dest and dest.read_bytes() == DATA
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert len(calls) > 1, "progress should be reported chunk by chunk"
    assert calls[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_resume_from_partial_part_file_sends_range(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(DATA[:70_000])
    calls = []

    download(
        server.url("/data.bin"),
        dest,
        sha256=SHA256,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert dest.read_bytes() == DATA
    assert server.requests[-1]["range"] == "bytes=70000-"
    assert calls[0][0] > 70_000 and calls[-1] == (len(DATA), len(DATA))


def test_interrupted_download_keeps_part_and_resumes(server, tmp_path):
    dest = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    server.cut_after = 50_000
    url = server.url("/data.bin")

    with pytest.raises(ToytorchError) as e:
        download(url, dest, md5=MD5)

    assert str(e.value) == (
        f"download of {url} stopped after 50000 of 200000 bytes; run again to resume "
        f"from '{part}'"
    )
    assert part.read_bytes() == DATA[:50_000] and not dest.exists()

    download(url, dest, md5=MD5)

    assert dest.read_bytes() == DATA and not part.exists()
    assert server.requests[-1]["range"] == "bytes=50000-"


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes that are not the file")

    download(server.url("/data.bin"), tmp_path / "data.bin", sha256=SHA256)

    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_complete_part_file_answered_416_is_finished(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(DATA)

    download(server.url("/data.bin"), tmp_path / "data.bin", md5=MD5)

    assert (tmp_path / "data.bin").read_bytes() == DATA


@pytest.mark.parametrize("algo", ["md5", "sha256"])
def test_checksum_mismatch_is_refused_and_part_removed(server, tmp_path, algo):
    dest = tmp_path / "data.bin"
    url = server.url("/data.bin")
    wrong = "0" * (32 if algo == "md5" else 64)
    got = MD5 if algo == "md5" else SHA256

    with pytest.raises(ToytorchError) as e:
        download(url, dest, **{algo: wrong})

    assert str(e.value) == (
        f"download of {url} failed its {algo} check: expected {wrong}, got {got}"
    )
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_existing_file_with_matching_checksum_is_not_downloaded(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(DATA)

    download(server.url("/data.bin"), dest, sha256=SHA256)

    assert server.requests == []


def test_existing_file_with_wrong_checksum_is_downloaded_again(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"something else")

    download(server.url("/data.bin"), dest, sha256=SHA256)

    assert dest.read_bytes() == DATA and len(server.requests) == 1


def test_http_error_names_url_and_status(server, tmp_path):
    url = server.url("/missing.bin")

    with pytest.raises(ToytorchError) as e:
        download(url, tmp_path / "x.bin")

    assert str(e.value) == f"could not download {url}: HTTP 404 Not Found"


def test_unreachable_server_is_a_one_line_error(tmp_path):
    with FileServer({}) as s:
        url = s.url("/x.bin")  # the port is closed once the server stops

    with pytest.raises(ToytorchError) as e:
        download(url, tmp_path / "x.bin", timeout=5)

    message = str(e.value)
    assert message.startswith(f"could not download {url}: ")
    assert "\n" not in message
