"""Downloading a catalogue text into the user's corpora folder.

`fetch_corpus` downloads the raw Project Gutenberg file (resuming an interrupted
download), reads it with `read_corpus` (so newlines are normalised and non-text is
refused), keeps only the book between the ``*** START OF ...`` and ``*** END OF ...``
marker lines, and stores it as corpus NAME with its title, source and licence.

The Gutenberg licence text is not kept, so the stored corpus is the public-domain book
alone; the transcriber's credits line right after the start marker is kept (it is part
of the ebook's body).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from toytorch.corpora.catalogue import catalogue_entry
from toytorch.corpora.reading import read_corpus
from toytorch.corpora.registry import corpus_file, save_user_corpus, user_corpora_dir
from toytorch.download import download
from toytorch.errors import ToytorchError

# "*** START OF THE PROJECT GUTENBERG EBOOK TITLE ***"; older files say "THIS" and may
# wrap a long title onto the next line, hence [^*]* rather than ".*".
_START = re.compile(
    r"^\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG E(?:BOOK|TEXT)[^*]*\*\*\*.*$",
    re.IGNORECASE | re.MULTILINE,
)
_END = re.compile(
    r"^\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG E(?:BOOK|TEXT)",
    re.IGNORECASE | re.MULTILINE,
)
# The line many older files put just before the end marker.
_END_LINE = re.compile(r"\s*End of (?:the |this )?Project Gutenberg", re.IGNORECASE)


def strip_gutenberg(text: str, source: str = "the download") -> str:
    """The book between the Gutenberg start and end markers, blank lines trimmed.

    Raises a ToytorchError naming ``source`` when a marker is missing.
    """
    start = _START.search(text)
    if start is None:
        raise ToytorchError(
            f"{source} has no '*** START OF THE PROJECT GUTENBERG EBOOK ... ***' line"
        )
    end = _END.search(text, start.end())
    if end is None:
        raise ToytorchError(
            f"{source} has no '*** END OF THE PROJECT GUTENBERG EBOOK ... ***' line"
        )
    lines = text[start.end() : end.start()].split("\n")
    while lines and (not lines[-1].strip() or _END_LINE.match(lines[-1])):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ToytorchError(f"{source} holds nothing between its Gutenberg markers")
    return "\n".join(lines) + "\n"


def fetch_corpus(
    name: str,
    user_dir: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download catalogue entry ``name`` into the user's folder as corpus ``name``.

    Args:
        name: a catalogue entry's name (see `load_catalogue`).
        user_dir (None): the corpora folder, default `user_corpora_dir()`.
        url (None): download from here instead of the entry's address (tests, mirrors).
        sha256 (None): the expected digest of the raw download, checked when given.
        force (False): replace a corpus of that name that is already there.
        progress (None): ``progress(done_bytes, total_bytes)`` during the download.

    The raw file goes to ``<folder>/.downloads/NAME.gutenberg.txt`` (with a ``.part``
    while it downloads, which a later call resumes) and is deleted once stored.
    """
    entry = catalogue_entry(name)
    folder = user_corpora_dir(user_dir)
    target = corpus_file(folder, entry.name)
    if target.exists() and not force:
        raise ToytorchError(
            f"corpus '{entry.name}' already exists in '{folder}': pass --force to "
            "fetch it again"
        )
    address = url or entry.url
    raw = folder / ".downloads" / f"{entry.name}.gutenberg.txt"
    download(address, raw, sha256=sha256, progress=_with_default_total(progress, entry))
    body = strip_gutenberg(read_corpus(raw), source=address)
    meta = {
        "title": entry.title,
        "author": entry.author,
        "source": address,
        "licence": entry.licence,
    }
    path = save_user_corpus(entry.name, body, meta, user_dir=folder, force=True)
    raw.unlink(missing_ok=True)
    return path


def _with_default_total(progress, entry):
    """Report the catalogue's expected size as the total when the server gives none."""
    if progress is None:
        return None

    def report(done: int, total: int | None) -> None:
        progress(done, total if total is not None else max(done, entry.expected_bytes))

    return report
