"""The catalogue, Gutenberg stripping, and fetch against a server on 127.0.0.1."""

import codecs
import hashlib
import json
import re

import pytest
from corpora_http import FileServer
from typer.testing import CliRunner

from toytorch.cli.main import app
from toytorch.corpora import check_name, list_corpora, read_corpus, resolve_corpus
from toytorch.corpora.catalogue import catalogue_entry, load_catalogue
from toytorch.corpora.fetch import fetch_corpus, strip_gutenberg
from toytorch.errors import ToytorchError

BOOK = "\n".join(
    f"Verse {i}: the lantern swings, the river sings, line {i}." for i in range(400)
)
HEADER = (
    "The Project Gutenberg eBook of A Test Songbook\n\n"
    "This ebook is for the use of anyone anywhere in the United States...\n\n"
    "Title: A Test Songbook\n\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK A TEST SONGBOOK ***\n\n\n"
)
FOOTER = (
    "\n\n\n*** END OF THE PROJECT GUTENBERG EBOOK A TEST SONGBOOK ***\n\n"
    "Updated editions will replace the previous one...\n"
    "START: FULL LICENSE\n" + "licence text\n" * 50
)
# As Gutenberg serves it: a BOM and CRLF newlines.
RAW = codecs.BOM_UTF8 + (HEADER + BOOK + FOOTER).replace("\n", "\r\n").encode()


@pytest.fixture
def server():
    with FileServer({"/pg1934.txt": RAW}) as s:
        yield s


def test_catalogue_entries_are_well_formed():
    entries = load_catalogue()

    assert len(entries) >= 6
    assert len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert check_name(e.name) == e.name
        assert (
            e.url == f"https://www.gutenberg.org/cache/epub/{e.ebook}/pg{e.ebook}.txt"
        )
        assert (
            e.expected_bytes > 0 and e.title and e.licence.startswith("public domain")
        )
    ebooks = {e.ebook for e in entries}
    assert {100, 10607, 1934, 13650, 1279} <= ebooks


def test_unknown_catalogue_name():
    names = ", ".join(e.name for e in load_catalogue())
    with pytest.raises(ToytorchError) as e:
        catalogue_entry("nope")
    assert str(e.value) == f"no catalogue entry named 'nope': choose one of {names}"


def test_strip_gutenberg_keeps_only_the_book():
    text = HEADER + BOOK + "\n\nEnd of the Project Gutenberg EBook of X\n" + FOOTER

    assert strip_gutenberg(text) == BOOK + "\n"


def test_strip_gutenberg_old_style_wrapped_marker():
    text = (
        "header\n***START OF THE PROJECT GUTENBERG EBOOK SONGS OF INNOCENCE AND SONGS"
        " OF\nEXPERIENCE***\n\nPiping down\n\n*** END OF THIS PROJECT GUTENBERG EBOOK"
        " SONGS ***\nlicence\n"
    )

    assert strip_gutenberg(text) == "Piping down\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "just a book\n",
            "src has no '*** START OF THE PROJECT GUTENBERG EBOOK ... ***' line",
        ),
        (
            HEADER + BOOK,
            "src has no '*** END OF THE PROJECT GUTENBERG EBOOK ... ***' line",
        ),
        (HEADER + "\n \n" + FOOTER, "src holds nothing between its Gutenberg markers"),
    ],
    ids=["no-start", "no-end", "empty"],
)
def test_strip_gutenberg_refuses_text_without_its_markers(text, message):
    with pytest.raises(ToytorchError) as e:
        strip_gutenberg(text, source="src")
    assert str(e.value) == message


def test_fetch_stores_the_stripped_book_with_its_metadata(server, tmp_path):
    folder = tmp_path / "corpora"
    url = server.url("/pg1934.txt")
    calls = []

    path = fetch_corpus(
        "blake-songs",
        user_dir=folder,
        url=url,
        sha256=hashlib.sha256(RAW).hexdigest(),
        progress=lambda done, total: calls.append((done, total)),
    )

    assert path == folder / "blake-songs.txt"
    assert path.read_bytes() == (BOOK + "\n").encode()  # no BOM, no CR, no licence
    meta = json.loads((folder / "blake-songs.meta.json").read_text())
    assert meta["source"] == url
    assert meta["title"] == "Songs of Innocence and Songs of Experience"
    assert meta["licence"] == "public domain in the USA (Project Gutenberg ebook #1934)"
    assert calls[-1] == (len(RAW), len(RAW))
    assert list((folder / ".downloads").iterdir()) == []
    assert resolve_corpus("blake-songs", user_dir=folder) == path
    assert "blake-songs" in [i.name for i in list_corpora(folder)]


def test_interrupted_fetch_resumes_with_a_range_request(server, tmp_path):
    folder = tmp_path / "corpora"
    url = server.url("/pg1934.txt")
    server.cut_after = 5000

    with pytest.raises(ToytorchError) as e:
        fetch_corpus("blake-songs", user_dir=folder, url=url)
    part = folder / ".downloads" / "blake-songs.gutenberg.txt.part"
    assert str(e.value) == (
        f"download of {url} stopped after 5000 of {len(RAW)} bytes; run again to "
        f"resume from '{part}'"
    )
    assert part.stat().st_size == 5000

    path = fetch_corpus("blake-songs", user_dir=folder, url=url)

    assert server.requests[-1]["range"] == "bytes=5000-"
    assert read_corpus(path) == BOOK + "\n"


def test_fetch_checksum_mismatch_stores_nothing(server, tmp_path):
    folder = tmp_path / "corpora"
    url = server.url("/pg1934.txt")

    with pytest.raises(ToytorchError) as e:
        fetch_corpus("blake-songs", user_dir=folder, url=url, sha256="ab" * 32)

    assert str(e.value) == (
        f"download of {url} failed its sha256 check: expected {'ab' * 32}, got "
        f"{hashlib.sha256(RAW).hexdigest()}"
    )
    assert not (folder / "blake-songs.txt").exists()


def test_fetch_refuses_to_overwrite_without_force(server, tmp_path):
    folder = tmp_path / "corpora"
    url = server.url("/pg1934.txt")
    fetch_corpus("blake-songs", user_dir=folder, url=url)

    with pytest.raises(ToytorchError) as e:
        fetch_corpus("blake-songs", user_dir=folder, url=url)

    assert str(e.value) == (
        f"corpus 'blake-songs' already exists in '{folder}': pass --force to fetch it "
        "again"
    )
    fetch_corpus("blake-songs", user_dir=folder, url=url, force=True)
    assert len(server.requests) == 2


def test_cli_fetch_and_catalogue(server, tmp_path):
    folder = tmp_path / "corpora"
    runner = CliRunner()

    result = runner.invoke(
        app,
        [
            "corpora",
            "fetch",
            "blake-songs",
            "--dir",
            str(folder),
            "--url",
            server.url("/pg1934.txt"),
        ],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    assert re.search(r"fetched corpus 'blake-songs': 4,\d{3} words", result.output)
    assert (folder / "blake-songs.txt").read_text() == BOOK + "\n"

    listing = runner.invoke(
        app, ["corpora", "catalogue", "--dir", str(folder)], env={"COLUMNS": "200"}
    )
    assert listing.exit_code == 0
    blake_row = next(r for r in listing.output.splitlines() if "blake-songs" in r)
    assert "yes" in blake_row
