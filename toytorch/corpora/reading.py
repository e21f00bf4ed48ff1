"""Reading a corpus file as text, safely, and measuring it.

`read_corpus` reads a file in two passes. The first streams it in 1 MiB chunks through
an incremental decoder: it refuses binary data and text in a foreign encoding, notes
whether any CR is present, and reports progress. The second decodes the file, mapped
into memory, straight into one string. So the raw bytes are never copied into the
process next to the text (the mapped pages are the operating system's file cache), and
the text exists once; a file with CR newlines is copied once more while they become
LF (and CPython's decoder may copy its buffer while widening it for non-Latin-1
characters). Every refusal is a `ToytorchError` with a one-line message naming the file.
"""

from __future__ import annotations

import codecs
import math
import mmap
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toytorch.errors import ToytorchError

CHUNK_BYTES = 1 << 20  # the first pass reads 1 MiB at a time

# Byte-order marks that mean "this is text, but not UTF-8".
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")


def read_corpus(
    path: str | os.PathLike,
    encoding: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Read a corpus file and return its text with every newline as ``\\n``.

    Args:
        path: the file to read.
        encoding (None): None reads UTF-8, with or without a byte-order mark, and
            refuses anything else; a codec name (e.g. ``"latin-1"``) decodes with it.
        progress (None): called as ``progress(bytes_read, total_bytes)`` per chunk of
            the checking pass (the decoding pass after it is a single, fast step).

    CRLF and lone CR become LF. Refused, with a ToytorchError naming the file: a
    missing file or a folder, a binary file (NUL bytes), text in another encoding
    (unless ``encoding`` is given), an unknown codec, and an empty or whitespace-only
    file.
    """
    path = Path(path)
    total = _check_file(path)
    codec = _codec(path, encoding)
    has_cr = _scan(path, codec, encoding, total, progress)
    text = _decode_mapped(path, codec, encoding)
    if has_cr:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    _check_text(path, text)
    return text


def _check_file(path: Path) -> int:
    """The size of a non-empty file, after refusing a missing path or a non-file."""
    if path.is_dir():
        raise ToytorchError(f"corpus '{path}' is a directory, not a text file")
    if path.exists() and not path.is_file():  # a device, pipe or socket
        raise ToytorchError(f"corpus '{path}' is not a regular file")
    if not path.is_file():
        raise ToytorchError(f"corpus file '{path}' not found")
    size = path.stat().st_size
    if size == 0:
        raise ToytorchError(f"corpus '{path}' is empty")
    return size


def _codec(path: Path, encoding: str | None) -> str:
    """The codec's canonical name; UTF-8 (read BOM-aware) when none is given."""
    try:
        return codecs.lookup("utf-8" if encoding is None else encoding).name
    except LookupError:
        raise ToytorchError(
            f"unknown encoding '{encoding}' for corpus '{path}'"
        ) from None


def _scan(
    path: Path,
    codec: str,
    encoding: str | None,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> bool:
    """The checking pass: decode chunk by chunk, refuse bad input, report progress.

    Returns whether the text holds a CR (so newlines need normalising).
    """
    # utf-8-sig drops a BOM; a BOM split across chunks is handled by the decoder.
    name = "utf-8-sig" if codec == "utf-8" else codec
    decoder = codecs.getincrementaldecoder(name)(errors="strict")
    has_cr = False
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            if done == 0:
                _check_start(path, chunk, encoding)
            done += len(chunk)
            has_cr = "\r" in _decode(path, decoder, chunk, encoding) or has_cr
            if progress is not None:
                progress(done, total)
    _decode(path, decoder, b"", encoding, final=True)
    return has_cr


def _decode_mapped(path: Path, codec: str, encoding: str | None) -> str:
    """The decoding pass: the whole file, mapped read-only, decoded into one string."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        skip = (
            len(codecs.BOM_UTF8)
            if codec == "utf-8" and mm[:3] == codecs.BOM_UTF8
            else 0
        )
        with memoryview(mm) as view, view[skip:] as body:
            try:
                return str(body, codec)
            except UnicodeDecodeError as e:  # the file changed since the first pass
                raise ToytorchError(_decode_error_message(path, encoding)) from e


def _check_start(path: Path, chunk: bytes, encoding: str | None) -> None:
    """Refuse UTF-16/32 text and binary files from the first chunk (default codec)."""
    if encoding is not None:
        return
    for bom, name in _FOREIGN_BOMS:
        if chunk.startswith(bom):
            raise ToytorchError(
                f"corpus '{path}' is {name} text, not UTF-8: convert it to UTF-8 or "
                f"pass --encoding {name.lower()}"
            )
    if b"\x00" in chunk:
        raise ToytorchError(_binary_message(path))


def _decode(
    path: Path,
    decoder: codecs.IncrementalDecoder,
    chunk: bytes,
    encoding: str | None,
    final: bool = False,
) -> str:
    """Decode one chunk; a decoding error or a NUL character becomes a ToytorchError."""
    try:
        piece = decoder.decode(chunk, final=final)
    except UnicodeDecodeError as e:
        raise ToytorchError(_decode_error_message(path, encoding)) from e
    if "\x00" in piece:
        raise ToytorchError(_binary_message(path))
    return piece


def _binary_message(path: Path) -> str:
    return f"corpus '{path}' looks like a binary file (it holds NUL bytes), not text"


def _decode_error_message(path: Path, encoding: str | None) -> str:
    if encoding is None:
        return (
            f"corpus '{path}' is not UTF-8 text: convert it to UTF-8 or pass "
            "--encoding with its encoding (e.g. --encoding latin-1)"
        )
    return f"corpus '{path}' cannot be decoded as {encoding}"


def _check_text(path: Path, text: str) -> None:
    if not text:
        raise ToytorchError(f"corpus '{path}' is empty")
    if text.isspace():
        raise ToytorchError(f"corpus '{path}' holds only whitespace")


@dataclass(frozen=True)
class CorpusStats:
    """Counts that describe a text.

    Attributes:
        lines: newline-terminated lines, plus a final unterminated one.
        words: runs of letters/digits, apostrophes inside a word kept (``don't``).
        distinct_words: distinct word forms, case-sensitive (as a word tokenizer sees).
        characters: Unicode characters, newlines included.
    """

    lines: int
    words: int
    distinct_words: int
    characters: int


def corpus_stats(text: str) -> CorpusStats:
    """Count the lines, words, distinct words and characters of ``text``."""
    words = _WORD.findall(text)
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    return CorpusStats(
        lines=lines,
        words=len(words),
        distinct_words=len(set(words)),
        characters=len(text),
    )


def min_corpus_tokens(context: int, batch_size: int, val_fraction: float = 0.0) -> int:
    """The fewest tokens a corpus needs for ``context`` and ``batch_size``.

    The training part must hold a batch of windows with distinct starts, each of
    ``context`` inputs plus one target (``context + batch_size`` tokens); when a
    fraction ``val_fraction`` is held out by position, that part needs one window
    (``context + 1`` tokens).
    """
    if context < 1:
        raise ValueError(f"context must be at least 1, got {context}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    need = context + batch_size
    if val_fraction > 0.0:
        need = math.ceil(need / (1.0 - val_fraction))
        need = max(need, math.ceil((context + 1) / val_fraction))
    return need


def check_corpus_size(
    n_tokens: int,
    context: int,
    batch_size: int,
    val_fraction: float = 0.0,
    name: str = "corpus",
) -> None:
    """Raise a ToytorchError saying how large the corpus must be, if it is too small."""
    need = min_corpus_tokens(context, batch_size, val_fraction)
    if n_tokens >= need:
        return
    held_out = f" with {val_fraction:g} held out for validation" if val_fraction else ""
    raise ToytorchError(
        f"corpus '{name}' has {n_tokens} tokens, too few for context {context} and "
        f"batch size {batch_size}{held_out}: it needs at least {need} tokens"
    )
