"""The help screen: what each tab is for and every key binding."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

GUIDE = """\
[b]toytui[/b]: the whole toytorch job in one window, from left to right:

 [b]F2 Corpus[/b]     pick the text to learn from, or add a file of your own
 [b]F3 Tokenizer[/b]  cut the text into tokens (char, word or BPE)
 [b]F4 Train[/b]      train an LSTM or a Transformer; watch the loss fall
 [b]F5 Generate[/b]   write new text from a checkpoint
 [b]F6 Classify[/b]   a CNN checkpoint names what an image shows
"""

KEYS = [
    ("F1", "this help"),
    ("F2 ... F6", "go to a tab (or click it)"),
    ("Tab / Shift+Tab", "move between fields and buttons"),
    ("Enter", "press the focused button; in a field: train or generate"),
    ("F7", "the tab's main action: Train / Start / Generate"),
    ("F8", "Train: pause or resume; Generate: save the output"),
    ("F9", "stop the training or the generation"),
    ("Ctrl+P", "command palette (tabs, theme, keys)"),
    ("Ctrl+T", "toggle dark / light theme"),
    ("Ctrl+Q", "quit (asks first while training runs)"),
    ("Escape", "close this help or a dialog"),
]


class HelpScreen(ModalScreen[None]):
    """Lists the tabs and the bindings; any of Escape, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in KEYS) + 2
        keys = "\n".join(f" [b]{k.ljust(width)}[/b]{what}" for k, what in KEYS)
        with VerticalScroll(id="help"):
            yield Static(GUIDE + "\n[b]Keys[/b]\n" + keys, id="help-text")
            yield Static("[dim]Escape closes this help[/dim]", id="help-close")

    def action_close(self) -> None:
        self.dismiss(None)
