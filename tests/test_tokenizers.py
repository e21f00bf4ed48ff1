"""Char and word tokenizers, the shared interface, the id cache and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from toytorch.cli.main import app, main
from toytorch.errors import ToytorchError
from toytorch.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    encode_cached,
    load_tokenizer,
    tokenizer_from_json_str,
    train_tokenizer,
)

SAMPLE = "Hello, wörld!\nIt's a 🙂 day.\n\n  Tabs\tand  spaces.\n"


@pytest.fixture(params=["char", "word", "bpe"])
def any_tok(request) -> Tokenizer:
    return train_tokenizer(request.param, [SAMPLE * 3], vocab_size=None)


# ---------------------------------------------------------------- interface


def test_every_kind_round_trips_and_saves(any_tok, tmp_path):
    ids = any_tok.encode(SAMPLE)
    assert all(isinstance(i, int) and 0 <= i < any_tok.vocab_size for i in ids)
    assert any_tok.decode(ids) == SAMPLE
    assert "".join(any_tok.stream(ids)) == SAMPLE
    assert any_tok.unknown(SAMPLE) == []

    path = tmp_path / "tokenizer.json"
    any_tok.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(any_tok) and loaded.kind == any_tok.kind
    assert loaded.encode(SAMPLE) == ids
    assert loaded.to_json_str() == any_tok.to_json_str()


def test_decode_accepts_a_tensor_of_ids(any_tok):
    ids = any_tok.encode(SAMPLE)
    assert any_tok.decode(torch.tensor(ids)) == SAMPLE
    assert "".join(any_tok.stream(torch.tensor(ids))) == SAMPLE


def test_start_id_is_the_newline_token(any_tok):
    assert any_tok.decode([any_tok.start_id]) == "\n"


def test_start_id_is_zero_without_a_newline_token():
    tok = CharTokenizer.train("abc")
    assert tok.start_id == 0


def test_stream_holds_back_incomplete_characters():
    tok = BPETokenizer.train(["plain ascii words"] * 2, 270)
    text = "a🙂b é"
    ids = tok.encode(text)
    # 🙂 is 4 byte tokens and é 2 (no merges learned for them): a piece only when whole
    assert len(ids) == 9
    assert list(tok.stream(ids)) == ["a", "🙂", "b", " ", "é"]


def test_stream_of_byte_tokens_never_yields_a_replacement_character():
    # A tokenizer with no merges for these characters: every byte is its own token,
    # so each multi-byte character arrives split over 2-4 ids.
    tok = BPETokenizer.train(["plain ascii words"] * 2, 260)
    text = "naïve 😀 ✓ – Grüße 🇫🇷"
    ids = tok.encode(text)
    assert len(ids) == len(text.encode("utf-8"))  # one id per byte

    pieces = list(tok.stream(ids))

    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_invalid_bytes_decode_and_stream_to_replacement_character():
    # What a barely trained model can emit: a lone continuation byte, then half of é.
    tok = BPETokenizer.train(["plain ascii words"] * 2, 260)
    lead, cont = tok.encode("é")  # b"\xc3", b"\xa9"
    ids = [tok.encode("a")[0], cont, lead]  # cont alone; lead never completed

    assert tok.decode(ids) == "a\ufffd\ufffd"
    assert "".join(tok.stream(ids)) == tok.decode(ids)


def test_token_str_shows_partial_characters_as_hex_bytes():
    tok = BPETokenizer.train(["plain ascii words"] * 2, 260)
    first, second = tok.encode("é")

    assert [tok.token_str(i) for i in tok.encode("aé")] == ["a", "<0xC3>", "<0xA9>"]
    assert tok.token_str(first) == "<0xC3>" and tok.token_str(second) == "<0xA9>"


def test_out_of_range_id_is_an_error():
    tok = CharTokenizer.train("ab")
    with pytest.raises(ToytorchError, match="token id 7"):
        tok.decode([7])


# ---------------------------------------------------------------- char


def test_char_vocab_is_sorted_and_deterministic():
    tok = CharTokenizer.train(["cab", "ba\n"])
    assert tok.vocab == ["\n", "a", "b", "c"]
    assert tok.encode("abc") == [1, 2, 3]
    assert CharTokenizer.train(["ba\n", "cab"]).vocab == tok.vocab


def test_char_unknown_characters_are_named():
    tok = CharTokenizer.train("hello")
    assert tok.unknown("hey you") == ["y", " ", "u"]
    with pytest.raises(ToytorchError, match="'y', ' ', 'u'"):
        tok.encode("hey you")


def test_char_special_tokens_stay_whole():
    tok = CharTokenizer.train("abc", special_tokens=["<eos>"])
    assert tok.vocab[0] == "<eos>"
    assert tok.encode("a<eos>b") == [0 + 1, 0, 2]
    assert tok.unknown("<eos>") == []
    assert tok.decode(tok.encode("a<eos>b")) == "a<eos>b"


def test_char_bad_inputs():
    with pytest.raises(ToytorchError, match="empty corpus"):
        CharTokenizer.train("")
    with pytest.raises(ToytorchError, match="vocab_size 2 is too small"):
        CharTokenizer.train("abc", vocab_size=2)
    with pytest.raises(ToytorchError, match="min_frequency"):
        CharTokenizer.train("abc", min_frequency=3)


# ---------------------------------------------------------------- word


def test_word_tokens_are_words_punctuation_and_whitespace_runs():
    tok = WordTokenizer.train("Don't stop,\n  now!")
    assert tok.tokens("Don't stop,\n  now!") == [
        "Don't",
        " ",
        "stop",
        ",",
        "\n  ",
        "now",
        "!",
    ]


def test_word_vocab_order_by_count_then_token():
    # counts worked out by hand: " " 5, "c" 3, "b" 2, "a" 1
    tok = WordTokenizer.train("b a b c c c")
    assert tok.vocab == ["<unk>", " ", "c", "b", "a"]


def test_word_limits_map_the_rest_to_unk():
    text = "b a b c c c"
    small = WordTokenizer.train(text, vocab_size=3)
    assert small.vocab == ["<unk>", " ", "c"]
    assert small.encode("c b") == [2, 1, 0]
    assert small.unknown("c b a b") == ["b", "a"]
    assert small.decode(small.encode("c b")) == "c <unk>"

    frequent = WordTokenizer.train(text, min_frequency=2)
    assert frequent.vocab == ["<unk>", " ", "c", "b"]


def test_word_specials_and_round_trip(tmp_path):
    tok = WordTokenizer.train(["one two. <eos>", "two three"], special_tokens=["<eos>"])
    assert tok.vocab[:2] == ["<unk>", "<eos>"]
    text = "two one.<eos>three"
    assert tok.decode(tok.encode(text)) == text
    tok.save(tmp_path / "w.json")
    assert load_tokenizer(tmp_path / "w.json").encode(text) == tok.encode(text)


def test_word_bad_inputs():
    with pytest.raises(ToytorchError, match="empty corpus"):
        WordTokenizer.train(["", ""])
    with pytest.raises(ToytorchError, match="vocab_size 1 is too small"):
        WordTokenizer.train("a b", vocab_size=1)


# ---------------------------------------------------------------- JSON dispatch


def test_json_dispatch_and_errors():
    assert isinstance(
        tokenizer_from_json_str(CharTokenizer.train("ab").to_json_str()), CharTokenizer
    )
    bad = [
        ("{", "not valid JSON"),
        ("[1]", "JSON object"),
        ("{}", "not a tokenizer.json"),
        ('{"toytorch": {"version": 9, "kind": "char"}}', "version 9"),
        ('{"toytorch": {"version": 1, "kind": "morse"}}', "kind 'morse'"),
        ('{"toytorch": {"version": 1, "kind": "char"}}', "corrupt char"),
        ('{"model": {"type": "WordPiece", "vocab": {}}}', "model type 'WordPiece'"),
    ]
    for text, message in bad:
        with pytest.raises(ToytorchError, match=message):
            tokenizer_from_json_str(text)


def test_load_missing_file(tmp_path):
    with pytest.raises(ToytorchError, match="does not exist"):
        load_tokenizer(tmp_path / "nope.json")


def test_train_tokenizer_rejects_unknown_kind():
    with pytest.raises(ToytorchError, match="unknown tokenizer kind 'morse'"):
        train_tokenizer("morse", "abc")


def test_train_tokenizer_reports_progress(any_tok):
    seen = []
    train_tokenizer(any_tok.kind, SAMPLE, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]


# ---------------------------------------------------------------- cache


def test_encode_cached_reads_back_without_encoding(tmp_path, monkeypatch):
    tok = train_tokenizer("bpe", SAMPLE, vocab_size=280)
    ids = encode_cached(tok, SAMPLE, cache_dir=tmp_path)
    assert ids.dtype == torch.long and ids.tolist() == tok.encode(SAMPLE)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"

    def fail(text):
        raise AssertionError("encode called despite the cache")

    monkeypatch.setattr(tok, "encode", fail)
    assert torch.equal(encode_cached(tok, SAMPLE, cache_dir=tmp_path), ids)


def test_encode_cached_keys_on_text_and_tokenizer(tmp_path):
    a = train_tokenizer("char", SAMPLE)
    b = train_tokenizer("char", SAMPLE + "xyz")
    encode_cached(a, SAMPLE, tmp_path)
    encode_cached(a, SAMPLE[:-1], tmp_path)
    got = encode_cached(b, SAMPLE, tmp_path)
    assert got.tolist() == b.encode(SAMPLE)
    assert len(list(tmp_path.iterdir())) == 3


def test_encode_cached_env_dir_and_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYTORCH_CACHE_DIR", str(tmp_path / "env"))
    tok = train_tokenizer("word", SAMPLE)
    first = encode_cached(tok, SAMPLE)
    (cached,) = (tmp_path / "env").iterdir()
    cached.write_bytes(b"not a safetensors file")
    assert torch.equal(encode_cached(tok, SAMPLE), first)
    assert cached.read_bytes() != b"not a safetensors file"


# ---------------------------------------------------------------- CLI


runner = CliRunner()


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(SAMPLE * 20, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_cli_train_and_encode(tmp_path, corpus, kind):
    out = tmp_path / f"{kind}.json"
    args = ["tokenizer", "train", str(corpus), "--kind", kind, "--out", str(out)]
    if kind == "bpe":
        args += ["--vocab-size", "300"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_tokenizer(out).kind == kind

    result = runner.invoke(app, ["tokenizer", "encode", str(out), "Hello"])
    assert result.exit_code == 0, result.output
    assert str(load_tokenizer(out).encode("Hello")) in result.output
    assert "tokens:" in result.output


def test_cli_encode_unknown_characters_is_an_error(tmp_path, corpus):
    out = tmp_path / "c.json"
    runner.invoke(
        app, ["tokenizer", "train", str(corpus), "--kind", "char", "--out", str(out)]
    )
    result = runner.invoke(app, ["tokenizer", "encode", str(out), "Zebra ☃"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ToytorchError)
    assert "'Z'" in str(result.exception) and "'☃'" in str(result.exception)


def test_cli_compare(corpus):
    result = runner.invoke(
        app, ["tokenizer", "compare", str(corpus), "--vocab-size", "300"]
    )
    assert result.exit_code == 0, result.output
    assert "same vocabulary: yes" in result.output
    assert "same merges: yes" in result.output
    assert "tokens per word" in result.output


def test_cli_compare_without_tokenizers(corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import now fails
    result = runner.invoke(app, ["tokenizer", "compare", str(corpus)])
    assert result.exit_code != 0
    assert "needs Hugging Face tokenizers" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "CORPUS", "--kind", "morse", "--out", "x.json"], "--kind 'morse'"),
        (["train", "CORPUS", "--vocab-size", "10", "--out", "x.json"], "too small"),
        (["train", "missing.txt", "--out", "x.json"], "missing.txt"),
        (["encode", "missing.json", "hi"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(
    corpus, tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    args = [str(corpus) if a == "CORPUS" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["toytorch", "tokenizer", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_encode_shows_byte_tokens_readably(tmp_path, corpus):
    out = tmp_path / "b.json"
    args = ["tokenizer", "train", str(corpus), "--kind", "bpe", "--out", str(out)]
    runner.invoke(app, [*args, "--vocab-size", "260"])
    result = runner.invoke(app, ["tokenizer", "encode", str(out), "☃ :x:"])

    assert result.exit_code == 0, result.output
    assert "'<0xE2>', '<0x98>', '<0x83>'" in result.output  # ☃ is E2 98 83
    assert "b'\\x" not in result.output and "\ufffd" not in result.output
    assert "':', 'x', ':'" in result.output  # not turned into an emoji


@pytest.mark.parametrize("target", ["folder", "under_a_file"])
def test_cli_train_unwritable_out_is_one_line_error(
    corpus, tmp_path, monkeypatch, capsys, target
):
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    out = tmp_path if target == "folder" else tmp_path / "a_file" / "tok.json"
    args = ["tokenizer", "train", str(corpus), "--kind", "char", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["toytorch", *args])

    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {out}: ")
    assert ("is a directory" if target == "folder" else "not a folder") in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.glob(".*.tmp")) == []  # no temporary file left behind


def test_cli_trained_file_is_json(tmp_path, corpus):
    out = tmp_path / "w.json"
    runner.invoke(
        app, ["tokenizer", "train", str(corpus), "--kind", "word", "--out", str(out)]
    )
    assert json.loads(out.read_text(encoding="utf-8"))["toytorch"]["kind"] == "word"


# ---------------------------------------------------------------- scratch rule


def test_tokenizers_package_uses_no_reference_library():
    root = Path(__file__).resolve().parents[1] / "toytorch" / "tokenizers"
    for path in root.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for banned in ("import tokenizers", "from tokenizers", "tiktoken"):
            assert banned not in source, f"{path.name} mentions {banned}"
