"""The scratch BPE against Hugging Face tokenizers, computed in the test."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from toytorch.errors import ToytorchError
from toytorch.tokenizers import (
    BPETokenizer,
    bpe_train,
    load_tokenizer,
    tokenizer_from_json_str,
)

EDGE_CASES = [
    "",
    " ",
    "   ",
    "\t",
    "\t\tindented\tline",
    "line one\r\nline two\r\n",
    "a  b   c    d     ",
    "  leading and trailing  ",
    "café naïve résumé Ångström",
    "e\u0301 combining acute",
    "漢字とかなの文章。中文字符",
    "family 👩\u200d👩\u200d👧\u200d👦 and flags 🇫🇷🇯🇵 and 🙂",
    "no\u00a0break\u00a0space and zero\u200bwidth\u200bspace",
    "ideographic\u3000space and en\u2002space",
    "I'm, you're, he'll, we've, they'd, it's, don't, O'Neil's",
    "digits 0123456789 and ٣٤٥ and ½ and 3.14159 and 1,000,000",
    "\n\n\n",
    "tabs\t \tand spaces \t mixed\n\t\n",
    "punctuation!!! ??? ... --- ***",
]


def hf_bpe(texts, vocab_size, min_frequency=0, specials=()):
    """The reference: tokenizers' byte-level BPE in the configuration of issue 3."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def hf_model(tok) -> dict:
    return json.loads(tok.to_str())["model"]


def assert_same_model(hf, mine: BPETokenizer) -> None:
    model = hf_model(hf)
    assert mine.vocab == model["vocab"]
    theirs = [tuple(m) for m in model["merges"]]
    for rank, (a, b) in enumerate(zip(theirs, mine.merges, strict=False)):
        assert a == b, f"merge {rank} differs: tokenizers {a}, scratch {b}"
    assert len(theirs) == len(mine.merges)


def assert_same_ids(hf, mine: BPETokenizer, texts) -> None:
    for text in texts:
        assert mine.encode(text) == hf.encode(text).ids, repr(text[:80])


# ---------------------------------------------------------------- real corpora

# (vocab_size, characters of the corpus used): slices keep the test time modest.
SIZES = [(300, 60_000), (1000, 200_000), (4000, 400_000)]


@pytest.mark.parametrize("corpus", ["tinyshakespeare", "sherlock"])
@pytest.mark.parametrize("feed", ["lines", "whole"])
@pytest.mark.parametrize(("vocab_size", "n_chars"), SIZES)
def test_same_vocab_merges_and_ids_as_tokenizers(
    request, corpus, feed, vocab_size, n_chars
):
    text = request.getfixturevalue(corpus).read_text(encoding="utf-8")
    train_text, held_out = text[:n_chars], text[n_chars : n_chars + 20_000]
    texts = train_text.splitlines(keepends=True) if feed == "lines" else [train_text]

    hf = hf_bpe(texts, vocab_size)
    mine = BPETokenizer.train(texts, vocab_size)

    assert_same_model(hf, mine)
    assert_same_ids(hf, mine, [held_out, *held_out.splitlines()[:200]])
    assert mine.decode(mine.encode(held_out)) == held_out


@pytest.mark.parametrize(
    ("specials", "min_frequency"),
    [(["<|endoftext|>", "<pad>"], 0), ((), 5), (["<s>", "</s>", "<s>"], 3)],
)
def test_specials_and_min_frequency_as_tokenizers(
    tinyshakespeare, specials, min_frequency
):
    text = tinyshakespeare.read_text(encoding="utf-8")[:150_000]
    lines = text.splitlines(keepends=True)

    hf = hf_bpe(lines, 2000, min_frequency, specials)
    mine = BPETokenizer.train(lines, 2000, min_frequency, specials)

    assert_same_model(hf, mine)
    probe = [f"{s}ROMEO: what{s} say you?{s}" for s in dict.fromkeys(specials)]
    assert_same_ids(hf, mine, [text[:5000], *probe])


def test_min_frequency_stops_merging_early_like_tokenizers(tinyshakespeare):
    text = tinyshakespeare.read_text(encoding="utf-8")[:20_000]
    hf = hf_bpe([text], 5000, min_frequency=40)
    mine = BPETokenizer.train([text], 5000, min_frequency=40)
    assert_same_model(hf, mine)
    assert mine.vocab_size < 5000  # stopped by min_frequency, not by vocab_size


# ---------------------------------------------------------------- Unicode edges


def test_unicode_edge_cases_train_and_encode_like_tokenizers():
    texts = EDGE_CASES * 3 + ["the quick brown fox jumps over the lazy dog"] * 5
    hf = hf_bpe(texts, 400)
    mine = BPETokenizer.train(texts, 400)
    assert_same_model(hf, mine)
    assert_same_ids(hf, mine, EDGE_CASES + ["".join(EDGE_CASES)])


@pytest.mark.parametrize("text", EDGE_CASES)
def test_round_trip_of_edge_cases(text):
    tok = BPETokenizer.train(["some text to learn a few merges from"] * 3, 270)
    assert tok.decode(tok.encode(text)) == text
    assert tok.unknown(text) == []


def test_invalid_utf8_decodes_to_replacement_character():
    tok = BPETokenizer.train(["hello"], 260)
    hf = Tokenizer.from_str(tok.to_json_str())
    # with no merges for them, these characters are one byte token per byte
    e_acute, smiley = hf.encode("é").ids, hf.encode("🙂").ids
    assert (len(e_acute), len(smiley)) == (2, 4)
    lone_continuation, cut_emoji = e_acute[1:], smiley[:2]

    for ids in (lone_continuation, cut_emoji, cut_emoji + e_acute, smiley[1:]):
        assert tok.decode(ids) == hf.decode(ids)
        assert "\ufffd" in tok.decode(ids)
        assert "".join(tok.stream(ids)) == tok.decode(ids)


def test_stream_never_splits_a_character():
    text = "héllo wörld 漢字 👩\u200d👩\u200d👧 🙂!"
    tok = BPETokenizer.train(["hello world, plain ascii"] * 2, 270)
    ids = tok.encode(text)
    pieces = list(tok.stream(ids))
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    # accents and emoji are byte tokens here: some ids yield nothing until complete
    assert len(pieces) < len(ids)


# ---------------------------------------------------------------- save / load


def test_hf_loads_a_saved_scratch_tokenizer(tmp_path, tinyshakespeare):
    text = tinyshakespeare.read_text(encoding="utf-8")[:100_000]
    mine = BPETokenizer.train(text.splitlines(keepends=True), 800, 0, ["<|endoftext|>"])
    path = tmp_path / "tokenizer.json"
    mine.save(path)

    hf = Tokenizer.from_file(str(path))
    probe = ["<|endoftext|>First Citizen:<|endoftext|>", text[:3000], *EDGE_CASES]
    assert_same_ids(hf, mine, probe)
    assert hf.encode("<|endoftext|>").ids == [mine.vocab["<|endoftext|>"]]


def test_scratch_loads_a_tokenizer_saved_by_hf(tmp_path, tinyshakespeare):
    text = tinyshakespeare.read_text(encoding="utf-8")[:100_000]
    hf = hf_bpe(text.splitlines(keepends=True), 800, 0, ["<s>", "</s>"])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))

    mine = load_tokenizer(path)
    assert isinstance(mine, BPETokenizer)
    assert_same_ids(hf, mine, ["<s>hello</s><s>", text[:3000], *EDGE_CASES])
    assert mine.encode("</s>") == [hf.token_to_id("</s>")]

    # and back again through the scratch writer
    again = tokenizer_from_json_str(mine.to_json_str())
    assert again.vocab == mine.vocab and again.merges == mine.merges
    assert again.encode("a<s>b") == mine.encode("a<s>b")


def test_old_string_form_of_merges_loads(tinyshakespeare):
    text = tinyshakespeare.read_text(encoding="utf-8")[:50_000]
    hf = hf_bpe([text], 500)
    d = json.loads(hf.to_str())
    d["model"]["merges"] = [f"{a} {b}" for a, b in d["model"]["merges"]]
    mine = tokenizer_from_json_str(json.dumps(d))
    assert_same_ids(hf, mine, [text[:3000]])


def test_merges_containing_spaces_survive_save_and_load():
    vocab = {"a": 0, "b": 1, " ": 2, "a b": 3, "a ": 4, "a bb": 5}
    merges = [("a", " "), ("a ", "b"), ("a b", "b")]
    mine = BPETokenizer(vocab, merges, mode="byte", use_regex=False)

    loaded = tokenizer_from_json_str(mine.to_json_str())
    assert loaded.merges == merges and loaded.vocab == vocab

    hf = Tokenizer.from_str(mine.to_json_str())
    assert [tuple(m) for m in hf_model(hf)["merges"]] == merges
    assert BPETokenizer.from_hf_dict(json.loads(hf.to_str())).merges == merges


def test_specials_stay_single_tokens_after_every_save_load(tmp_path):
    specials = ["<|endoftext|>", "<pad>", "<|im start|>"]
    training = ["plain text <pad> here"] * 4  # in training text a special is text
    mine = BPETokenizer.train(training, 300, 0, specials)
    assert_same_model(hf_bpe(training, 300, 0, specials), mine)
    text = "x<|endoftext|>y <pad><|im start|> z<|endoftext|>"

    hf_path = tmp_path / "hf.json"
    Tokenizer.from_str(mine.to_json_str()).save(str(hf_path))
    paths = [
        mine,
        tokenizer_from_json_str(mine.to_json_str()),
        load_tokenizer(hf_path),
        BPETokenizer.load(hf_path),
    ]
    for tok in paths:
        ids = tok.encode(text)
        for s in specials:
            assert tok.vocab[s] in ids
        assert tok.decode(ids) == text
        assert ids == Tokenizer.from_file(str(hf_path)).encode(text).ids


# ---------------------------------------------------------------- word-suffix mode


def test_suffix_mode_encodes_like_tokenizers_after_save(tmp_path, tinyshakespeare):
    text = tinyshakespeare.read_text(encoding="utf-8")[:100_000]
    mine = BPETokenizer.train(text.splitlines(), 1000, mode="suffix")
    assert mine.vocab["<unk>"] == 0
    path = tmp_path / "suffix.json"
    mine.save(path)
    hf = Tokenizer.from_file(str(path))

    held_out = tinyshakespeare.read_text(encoding="utf-8")[100_000:103_000]
    probe = [held_out, "naïve café 漢字 ☃ snowman", "ROMEO: what say'st thou?"]
    assert_same_ids(hf, mine, probe)
    for p in probe:
        ids = hf.encode(p).ids
        assert mine.decode(ids) == hf.decode(ids, skip_special_tokens=False)
        assert "".join(mine.stream(mine.encode(p))) == mine.decode(mine.encode(p))
    assert mine.unknown("snowman ☃ 漢") == ["☃", "漢"]
    assert load_tokenizer(path).encode(held_out) == mine.encode(held_out)


def test_suffix_mode_vocab_is_the_same_in_every_run():
    texts = ["low lower lowest newer newest wider"] * 3
    a = BPETokenizer.train(texts, 60, mode="suffix")
    b = BPETokenizer.train(list(reversed(texts)) + [""], 60, mode="suffix")
    assert a.to_json_str() == b.to_json_str()
    assert "low</w>" in a.vocab and a.encode("low") == [a.vocab["low</w>"]]


# ---------------------------------------------------------------- determinism, speed


HASH_SCRIPT = """
import hashlib
from toytorch.tokenizers import BPETokenizer
texts = ["ab ba ab ba cd dc cd dc ef fe ef fe gh hg gh hg"] * 3 + ["xy yx zw wz"] * 2
tok = BPETokenizer.train(texts, 320)
print(hashlib.sha256(tok.to_json_str().encode()).hexdigest())
"""


def test_ties_are_broken_the_same_whatever_pythonhashseed():
    root = Path(__file__).resolve().parents[1]
    digests = set()
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1

    # and the tie-heavy corpus matches tokenizers too
    texts = ["ab ba ab ba cd dc cd dc ef fe ef fe gh hg gh hg"] * 3 + [
        "xy yx zw wz"
    ] * 2
    assert_same_model(hf_bpe(texts, 320), BPETokenizer.train(texts, 320))


def test_pairs_are_counted_once_then_updated_incrementally(monkeypatch):
    calls = []
    original = bpe_train.count_pairs

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(bpe_train, "count_pairs", counting)
    tok = BPETokenizer.train(["the cat sat on the mat with the hat"] * 5, 300)
    assert len(tok.merges) > 10
    assert len(calls) == 1


def test_progress_reports_merges_up_to_the_total():
    seen = []
    BPETokenizer.train(
        ["a few words, a few more words"] * 4,
        280,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[0] == (0, 280 - 256)
    assert seen[-1] == (280 - 256, 280 - 256)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_encode_cache_gives_the_same_ids():
    tok = BPETokenizer.train(["repeat repeat repeat again"] * 3, 270)
    first = tok.encode("repeat again repeat")
    assert tok._cache  # pre-tokens were cached
    assert tok.encode("repeat again repeat") == first


# ---------------------------------------------------------------- bad input


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ToytorchError, match="vocab_size 200 is too small"):
        BPETokenizer.train(["hello"], 200)
    with pytest.raises(ToytorchError, match="vocab_size 257 is too small"):
        BPETokenizer.train(["hello"], 257, special_tokens=["<a>", "<b>"])
    for empty in ("", [], ["", ""]):
        with pytest.raises(ToytorchError, match="empty corpus"):
            BPETokenizer.train(empty, 300)
    with pytest.raises(ToytorchError, match="mode"):
        BPETokenizer.train(["x"], 300, mode="wordpiece")


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (
            lambda: models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"),
            "WordPiece",
        ),
        (lambda: models.Unigram([("a", -1.0), ("b", -2.0)]), "Unigram"),
        (
            lambda: models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"),
            "WordLevel",
        ),
    ],
)
def test_unsupported_model_type_is_refused(tmp_path, model, name):
    path = tmp_path / "tokenizer.json"
    Tokenizer(model()).save(str(path))
    with pytest.raises(
        ToytorchError, match=f"unsupported tokenizer model type '{name}'"
    ):
        load_tokenizer(path)


def test_small_example_worked_out_by_hand():
    # pre-tokens "low", "Ġlower", "Ġlowest": (l, o) and (o, w) occur 3 times each;
    # the tie goes to the smaller pair of ids, and "l" sorts before "o"
    tok = BPETokenizer.train("low lower lowest", 258)
    assert tok.merges == [("l", "o"), ("lo", "w")]
    assert tok.vocab["lo"] == 256 and tok.vocab["low"] == 257
    assert tok.encode("low") == [257]
    assert tok.encode(" low") == [tok.vocab["Ġ"], 257]


def test_overlapping_pairs_merge_left_to_right_like_tokenizers():
    texts = ["aaa aaaa aaaaa", "ababab abab", "zzzzzzzzz"] * 2
    hf = hf_bpe(texts, 270)
    mine = BPETokenizer.train(texts, 270)
    assert_same_model(hf, mine)
    assert_same_ids(hf, mine, ["aaaaaaa", "abababa", "zzz zzzzzzzzzzzzzzzz"])


def test_random_small_corpora_match_tokenizers():
    # many ties and overlapping pairs: a small alphabet and random repeated words
    rng = random.Random(1234)
    for _ in range(40):
        words = ["".join(rng.choices("abc ", k=rng.randint(1, 10))) for _ in range(20)]
        texts = ["".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(6)]
        vocab_size = rng.randint(257, 330)
        hf, mine = hf_bpe(texts, vocab_size), BPETokenizer.train(texts, vocab_size)
        assert_same_model(hf, mine)
        assert_same_ids(hf, mine, texts)


def test_prefix_space_tokenizer_from_hf_encodes_the_same(tmp_path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, show_progress=False)
    tok.train_from_iterator(EDGE_CASES * 2, trainer)
    tok.save(str(tmp_path / "t.json"))

    mine = BPETokenizer.load(tmp_path / "t.json")
    assert mine.add_prefix_space
    assert_same_ids(tok, mine, EDGE_CASES)
