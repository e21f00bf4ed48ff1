"""``toytorch corpora ...``: list, show, add and fetch training texts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from toytorch.corpora import (
    CorpusInfo,
    corpus_info,
    corpus_stats,
    list_corpora,
    read_corpus,
    resolve_corpus,
    split_songs,
    user_corpora_dir,
)
from toytorch.corpora.registry import add_corpus, cached_stats
from toytorch.errors import ToytorchError

corpora_app = typer.Typer(
    help="Training texts: the bundled songbook, your own files, public-domain texts.",
    no_args_is_help=True,
)
console = Console(highlight=False, emoji=False)  # ":x:" in a text stays ":x:"
BAR_BYTES = 16_000_000  # files larger than this are read with a progress bar

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Your corpora folder (default: $TOYTORCH_CORPORA_DIR, else the user data "
        "folder).",
    ),
]
EncodingOption = Annotated[
    str | None,
    typer.Option(help="Decode the file with this encoding (e.g. latin-1), not UTF-8."),
]


@corpora_app.command("list")
def list_command(dir: DirOption = None) -> None:
    """List the bundled corpora and those in your corpora folder."""
    table = Table(title="Corpora")
    for column in ("name", "title", "origin", "size", "lines", "words", "licence"):
        table.add_column(
            column, justify="right" if column in ("size", "lines", "words") else "left"
        )
    for info in list_corpora(dir):
        lines, words = _counts(info)
        size = format_size(info.size_bytes)
        row = (info.name, info.title, info.origin, size, lines, words, info.licence)
        table.add_row(*(Text(cell) for cell in row))  # Text: a title is not markup
    console.print(table)
    console.print(f"your corpora folder: {user_corpora_dir(dir)}", markup=False)


@corpora_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="A corpus name or a file path.")],
    lines: Annotated[
        int, typer.Option(min=0, help="How many first lines to print.")
    ] = 12,
    encoding: EncodingOption = None,
    dir: DirOption = None,
) -> None:
    """Show a corpus's source, statistics and first lines."""
    path = resolve_corpus(name, user_dir=dir)
    info = corpus_info(path, origin=_origin(path, dir))
    text = read_with_progress(path, encoding=encoding)
    stats = corpus_stats(text)
    rows = [
        ("name", info.name),
        ("title", info.title),
        ("file", str(path)),
        ("source", info.source),
        ("licence", info.licence),
        ("size", format_size(info.size_bytes)),
        ("lines", f"{stats.lines:,}"),
        ("words", f"{stats.words:,}"),
        ("distinct words", f"{stats.distinct_words:,}"),
        ("characters", f"{stats.characters:,}"),
        ("songs", str(len(split_songs(text)))),
    ]
    table = Table(show_header=False, box=None)
    for key, value in rows:
        table.add_row(key, Text(value))
    console.print(table)
    console.rule(f"first {lines} lines")
    console.print("\n".join(text.split("\n")[:lines]), markup=False)


@corpora_app.command("add")
def add_command(
    path: Annotated[Path, typer.Argument(help="A UTF-8 text file.")],
    name: Annotated[
        str | None, typer.Option(help="Its corpus name (default: the file's stem).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a corpus of that name.")] = False,
    encoding: EncodingOption = None,
    dir: DirOption = None,
) -> None:
    """Copy a text file into your corpora folder (as UTF-8 with LF newlines)."""
    with reading_bar(path) as progress:
        stored = add_corpus(
            path, name, encoding, force=force, user_dir=dir, progress=progress
        )
    stats = cached_stats(corpus_info(stored, origin="user"))
    console.print(
        f"added corpus '{stored.stem}': {stats.words:,} words, "
        f"{stats.characters:,} characters -> {stored}",
        markup=False,
    )


@corpora_app.command("catalogue")
def catalogue_command(dir: DirOption = None) -> None:
    """List the public-domain texts that 'toytorch corpora fetch' can download."""
    from toytorch.corpora.catalogue import load_catalogue

    folder = user_corpora_dir(dir)
    table = Table(title="Downloadable public-domain texts (Project Gutenberg)")
    for column in ("name", "title", "author", "size", "fetched"):
        table.add_column(column)
    for entry in load_catalogue():
        about = "~" if entry.size_approx else ""
        fetched = "yes" if (folder / f"{entry.name}.txt").is_file() else ""
        row = (
            entry.name,
            entry.title,
            entry.author,
            about + format_size(entry.expected_bytes),
        )
        table.add_row(*(Text(cell) for cell in (*row, fetched)))
    console.print(table)


@corpora_app.command("fetch")
def fetch_command(
    name: Annotated[
        str, typer.Argument(help="A name from 'toytorch corpora catalogue'.")
    ],
    url: Annotated[
        str | None, typer.Option(help="Download from this address instead (a mirror).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Fetch again over an existing copy.")
    ] = False,
    dir: DirOption = None,
) -> None:
    """Download a public-domain text, strip the Gutenberg header and licence."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from toytorch.corpora.fetch import fetch_corpus

    columns = (
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(name, total=None)
        path = fetch_corpus(
            name,
            user_dir=dir,
            url=url,
            force=force,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    stats = corpus_stats(read_with_progress(path))
    console.print(
        f"fetched corpus '{name}': {stats.words:,} words, "
        f"{stats.characters:,} characters -> {path}",
        markup=False,
    )


def read_with_progress(path: Path, encoding: str | None = None) -> str:
    """`read_corpus` with a transient progress bar for files over BAR_BYTES."""
    with reading_bar(path) as progress:
        return read_corpus(path, encoding=encoding, progress=progress)


@contextmanager
def reading_bar(path: Path) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar, or None for a small file."""
    if not path.is_file() or path.stat().st_size <= BAR_BYTES:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    columns = (TextColumn("reading"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(path.name, total=path.stat().st_size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _counts(info: CorpusInfo) -> tuple[str, str]:
    """Lines and words of a corpus, or a short note when it cannot be read."""
    try:
        stats = cached_stats(info)
    except ToytorchError:
        return "unreadable", ""
    return f"{stats.lines:,}", f"{stats.words:,}"


def _origin(path: Path, user_dir: Path | None) -> str:
    for info in list_corpora(user_dir):
        if info.path == path:
            return info.origin
    return "file"


def format_size(n_bytes: int) -> str:
    """Bytes as B / KB / MB in powers of 1000 (28_512 -> "28.5 KB"); the TUI uses it
    too, so both front ends show a corpus with the same size."""
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"
