"""Reading and writing Hugging Face's tokenizer.json for the scratch BPE.

Written files hold what ``tokenizers.Tokenizer.from_file`` needs to rebuild the same
tokenizer: the special tokens as ``added_tokens`` (special, not normalized), the
pre-tokenizer (ByteLevel, or Whitespace in suffix mode), the decoder, and the model
(vocab and merges; merges as ``[left, right]`` pairs so tokens holding a space survive).

Reading accepts files written by tokenizers with a BPE model and no normalizer; merges
in either the older ``"left right"`` string form or the newer pair form. What the
scratch encoder cannot reproduce (normalizers, other pre-tokenizers, dropout, byte
fallback, a continuing-subword prefix, added tokens with lstrip/rstrip/single_word) is
refused with a ToytorchError rather than encoded differently. Added tokens that are
not in the model's vocab are folded into it, so a re-saved file lists them there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toytorch.errors import ToytorchError

if TYPE_CHECKING:
    from toytorch.tokenizers.bpe import BPETokenizer

_BYTE_LEVEL = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def to_hf_dict(tok: BPETokenizer) -> dict[str, Any]:
    """The tokenizer as a tokenizer.json object."""
    added = [
        {
            "id": tok.vocab[s],
            "content": s,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for s in tok.special_tokens
    ]
    if tok.mode == "byte":
        pre = {
            "type": "ByteLevel",
            **_BYTE_LEVEL,
            "add_prefix_space": tok.add_prefix_space,
            "use_regex": tok.use_regex,
        }
        decoder = {"type": "ByteLevel", **_BYTE_LEVEL, "add_prefix_space": True}
    else:
        pre = {"type": "Whitespace"}
        decoder = {"type": "BPEDecoder", "suffix": tok.end_of_word_suffix}
    model = {
        "type": "BPE",
        "dropout": None,
        "unk_token": tok.unk_token,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": tok.end_of_word_suffix,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": tok.ignore_merges,
        "vocab": dict(sorted(tok.vocab.items(), key=lambda kv: kv[1])),
        "merges": [[a, b] for a, b in tok.merges],
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": None,
        "decoder": decoder,
        "model": model,
    }


def from_hf_dict(d: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of ``BPETokenizer`` from a tokenizer.json object."""
    model = d["model"]
    _refuse_unsupported(d, model)
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise ToytorchError("tokenizer.json model has no vocab object")
    vocab = dict(vocab)

    specials = []
    for t in d.get("added_tokens") or []:
        if t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
            raise ToytorchError(
                f"added token {t.get('content')!r} uses lstrip/rstrip/single_word, "
                "which the scratch BPE does not support"
            )
        if vocab.get(t["content"], t["id"]) != t["id"]:
            raise ToytorchError(f"added token {t['content']!r} has two different ids")
        vocab[t["content"]] = t["id"]
        specials.append(t["content"])

    mode, options = _mode_options(d.get("pre_tokenizer"), model)
    return {
        "vocab": vocab,
        "merges": [_parse_merge(m) for m in model.get("merges") or []],
        "mode": mode,
        "special_tokens": specials,
        "unk_token": model.get("unk_token"),
        "end_of_word_suffix": model.get("end_of_word_suffix"),
        "ignore_merges": bool(model.get("ignore_merges", False)),
        **options,
    }


def _parse_merge(m: Any) -> tuple[str, str]:
    """A merge from ``["a", "b"]`` (newer files) or ``"a b"`` (older files)."""
    if isinstance(m, str):
        parts = m.split(" ")
        if len(parts) != 2:
            raise ToytorchError(f"merge {m!r} is not two tokens separated by one space")
        return parts[0], parts[1]
    if isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
        return m[0], m[1]
    raise ToytorchError(f"merge {m!r} is neither 'a b' nor ['a', 'b']")


def _mode_options(pre: dict | None, model: dict) -> tuple[str, dict[str, bool]]:
    """Byte mode for a ByteLevel pre-tokenizer, suffix mode for Whitespace."""
    kind = pre.get("type") if isinstance(pre, dict) else None
    if kind == "ByteLevel":
        return "byte", {
            "add_prefix_space": bool(pre.get("add_prefix_space", False)),
            "use_regex": bool(pre.get("use_regex", True)),
        }
    if kind == "Whitespace" and model.get("end_of_word_suffix"):
        return "suffix", {}
    raise ToytorchError(
        f"unsupported pre_tokenizer {kind!r} for the scratch BPE: it reads ByteLevel "
        "(byte mode) or Whitespace with an end_of_word_suffix (suffix mode)"
    )


def _refuse_unsupported(d: dict, model: dict) -> None:
    if d.get("normalizer") is not None:
        raise ToytorchError("unsupported tokenizer.json: it has a normalizer")
    post = d.get("post_processor")
    if post is not None and post.get("type") != "ByteLevel":
        raise ToytorchError(f"unsupported post_processor {post.get('type')!r}")
    for key in ("dropout", "continuing_subword_prefix"):
        if model.get(key):
            raise ToytorchError(f"unsupported BPE option {key}={model[key]!r}")
    if model.get("byte_fallback"):
        raise ToytorchError("unsupported BPE option byte_fallback=true")
    if model.get("fuse_unk"):
        raise ToytorchError("unsupported BPE option fuse_unk=true")
