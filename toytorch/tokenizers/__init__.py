"""Tokenizers behind one interface: characters, words, and a scratch byte-pair encoder.

``train_tokenizer(kind, texts, ...)`` builds one, ``load_tokenizer(path)`` reads a
``tokenizer.json`` (toytorch's own char/word format, or Hugging Face's BPE format), and
``encode_cached`` tokenizes a corpus once and keeps the ids on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from toytorch.errors import ToytorchError
from toytorch.tokenizers.base import Tokenizer
from toytorch.tokenizers.bpe import BPETokenizer
from toytorch.tokenizers.cache import encode_cached
from toytorch.tokenizers.char import CharTokenizer
from toytorch.tokenizers.word import WordTokenizer

KINDS = ("char", "word", "bpe")

__all__ = [
    "KINDS",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "encode_cached",
    "load_tokenizer",
    "tokenizer_from_json_str",
    "train_tokenizer",
]


def train_tokenizer(
    kind: str,
    texts: str | Iterable[str],
    vocab_size: int | None = None,
    min_frequency: int = 0,
    special_tokens: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> Tokenizer:
    """Train a tokenizer of ``kind`` ("char", "word" or "bpe") on ``texts``.

    ``texts`` is one string or an iterable of strings. ``vocab_size`` None means: every
    character (char), every token (word), 1000 (bpe, byte-level). ``progress(done,
    total)`` is called while training.
    """
    if kind == "char":
        cls = CharTokenizer
    elif kind == "word":
        cls = WordTokenizer
    elif kind == "bpe":
        vocab_size = 1000 if vocab_size is None else vocab_size
        return BPETokenizer.train(
            texts, vocab_size, min_frequency, special_tokens, progress=progress
        )
    else:
        raise ToytorchError(f"unknown tokenizer kind {kind!r}: use one of {KINDS}")
    return cls.train(texts, vocab_size, min_frequency, special_tokens, progress)


def tokenizer_from_json_str(s: str) -> Tokenizer:
    """Tokenizer from the text of a ``tokenizer.json``.

    toytorch's char/word schema (``{"toytorch": {"version": 1, "kind": ...}}``) or a
    Hugging Face tokenizer.json whose model is BPE; other models are refused.
    """
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise ToytorchError(f"tokenizer.json is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ToytorchError("tokenizer.json must hold a JSON object")
    if "toytorch" in d:
        return _from_toytorch_dict(d["toytorch"])
    if isinstance(d.get("model"), dict):
        model_type = d["model"].get("type", "BPE" if "merges" in d["model"] else None)
        if model_type != "BPE":
            raise ToytorchError(f"unsupported tokenizer model type {model_type!r}")
        return BPETokenizer.from_hf_dict(d)
    raise ToytorchError("not a tokenizer.json: no 'toytorch' or 'model' entry")


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a ``tokenizer.json`` written by ``Tokenizer.save`` or by Hugging Face."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToytorchError(f"tokenizer file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ToytorchError(f"cannot read tokenizer file {str(p)!r}: {e}") from None
    try:
        return tokenizer_from_json_str(text)
    except ToytorchError as e:
        raise ToytorchError(f"{p}: {e}") from None


def _from_toytorch_dict(d: dict) -> Tokenizer:
    version, kind = d.get("version"), d.get("kind")
    if version != 1:
        raise ToytorchError(f"unsupported toytorch tokenizer version {version!r}")
    try:
        if kind == "char":
            return CharTokenizer.from_json_dict(d)
        if kind == "word":
            return WordTokenizer.from_json_dict(d)
    except (KeyError, TypeError) as e:
        raise ToytorchError(f"corrupt {kind} tokenizer.json: {e!r}") from None
    raise ToytorchError(f"unsupported toytorch tokenizer kind {kind!r}")
