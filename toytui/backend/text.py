"""Corpora and tokenizers, for the Corpus and Tokenizer tabs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    pieces = [tokenizer.decode([i]) for i in tokenizer.encode(line)]
    return TokenizerSummary(tokenizer.vocab_size, len(ids) / words, longest, pieces)


def _sample_line(text: str) -> str:
    """The first line with at least four words (or the first line), for the preview."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if len(line.split()) >= 4 and not line.startswith("#"):
            return line[:120]
    return lines[0][:120] if lines else ""


@dataclass
class BPECheck:
    """Scratch BPE against Hugging Face tokenizers on the same text and vocab size."""

    same_vocab: bool
    same_merges: bool
    scratch_s: float
    reference_s: float
    vocab_size: int
    first_divergence: str | None = None


def compare_bpe(text: str, vocab_size: int) -> BPECheck:
    """Train toytorch's BPE and Hugging Face's on the same text; compare the results.

    Runs in a worker. Both are byte-level with the settings issue 3 pins down (HF:
    ``models.BPE()``, ``ByteLevel(add_prefix_space=False)``, the full byte alphabet).
    Needs the ``tokenizers`` package (a dev/test dependency): without it, a
    ToytorchError says so.
    """
    import json
    import time

    from toytorch.errors import ToytorchError
    from toytorch.tokenizers import train_tokenizer as train

    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        raise ToytorchError(
            "the BPE check needs the tokenizers package: pip install tokenizers"
        ) from None
    t0 = time.perf_counter()
    scratch = json.loads(train("bpe", text, vocab_size).to_json_str())["model"]
    scratch_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator([text], trainer)
    reference = json.loads(hf.to_str())["model"]
    reference_s = time.perf_counter() - t0

    mine, theirs = _merges(scratch), _merges(reference)
    divergence = next(
        (
            f"merge {i}: {a} vs {b}"
            for i, (a, b) in enumerate(zip(mine, theirs, strict=False))
            if a != b
        ),
        None,
    )
    return BPECheck(
        same_vocab=scratch["vocab"] == reference["vocab"],
        same_merges=mine == theirs,
        scratch_s=scratch_s,
        reference_s=reference_s,
        vocab_size=vocab_size,
        first_divergence=divergence,
    )


def _merges(model: dict) -> list[str]:
    """Merges as 'a b' strings (tokenizers writes them as pairs or as strings)."""
    return [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
