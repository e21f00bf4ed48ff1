"""``toytorch tokenizer ...``: train a tokenizer, encode with one, compare BPE to HF."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toytorch.errors import ToytorchError

tokenizer_app = typer.Typer(
    help="Train, try out and compare tokenizers (char, word, BPE).",
    no_args_is_help=True,
)
console = Console(highlight=False, soft_wrap=True, emoji=False)  # text as is
CORPUS_HELP = "Corpus name or path of a UTF-8 text file."


def _read_corpus(corpus: str) -> str:
    from toytorch.corpora import read_corpus, resolve_corpus

    return read_corpus(resolve_corpus(corpus))


@contextmanager
def _progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a transient bar on a terminal."""
    from rich.progress import Progress

    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


def _train(kind: str, texts, vocab_size, min_frequency, specials, mode="byte"):
    """Train, with a transient progress bar when stderr is a terminal."""
    from toytorch.tokenizers import BPETokenizer, train_tokenizer

    with _progress_bar(f"training {kind} tokenizer") as progress:
        if kind == "bpe":
            return BPETokenizer.train(
                texts, vocab_size or 1000, min_frequency, specials, mode, progress
            )
        return train_tokenizer(
            kind, texts, vocab_size, min_frequency, specials, progress
        )


@tokenizer_app.command("train")
def train(
    corpus: Annotated[str, typer.Argument(help=CORPUS_HELP)],
    out: Annotated[Path, typer.Option(help="Where to write tokenizer.json.")],
    kind: Annotated[str, typer.Option(help="char, word or bpe.")] = "bpe",
    vocab_size: Annotated[
        int | None, typer.Option(help="Vocabulary size (bpe default 1000).")
    ] = None,
    min_frequency: Annotated[
        int, typer.Option(help="Least count of a kept word (word) or merge (bpe).")
    ] = 0,
    mode: Annotated[str, typer.Option(help="BPE mode: byte or suffix.")] = "byte",
    special: Annotated[
        list[str] | None, typer.Option(help="A special token (repeat for more).")
    ] = None,
) -> None:
    """Train a tokenizer on CORPUS and save it as tokenizer.json."""
    from toytorch.tokenizers import KINDS

    if kind not in KINDS:
        raise ToytorchError(f"unknown --kind {kind!r}: use one of {', '.join(KINDS)}")
    if vocab_size is not None and vocab_size < 1:
        raise ToytorchError(f"--vocab-size must be positive, got {vocab_size}")
    text = _read_corpus(corpus)

    start = time.perf_counter()
    tok = _train(kind, text, vocab_size, min_frequency, special or [], mode)
    seconds = time.perf_counter() - start

    tok.save(out)
    console.print(
        f"trained a {kind} tokenizer: {tok.vocab_size} tokens in {seconds:.2f} s; "
        f"saved {out}"
    )


@tokenizer_app.command("encode")
def encode(
    tokenizer_file: Annotated[Path, typer.Argument(help="A tokenizer.json.")],
    text: Annotated[str, typer.Argument(help="Text to encode.")],
) -> None:
    """Print the ids of TEXT and the token each id stands for."""
    from toytorch.tokenizers import load_tokenizer

    tok = load_tokenizer(tokenizer_file)
    missing = tok.unknown(text)
    if missing and tok.kind == "char":
        shown = ", ".join(repr(m) for m in missing[:10])
        raise ToytorchError(f"TEXT has characters the vocabulary lacks: {shown}")
    ids = tok.encode(text)
    console.print(f"ids ({len(ids)}): {ids}", markup=False)
    console.print(f"tokens: {[tok.token_str(i) for i in ids]}", markup=False)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        console.print(f"unknown (encoded as <unk>): {shown}", markup=False)


@tokenizer_app.command("compare")
def compare(
    corpus: Annotated[str, typer.Argument(help=CORPUS_HELP)],
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size.")] = 1000,
    min_frequency: Annotated[int, typer.Option(help="Least pair count.")] = 0,
) -> None:
    """Train the scratch byte-level BPE and Hugging Face's on CORPUS (line by line)."""
    from toytorch.compare_bpe import compare_with_hf, require_tokenizers

    require_tokenizers()  # before the corpus is read
    lines = _read_corpus(corpus).splitlines(keepends=True)
    with _progress_bar("training bpe tokenizer") as progress:
        c = compare_with_hf(lines, vocab_size, min_frequency, progress=progress)

    console.print(f"same vocabulary: {'yes' if c.same_vocab else 'no'}")
    console.print(f"same merges: {'yes' if c.same_merges else 'no'}")
    if c.first_divergence:
        console.print(c.first_divergence, markup=False)
    console.print(
        f"training time: scratch {c.scratch_s:.2f} s, tokenizers {c.reference_s:.2f} s"
    )
    console.print(
        f"tokens per word: scratch {c.scratch_tokens_per_word:.3f}, "
        f"tokenizers {c.reference_tokens_per_word:.3f}"
    )
