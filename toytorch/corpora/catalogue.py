"""The catalogue of public-domain texts that ``toytorch corpora fetch`` can download.

The entries are data, in ``catalogue.json`` beside this module: a name (also the name
the corpus gets in the user's folder), title, author, Project Gutenberg ebook number,
the plain-text address (``https://www.gutenberg.org/cache/epub/<id>/pg<id>.txt``),
licence, and the expected size. Sizes are approximate: Project Gutenberg re-issues its
files, so no checksum is pinned and a size only sets expectations (and the progress
bar's total when the server sends none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from toytorch.errors import ToytorchError

CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")


@dataclass(frozen=True)
class CatalogueEntry:
    """One downloadable text.

    Attributes:
        name: short name, a safe corpus name (e.g. ``"shakespeare"``).
        title, author: what the text is.
        ebook: the Project Gutenberg ebook number.
        url: the plain-text UTF-8 address.
        licence: the licence line stored with the corpus.
        expected_bytes: the download's expected size in bytes.
        size_approx: True when ``expected_bytes`` is an estimate.
    """

    name: str
    title: str
    author: str
    ebook: int
    url: str
    licence: str
    expected_bytes: int
    size_approx: bool = True


@cache
def load_catalogue() -> tuple[CatalogueEntry, ...]:
    """Every entry of ``catalogue.json``, in file order."""
    data = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    return tuple(CatalogueEntry(**entry) for entry in data["entries"])


def catalogue_entry(name: str) -> CatalogueEntry:
    """The entry called ``name``; a ToytorchError lists the names when there is none."""
    for entry in load_catalogue():
        if entry.name == name:
            return entry
    names = ", ".join(e.name for e in load_catalogue())
    raise ToytorchError(f"no catalogue entry named '{name}': choose one of {names}")
