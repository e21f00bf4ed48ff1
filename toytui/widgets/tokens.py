"""Drawing a line of text with its token boundaries shown as alternating colours."""

from __future__ import annotations

from rich.text import Text

STYLES = (
    "black on #7fb8e0",
    "black on #e0b97f",
    "black on #9fd49a",
    "black on #d8a0d8",
)


def token_text(pieces: list[str]) -> Text:
    """One span per token, cycling through four background colours.

    Newlines and tabs are drawn as visible marks so a token made of whitespace still
    shows where it starts and ends.
    """
    text = Text()
    for i, piece in enumerate(pieces):
        shown = piece.replace("\n", "⏎").replace("\t", "→")
        text.append(shown or "∅", style=STYLES[i % len(STYLES)])
    return text
