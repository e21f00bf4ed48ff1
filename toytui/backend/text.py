"""Corpora and tokenizers, for the Corpus and Tokenizer tabs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toytorch.compare_bpe import Comparison  # light: tokenizers loads on first use

LARGE_CORPUS_BYTES = 20 * 1024 * 1024


# ---------------------------------------------------------------- corpora


@dataclass(frozen=True)
class CorpusEntry:
    """A corpus on offer: its name (what resolve_corpus takes) and where it is from."""

    name: str
    title: str
    origin: str
    size: int


def list_corpora() -> list[CorpusEntry]:
    """The bundled corpora and the user's own (downloads go to the user folder)."""
    from toytorch import corpora

    return [
        CorpusEntry(info.name, info.title, info.origin, info.size_bytes)
        for info in corpora.list_corpora()
    ]


def default_corpus() -> str:
    from toytorch import corpora

    return corpora.DEFAULT_CORPUS


def load_corpus(name_or_path: str) -> tuple[Path, str]:
    """Resolve a corpus name or file path and read it (ToytorchError if unusable)."""
    from toytorch import corpora

    path = corpora.resolve_corpus(name_or_path)
    return path, corpora.read_corpus(path)


def corpus_stats(text: str) -> dict[str, int]:
    """Lines, words, distinct words and characters, as the CLI counts them."""
    from dataclasses import asdict

    from toytorch import corpora

    return asdict(corpora.corpus_stats(text))


# ---------------------------------------------------------------- tokenizers

TOKENIZER_KINDS = ("char", "word", "bpe")


def train_tokenizer(
    kind: str,
    text: str,
    vocab_size: int | None,
    min_frequency: int,
    progress: Callable[[int, int], None] | None = None,
):
    """Train a tokenizer of ``kind`` on the corpus text (runs in a worker thread)."""
    from toytorch.tokenizers import train_tokenizer as train

    return train(
        kind,
        text,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        progress=progress,
    )


def load_tokenizer(path: Path):
    from toytorch.tokenizers import load_tokenizer as load

    return load(path)


@dataclass
class TokenizerSummary:
    """What the Tokenizer screen shows after training."""

    vocab_size: int
    tokens_per_word: float
    longest: list[str]
    sample_pieces: list[str]


def summarise_tokenizer(tokenizer, text: str) -> TokenizerSummary:
    """Tokens per word on (a slice of) the corpus, longest tokens, a sample line."""
    import regex

    head = text[:200_000]
    words = max(1, len(regex.findall(r"\w+", head)))
    ids = tokenizer.encode(head)
    vocab = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
    longest = sorted(vocab, key=lambda t: (-len(t), t))[:8]
    line = _sample_line(text)
    pieces = [tokenizer.token_str(i) for i in tokenizer.encode(line)]  # <0xC3>
    return TokenizerSummary(tokenizer.vocab_size, len(ids) / words, longest, pieces)


def _sample_line(text: str) -> str:
    """The first line with at least four words (or the first line), for the preview."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if len(line.split()) >= 4 and not line.startswith("#"):
            return line[:120]
    return lines[0][:120] if lines else ""


def compare_bpe(text: str, vocab_size: int) -> Comparison:
    """Train toytorch's BPE and Hugging Face's on the corpus; compare (in a worker).

    The library comparison that ``toytorch tokenizer compare`` runs, on the whole
    text as one string. Without the ``tokenizers`` package (a dev/test dependency) a
    ToytorchError says how to install it.
    """
    from toytorch.compare_bpe import compare_with_hf

    return compare_with_hf([text], vocab_size, count_tokens=False)  # not shown
