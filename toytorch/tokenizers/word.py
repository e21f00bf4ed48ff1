"""Word tokenizer: words, punctuation marks and whitespace runs are the tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import regex

from toytorch.errors import ToytorchError
from toytorch.tokenizers.base import VocabTokenizer, as_text_list
from toytorch.tokenizers.pretokenize import SpecialSplitter

UNK = "<unk>"

# A word is a run of letters, marks and digits, with inner apostrophes kept ("don't",
# "o'er"); every other non-space character is a token of its own; whitespace runs are
# tokens too, so joining the tokens gives back the text exactly.
WORD_PATTERN = r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*|\s+|[^\s\p{L}\p{M}\p{N}]"
WORD_SPLIT = regex.compile(WORD_PATTERN)


class WordTokenizer(VocabTokenizer):
    """Splits text into words, punctuation and whitespace runs; rare ones become <unk>.

    Vocabulary order: ``<unk>`` (id 0), the special tokens in the order given, then the
    kept tokens by count (most frequent first), ties by the token's code points, so
    the ids are the same in every process. ``decode(encode(text)) == text`` when every
    token of the text is in the vocabulary. Example: trained on "to be, or not to be"
    the first ids after ``<unk>`` are ``" "``, ``"be"``, ``"to"``.

    Args:
        vocab: tokens in id order; ``vocab[0]`` must be ``"<unk>"``.
        special_tokens: the tokens of ``vocab`` that are special (kept whole by encode).
    """

    kind = "word"

    def __init__(self, vocab: list[str], special_tokens: Iterable[str] = ()) -> None:
        if not vocab or vocab[0] != UNK:
            raise ToytorchError(f"word vocabulary must start with {UNK!r}")
        super().__init__(vocab, special_tokens)

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int | None = None,
        min_frequency: int = 0,
        special_tokens: Iterable[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> WordTokenizer:
        """Count the tokens of ``texts`` and keep the most frequent.

        Args:
            vocab_size: at most this many ids in all (``<unk>`` and specials count);
                None keeps every token.
            min_frequency: tokens seen fewer times are left out (they encode as
                ``<unk>``).
        """
        specials = [s for s in dict.fromkeys(special_tokens) if s != UNK]
        splitter = SpecialSplitter(specials)
        counts: Counter[str] = Counter()
        for t in as_text_list(texts):
            for segment, special in splitter.split(t):
                if not special:
                    counts.update(WORD_SPLIT.findall(segment))
        if not counts:
            raise ToytorchError("cannot train a word tokenizer on an empty corpus")
        reserved = 1 + len(specials)
        if vocab_size is not None and vocab_size <= reserved:
            raise ToytorchError(
                f"vocab_size {vocab_size} is too small: it must exceed {reserved} "
                f"(<unk> and {len(specials)} special tokens)"
            )
        ranked = sorted(
            (
                tok
                for tok, n in counts.items()
                if n >= min_frequency and tok not in specials
            ),
            key=lambda tok: (-counts[tok], tok),
        )
        if vocab_size is not None:
            ranked = ranked[: vocab_size - reserved]
        if progress is not None:
            progress(1, 1)
        return cls([UNK, *specials, *ranked], specials)

    def tokens(self, text: str) -> list[str]:
        """The pieces of ``text`` (special tokens whole), before the vocab lookup."""
        pieces: list[str] = []
        for segment, special in self._splitter.split(text):
            if special:
                pieces.append(segment)
            else:
                pieces.extend(self._pieces(segment))
        return pieces

    def encode(self, text: str) -> list[int]:
        """Ids of the tokens of ``text``; tokens not in the vocabulary are ``<unk>``."""
        get = self.stoi.get
        return [get(tok, 0) for tok in self.tokens(text)]

    def _pieces(self, segment: str) -> list[str]:
        return WORD_SPLIT.findall(segment)

    def _json_fields(self) -> dict:
        return {"unk_token": UNK}
