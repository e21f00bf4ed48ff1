"""Downloading a file over HTTP(S) with progress, resume and a checksum check.

One function, `download`, built on urllib only::

    from toytorch.download import download
    path = download(url, Path("data/cifar-10-python.tar.gz"), md5="c58f30108f71...",
                    progress=lambda done, total: ...)

How it behaves:

- bytes go to ``DEST.part`` beside ``dest``; when that file already exists (an earlier
  download was interrupted) the request asks for the rest with ``Range: bytes=N-``. A
  server that answers 206 is appended to; one that ignores the range (200) starts over.
- ``progress(done, total)`` is called after each chunk with the bytes so far and the
  expected total (None when the server does not say).
- when the bytes are all there, the md5 and/or sha256 given are checked; a mismatch
  deletes the ``.part`` (so the next try starts clean) and raises.
- the finished file is renamed onto ``dest`` (atomic on one filesystem), so ``dest``
  either does not exist or is complete.
- a ``dest`` that already exists is returned as it is when it matches the checksums
  given (or when none are given), and downloaded again otherwise.

Every failure is a `ToytorchError` with a one-line message naming the URL; a download
cut short keeps its ``.part`` file and says that running again resumes it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from toytorch.errors import ToytorchError

CHUNK_BYTES = 1 << 16
USER_AGENT = "toytorch-downloader/1"

Progress = Callable[[int, "int | None"], None]


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest`` as a Path.

    Args:
        url: an http:// or https:// address.
        dest: where the file goes; its folder is created.
        md5 (None), sha256 (None): expected hex digests, checked when given.
        progress (None): ``progress(done_bytes, total_bytes_or_None)`` after each chunk.
        timeout (30.0): seconds to wait for the server on connect and on each read.
    """
    dest = Path(dest)
    if dest.is_file() and _matches(dest, md5, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch_into(url, part, progress, timeout)
    _check_digests(url, part, md5, sha256)
    os.replace(part, dest)
    return dest


def _fetch_into(
    url: str, part: Path, progress: Progress | None, timeout: float
) -> None:
    """Fill ``part`` with the whole body of ``url``, resuming from its current size."""
    have = part.stat().st_size if part.is_file() else 0
    response = _open(url, have, timeout)
    if response is None:  # 416: what we have is already the whole file
        return
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        total = _total_size(response, have)
        _copy_body(url, response, part, have, total, resumed, progress)


def _open(url: str, have: int, timeout: float):
    """Send the request (with a Range when resuming); None when nothing is missing."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have > 0:
        request.add_header("Range", f"bytes={have}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have > 0 and _range_total(e.headers) == have:
            return None
        raise ToytorchError(
            f"could not download {url}: HTTP {e.code} {e.reason}"
        ) from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ToytorchError(f"could not download {url}: {reason}") from e


def _total_size(response, have: int) -> int | None:
    """The full file's size from Content-Range (206) or Content-Length (200)."""
    total = _range_total(response.headers)
    if total is not None:
        return total
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _range_total(headers) -> int | None:
    match = re.fullmatch(
        r"bytes (?:\d+-\d+|\*)/(\d+)", headers.get("Content-Range", "")
    )
    return int(match.group(1)) if match else None


def _copy_body(url, response, part, have, total, resumed, progress) -> None:
    """Append (resume) or write the response body to ``part``, reporting progress."""
    done = have
    try:
        with part.open("ab" if resumed else "wb") as f:
            while chunk := response.read(CHUNK_BYTES):
                f.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (OSError, http.client.HTTPException) as e:  # e.g. IncompleteRead
        raise _interrupted(url, part, done, total) from e
    if total is not None and done < total:
        raise _interrupted(url, part, done, total)


def _interrupted(url: str, part: Path, done: int, total: int | None) -> ToytorchError:
    of = f" of {total}" if total is not None else ""
    return ToytorchError(
        f"download of {url} stopped after {done}{of} bytes; run again to resume "
        f"from '{part}'"
    )


def _check_digests(url: str, part: Path, md5: str | None, sha256: str | None) -> None:
    """Raise (after deleting ``part``) if a digest given does not match."""
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        got = file_digest(part, algo)
        if got != expected.lower():
            part.unlink(missing_ok=True)
            raise ToytorchError(
                f"download of {url} failed its {algo} check: expected "
                f"{expected.lower()}, got {got}"
            )


def _matches(path: Path, md5: str | None, sha256: str | None) -> bool:
    if md5 is not None and file_digest(path, "md5") != md5.lower():
        return False
    return sha256 is None or file_digest(path, "sha256") == sha256.lower()


def file_digest(path: Path, algo: str) -> str:
    """The hex digest of a file, read in chunks (``algo``: "md5" or "sha256")."""
    h = hashlib.new(algo)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
