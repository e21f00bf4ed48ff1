"""The scratch byte-level BPE against Hugging Face ``tokenizers``, trained side by side.

Used by ``toytorch tokenizer compare``, the TUI's BPE check and the BPE benchmark.
``tokenizers`` is a dev/test dependency only, so it is imported when a comparison
runs; without it a ToytorchError says how to install it. This module lives outside
``toytorch/tokenizers/``: the scratch rule forbids the engine to import tokenizers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from toytorch.errors import ToytorchError

MISSING = "the comparison needs Hugging Face tokenizers: pip install tokenizers"


@dataclass(frozen=True)
class Comparison:
    """Both BPEs trained on the same texts with the same settings.

    Attributes:
        vocab_size: the vocabulary size asked for.
        same_vocab, same_merges: whether the two agree exactly.
        first_divergence: the first merge where they differ (or the merge counts),
            None when the merges agree.
        scratch_s, reference_s: training seconds of toytorch and of tokenizers.
        scratch_tokens_per_word, reference_tokens_per_word: on the training texts
            (None when not counted).
    """

    vocab_size: int
    same_vocab: bool
    same_merges: bool
    first_divergence: str | None
    scratch_s: float
    reference_s: float
    scratch_tokens_per_word: float | None
    reference_tokens_per_word: float | None


def require_tokenizers() -> None:
    """A ToytorchError naming the install command when tokenizers is missing."""
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise ToytorchError(MISSING) from None


def hf_byte_level_bpe(
    texts: Iterable[str],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Iterable[str] = (),
):
    """Train Hugging Face's byte-level BPE in the configuration the scratch one matches:
    ``models.BPE()``, ``ByteLevel(add_prefix_space=False)``, the full byte alphabet."""
    require_tokenizers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def compare_with_hf(
    texts: list[str],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
    count_tokens: bool = True,
) -> Comparison:
    """Train both BPEs on ``texts``; compare vocabularies, merges, tokens per word.

    ``progress(done, total)`` follows the scratch training. ``count_tokens=False``
    skips encoding the texts for tokens per word: the scratch encoder is slower than
    its training, so on a large corpus counting takes longer than the comparison.
    """
    from toytorch.tokenizers import BPETokenizer

    require_tokenizers()
    start = time.perf_counter()
    hf = hf_byte_level_bpe(texts, vocab_size, min_frequency, special_tokens)
    reference_s = time.perf_counter() - start

    start = time.perf_counter()
    mine = BPETokenizer.train(
        texts, vocab_size, min_frequency, special_tokens, progress=progress
    )
    scratch_s = time.perf_counter() - start

    model = json.loads(hf.to_str())["model"]
    theirs = [_pair(m) for m in model["merges"]]
    per_word = _tokens_per_word(texts, hf, mine) if count_tokens else (None, None)
    return Comparison(
        vocab_size=vocab_size,
        same_vocab=model["vocab"] == mine.vocab,
        same_merges=theirs == mine.merges,
        first_divergence=_first_divergence(theirs, mine.merges),
        scratch_s=scratch_s,
        reference_s=reference_s,
        scratch_tokens_per_word=per_word[0],
        reference_tokens_per_word=per_word[1],
    )


def _tokens_per_word(texts: list[str], hf, mine) -> tuple[float, float]:
    """(scratch, tokenizers) tokens per whitespace-separated word of ``texts``."""
    n_words = sum(len(t.split()) for t in texts) or 1
    my_tokens = sum(len(mine.encode(t)) for t in texts)
    hf_tokens = sum(len(e.ids) for e in hf.encode_batch(texts))
    return my_tokens / n_words, hf_tokens / n_words


def _pair(merge: list[str] | str) -> tuple[str, ...]:
    """A merge as a pair; older tokenizers write it as one "left right" string (a
    byte-level token never holds a space, so the split is unambiguous)."""
    return tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge)


def _first_divergence(theirs: list[tuple], mine: list[tuple]) -> str | None:
    for rank, (a, b) in enumerate(zip(theirs, mine, strict=False)):
        if a != b:
            return f"first divergence at merge {rank}: tokenizers {a}, scratch {b}"
    if len(theirs) != len(mine):
        return f"merge counts differ: tokenizers {len(theirs)}, scratch {len(mine)}"
    return None
