"""Splitting text before tokenization: special tokens, GPT-2's pattern, byte mapping.

GPT-2's byte-level scheme maps each of the 256 byte values to a printable character,
so every string becomes a string of "byte characters" that a BPE can merge and that
never needs an unknown token. The mapping (the same table as GPT-2 and Hugging Face
``tokenizers``' ByteLevel): the printable bytes ``!``..``~``, ``¡``..``¬`` and
``®``..``ÿ`` stand for themselves; the other 68 bytes (controls, space, DEL, NBSP,
soft hyphen) map, in increasing byte order, to U+0100, U+0101, ... So space is ``Ġ``
and "\\n" is ``Ċ``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import regex

from toytorch.errors import ToytorchError

# GPT-2's split, as tokenizers' ByteLevel pre-tokenizer uses it (pre_tokenizers/
# byte_level.rs): contractions, an optional space plus a run of letters / of digits /
# of other non-space characters, and whitespace runs where the last space of a run
# followed by a non-space is left to lead the next piece.
GPT2_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
)
GPT2_SPLIT = regex.compile(GPT2_PATTERN)

# The word-suffix BPE splits like tokenizers' Whitespace pre-tokenizer: word
# characters, or runs of other non-space characters; whitespace is dropped.
WHITESPACE_PATTERN = r"\w+|[^\w\s]+"
WHITESPACE_SPLIT = regex.compile(WHITESPACE_PATTERN)


def bytes_to_unicode() -> dict[int, str]:
    """Byte value -> printable character of GPT-2's byte-level alphabet."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}
# str.translate table from a latin-1 decoded byte string to byte characters.
_LATIN1_TO_BYTE_CHARS = {b: c for b, c in BYTE_TO_CHAR.items()}


def to_byte_chars(piece: str) -> str:
    """``piece`` as GPT-2 byte characters: "a b" -> "aĠb"."""
    return piece.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_BYTE_CHARS)


class SpecialSplitter:
    """Cuts text at special tokens, which are matched before any other splitting.

    At each position the longest special token that starts there wins (the
    alternatives are tried longest first), like tokenizers' added-token matching.
    """

    def __init__(self, specials: Iterable[str]) -> None:
        specials = list(specials)
        if any(not isinstance(s, str) or not s for s in specials):
            raise ToytorchError(f"special tokens must be non-empty strings: {specials}")
        self.specials = sorted(set(specials), key=lambda s: (-len(s), s))
        self._pattern = (
            regex.compile("|".join(regex.escape(s) for s in self.specials))
            if self.specials
            else None
        )

    def split(self, text: str) -> Iterator[tuple[str, bool]]:
        """Yield ``(segment, is_special)`` for the pieces of ``text`` in order."""
        if self._pattern is None:
            if text:
                yield text, False
            return
        start = 0
        for m in self._pattern.finditer(text):
            if m.start() > start:
                yield text[start : m.start()], False
            yield m.group(), True
            start = m.end()
        if start < len(text):
            yield text[start:], False
