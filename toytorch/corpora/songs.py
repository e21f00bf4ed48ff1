"""Splitting a lyrics corpus into songs, so a train/validation split can be by song.

The rule, in order:

1. If any line is a title marker (``#``, a space, then a title, as in
   ``corpora/songbook.txt``), each marker starts a new song; text before the first
   marker, if any, is a song of its own.
2. Otherwise songs are separated by two or more blank lines (a single blank line is the
   break between verses).
3. Otherwise, with no double blank line anywhere, each blank-line-separated block counts
   as a song.

A blank line is one holding only spaces or tabs. Each song comes back with the blank
lines around it removed and one final newline; whitespace-only pieces are dropped.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"^#[ \t]+\S", re.MULTILINE)
_TWO_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_ONE_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def split_songs(text: str) -> list[str]:
    """Split ``text`` into songs by the rule in this module's docstring."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _MARKER.search(text):
        starts = [m.start() for m in _MARKER.finditer(text)]
        bounds = [0, *starts, len(text)]
        pieces = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    elif _TWO_BLANK_LINES.search(text):
        pieces = _TWO_BLANK_LINES.split(text)
    else:
        pieces = _ONE_BLANK_LINE.split(text)
    return [_tidy(p) for p in pieces if p.strip()]


def song_title(song: str) -> str | None:
    """The title of a song that starts with a marker line, else None."""
    first = song.split("\n", 1)[0]
    if _MARKER.match(first):
        return first.lstrip("#").strip()
    return None


def _tidy(piece: str) -> str:
    """Drop the blank lines around a song and end it with one newline."""
    lines = piece.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"
