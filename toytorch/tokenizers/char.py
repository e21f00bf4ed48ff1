"""Character tokenizer: one id per distinct character of the training text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from toytorch.errors import ToytorchError
from toytorch.tokenizers.base import VocabTokenizer, as_text_list


class CharTokenizer(VocabTokenizer):
    """Every character is a token.

    The vocabulary is the special tokens (in the order given) followed by the distinct
    characters of the training text sorted by code point, so training on the same text
    gives the same ids in every process. Example: trained on "abba\\n" the vocabulary is
    ``["\\n", "a", "b"]`` and ``encode("ab") == [1, 2]``.

    Args:
        vocab: tokens in id order (special tokens first, then single characters).
        special_tokens: the tokens of ``vocab`` that are special (kept whole by encode).
    """

    kind = "char"

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int | None = None,
        min_frequency: int = 0,
        special_tokens: Iterable[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> CharTokenizer:
        """Build the vocabulary from ``texts``.

        The char tokenizer keeps every character (there is no unknown token), so
        ``vocab_size`` is only a limit that the text must fit and ``min_frequency``
        above 1 is refused.
        """
        if min_frequency > 1:
            raise ToytorchError(
                f"min_frequency {min_frequency} is not supported by the char tokenizer "
                "(it keeps every character); use the word or bpe tokenizer"
            )
        counts: Counter[str] = Counter()
        for t in as_text_list(texts):
            counts.update(t)
        if not counts:
            raise ToytorchError("cannot train a char tokenizer on an empty corpus")
        specials = list(dict.fromkeys(special_tokens))
        chars = sorted(c for c in counts if c not in specials)
        vocab = specials + chars
        if vocab_size is not None and len(vocab) > vocab_size:
            raise ToytorchError(
                f"vocab_size {vocab_size} is too small: the corpus has {len(chars)} "
                f"distinct characters (plus {len(specials)} special tokens)"
            )
        if progress is not None:
            progress(1, 1)
        return cls(vocab, specials)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; unknown characters raise ToytorchError."""
        stoi = self.stoi
        ids: list[int] = []
        for segment, special in self._splitter.split(text):
            if special:
                ids.append(stoi[segment])
                continue
            try:
                ids.extend([stoi[c] for c in segment])
            except KeyError:
                missing = ", ".join(repr(c) for c in self.unknown(segment))
                raise ToytorchError(
                    f"characters not in the vocabulary: {missing}"
                ) from None
        return ids

    def _pieces(self, segment: str) -> str:
        return segment  # its characters
