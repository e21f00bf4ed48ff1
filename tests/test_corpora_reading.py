"""read_corpus, corpus_stats and check_corpus_size: good text in, every bad input out
with its exact one-line message."""

import codecs
import os
import tracemalloc

import pytest

import toytorch.corpora.reading as reading
from toytorch.corpora import (
    check_corpus_size,
    corpus_stats,
    min_corpus_tokens,
    read_corpus,
)
from toytorch.errors import ToytorchError


def refusal(path, **kwargs) -> str:
    with pytest.raises(ToytorchError) as e:
        read_corpus(path, **kwargs)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_utf8_with_and_without_bom(tmp_path):
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_bytes("caf\u00e9 song\n".encode())
    bom.write_bytes(codecs.BOM_UTF8 + "caf\u00e9 song\n".encode())

    assert read_corpus(plain) == "caf\u00e9 song\n"
    assert read_corpus(bom) == "caf\u00e9 song\n"
    assert read_corpus(bom, encoding="utf-8") == "caf\u00e9 song\n"


def test_crlf_and_cr_become_lf(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n\r\nfour")

    assert read_corpus(path) == "one\ntwo\nthree\n\nfour"


def test_chunk_boundaries_split_neither_crlf_nor_characters(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_BYTES", 7)
    text = "ab\u00e9\u20ac\U0001f3b5 x\n" * 50
    raw = text.replace("\n", "\r\n").encode()
    path = tmp_path / "chunks.txt"
    path.write_bytes(raw)

    # every possible alignment of CRLF and of multi-byte characters against chunks
    for shift in range(7):
        path.write_bytes(b"z" * shift + raw)
        assert read_corpus(path) == "z" * shift + text


def test_progress_follows_a_large_file_chunk_by_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_BYTES", 1000)
    path = tmp_path / "big.txt"
    path.write_text("la la la\n" * 2000, encoding="utf-8")
    size = path.stat().st_size
    calls = []

    text = read_corpus(path, progress=lambda done, total: calls.append((done, total)))

    assert text == "la la la\n" * 2000
    assert len(calls) == -(-size // 1000)
    assert calls == [(min(1000 * (i + 1), size), size) for i in range(len(calls))]


def test_a_large_file_is_not_held_twice(tmp_path):
    """Peak Python memory while reading an 8 MB file stays near one copy of the text
    (reading the bytes and decoding them would need two)."""
    path = tmp_path / "large.txt"
    path.write_bytes(b"the lamplighter climbs the ladder at dusk\n" * 200_000)

    tracemalloc.start()
    try:
        text = read_corpus(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(text) == path.stat().st_size
    assert peak < 1.3 * len(text)


def test_latin1_is_refused_by_default_and_decoded_on_request(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))

    assert refusal(path) == (
        f"corpus '{path}' is not UTF-8 text: convert it to UTF-8 or pass --encoding "
        "with its encoding (e.g. --encoding latin-1)"
    )
    assert read_corpus(path, encoding="latin-1") == "caf\u00e9 cr\u00e8me\n"


@pytest.mark.parametrize("codec, name", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_are_refused_by_default(tmp_path, codec, name):
    path = tmp_path / f"{codec}.txt"
    path.write_bytes("hello\r\nworld\n".encode(codec))  # Python writes a BOM

    assert refusal(path) == (
        f"corpus '{path}' is {name} text, not UTF-8: convert it to UTF-8 or pass "
        f"--encoding {name.lower()}"
    )
    assert read_corpus(path, encoding=codec) == "hello\nworld\n"


def test_a_wrong_requested_encoding_is_reported(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9\n".encode("latin-1"))

    assert (
        refusal(path, encoding="ascii") == f"corpus '{path}' cannot be decoded as ascii"
    )


def test_unknown_encoding(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hi\n")

    assert refusal(path, encoding="klingon") == (
        f"unknown encoding 'klingon' for corpus '{path}'"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"lyrics\x00with a NUL byte\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",  # a PNG's first bytes
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01",  # a JPEG's first bytes
    ],
    ids=["nul", "png", "jpeg"],
)
def test_binary_files_are_refused(tmp_path, raw):
    path = tmp_path / "image.png"
    path.write_bytes(raw)

    assert refusal(path) == (
        f"corpus '{path}' looks like a binary file (it holds NUL bytes), not text"
    )


def test_nul_after_decoding_with_a_requested_encoding_is_refused(tmp_path):
    path = tmp_path / "nul.txt"
    path.write_bytes(b"abc\x00def")

    assert refusal(path, encoding="latin-1") == (
        f"corpus '{path}' looks like a binary file (it holds NUL bytes), not text"
    )


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")

    assert refusal(path) == f"corpus '{path}' is empty"


def test_bom_only_file_is_empty(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(codecs.BOM_UTF8)

    assert refusal(path) == f"corpus '{path}' is empty"


def test_whitespace_only_file(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_bytes(b" \r\n\t\n   \n")

    assert refusal(path) == f"corpus '{path}' holds only whitespace"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.txt"

    assert refusal(path) == f"corpus file '{path}' not found"


def test_folder_is_not_a_file(tmp_path):
    assert refusal(tmp_path) == f"corpus '{tmp_path}' is a directory, not a text file"


def test_fifo_is_not_a_regular_file(tmp_path):
    # a named pipe exists but is no file: reading it would block, not say "not found"
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)

    assert refusal(fifo) == f"corpus '{fifo}' is not a regular file"


def test_dev_null_is_not_a_regular_file():
    assert refusal("/dev/null") == "corpus '/dev/null' is not a regular file"


def test_corpus_stats_counts_by_hand():
    text = "Don't stop, don't stop\nthe music\n\nThe end"

    stats = corpus_stats(text)

    # lines: 3 terminated + 1 final; words: Don't stop don't stop the music The end
    assert (stats.lines, stats.words, stats.distinct_words, stats.characters) == (
        4,
        8,
        7,
        41,
    )
    assert corpus_stats("a\n").lines == 1 and corpus_stats("").lines == 0


def test_min_corpus_tokens():
    assert min_corpus_tokens(64, 12) == 76  # 12 windows of 64 + 1 with distinct starts
    # 10% held out: the train part needs 76 (76 / 0.9 -> 85) but validation needs one
    # window of 65 tokens, so 650 in all
    assert min_corpus_tokens(64, 12, val_fraction=0.1) == 650
    assert min_corpus_tokens(8, 100, val_fraction=0.5) == 216


def test_check_corpus_size_passes_at_the_minimum_and_says_how_large_otherwise():
    check_corpus_size(76, context=64, batch_size=12)

    with pytest.raises(ToytorchError) as e:
        check_corpus_size(75, context=64, batch_size=12, name="tiny.txt")
    assert str(e.value) == (
        "corpus 'tiny.txt' has 75 tokens, too few for context 64 and batch size 12: "
        "it needs at least 76 tokens"
    )

    with pytest.raises(ToytorchError) as e:
        check_corpus_size(100, context=64, batch_size=12, val_fraction=0.1, name="s")
    assert str(e.value) == (
        "corpus 's' has 100 tokens, too few for context 64 and batch size 12 with 0.1 "
        "held out for validation: it needs at least 650 tokens"
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"context": 0, "batch_size": 1}, "context must be at least 1, got 0"),
        ({"context": 4, "batch_size": 0}, "batch_size must be at least 1, got 0"),
        (
            {"context": 4, "batch_size": 1, "val_fraction": 1.0},
            "val_fraction must be in [0, 1), got 1.0",
        ),
    ],
)
def test_min_corpus_tokens_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as e:
        min_corpus_tokens(**kwargs)
    assert str(e.value) == message
