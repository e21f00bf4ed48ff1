"""The toytui application: five tabs (Corpus, Tokenizer, Train, Generate, Classify),
a status line that follows the training from every tab, help, themes and settings.

What the person has chosen so far (corpus, tokenizer, checkpoint) lives on the app, so
every tab sees the same state; each change is remembered in the settings file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from toytui import backend
from toytui.screens.classify import ClassifyView
from toytui.screens.confirm import ConfirmScreen
from toytui.screens.corpus import CorpusView
from toytui.screens.generate import GenerateView
from toytui.screens.help import HelpScreen
from toytui.screens.tokenizer import TokenizerView
from toytui.screens.train import TrainView
from toytui.settings import Settings

TABS = {
    "corpus": ("F2 Corpus", CorpusView),
    "tokenizer": ("F3 Tokenizer", TokenizerView),
    "train": ("F4 Train", TrainView),
    "generate": ("F5 Generate", GenerateView),
    "classify": ("F6 Classify", ClassifyView),
}
THEMES = ("textual-dark", "textual-light")
GIL_SWITCH_S = 0.001


@dataclass
class CorpusChoice:
    """The corpus in use: the name the person chose, its file and its text."""

    name: str
    path: Path
    text: str


class ToyTUI(App):
    """The toytorch terminal app."""

    TITLE = "toytui"
    SUB_TITLE = "tokenize, train and generate with toytorch"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "show_tab('corpus')", "Corpus", show=False),
        Binding("f3", "show_tab('tokenizer')", "Tokenizer", show=False),
        Binding("f4", "show_tab('train')", "Train", show=False),
        Binding("f5", "show_tab('generate')", "Generate", show=False),
        Binding("f6", "show_tab('classify')", "Classify", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings.load()
        self.corpus: CorpusChoice | None = None
        self.tokenizer = None
        self.checkpoint: Path | None = None
        if self.settings.checkpoint and Path(self.settings.checkpoint).is_dir():
            self.checkpoint = Path(self.settings.checkpoint)
        if self.settings.theme in THEMES:
            self.theme = self.settings.theme

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="corpus", id="tabs"):
            for tab_id, (title, view) in TABS.items():
                with TabPane(title, id=tab_id):
                    yield view(id=f"{tab_id}-view")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        # The training thread runs Python between torch calls; a shorter GIL switch
        # interval (default 5 ms) lets the UI thread in sooner, so keys stay snappy.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        self.update_status()
        self.call_after_refresh(self._focus_first, "corpus")

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)

    # ------------------------------------------------------------ shared state

    def set_corpus(self, choice: CorpusChoice) -> None:
        """Use this corpus from now on; a tokenizer of another corpus is dropped."""
        changed = self.corpus is None or self.corpus.path != choice.path
        self.corpus = choice
        if changed and self.tokenizer is not None:
            self.tokenizer = None
        self.settings.corpus = choice.name
        self.settings.save()
        self._broadcast()

    def set_tokenizer(self, tokenizer, restored: bool = False) -> None:
        self.tokenizer = tokenizer
        if not restored:
            self.settings.tokenizer_kind = tokenizer.kind
            self.settings.tokenizer_vocab_size = tokenizer.vocab_size
            self.settings.tokenizer_corpus = self.corpus.name if self.corpus else None
            self.settings.save()
            tokenizer.save(Settings.tokenizer_path())
        self._broadcast()

    def set_checkpoint(self, path: Path) -> None:
        self.checkpoint = path
        self.settings.checkpoint = str(path)
        self.settings.save()
        self._broadcast()

    def restore_tokenizer(self) -> None:
        """Reload the tokenizer of the last run (if it was made for this corpus)."""
        path = Settings.tokenizer_path()
        same_corpus = self.corpus and self.settings.tokenizer_corpus == self.corpus.name
        if self.tokenizer is not None or not same_corpus or not path.is_file():
            return
        from toytorch.errors import ToytorchError

        try:
            tokenizer = backend.load_tokenizer(path)
        except ToytorchError as e:
            self.notify(f"Could not reload the last tokenizer: {e}", severity="warning")
            return
        self.set_tokenizer(tokenizer, restored=True)

    def _broadcast(self) -> None:
        """Tell every tab that the shared state changed, and redraw the status line."""
        for tab_id in TABS:
            self.query_one(f"#{tab_id}-view").state_changed()
        self.update_status()

    def update_status(self, training: str | None = None) -> None:
        """The one-line summary under the tabs; ``training`` is the live part."""
        corpus = self.corpus.name if self.corpus else "-"
        tok = self.tokenizer
        tok_text = f"{tok.kind} ({tok.vocab_size})" if tok is not None else "-"
        ckpt = self.checkpoint.name if self.checkpoint else "-"
        parts = [f"corpus {corpus}", f"tokenizer {tok_text}", f"checkpoint {ckpt}"]
        if training is None:
            training = self.query_one(TrainView).status_text()
        if training:
            parts.append(training)
        self.query_one("#status", Static).update(" · ".join(parts))

    # ------------------------------------------------------------ actions

    def action_show_tab(self, tab_id: str) -> None:
        """Switch tabs and focus the new tab's first field.

        Focus is dropped first: a focused widget left behind in the old tab would
        otherwise pass focus to its neighbour there, which switches straight back.
        """
        self.screen.set_focus(None)
        tabs = self.query_one(TabbedContent)
        tabs.active = tab_id
        self.call_after_refresh(self._focus_first, tab_id)

    def _focus_first(self, tab_id: str) -> None:
        view = self.query_one(f"#{tab_id}-view")
        first = getattr(view, "FIRST_FOCUS", None)
        if first:
            view.query_one(first).focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]
        self.settings.theme = self.theme
        self.settings.save()

    @work(group="quit")
    async def action_quit(self) -> None:
        """Quit; during training ask first, then stop between steps and wait."""
        if isinstance(self.screen, ConfirmScreen):
            return  # already asking
        train = self.query_one(TrainView)
        if train.running:
            question = (
                "Training is running. Stop it after the current step "
                "(the last checkpoint is kept) and quit?"
            )
            if not await self.push_screen_wait(ConfirmScreen(question)):
                return
            await train.stop_and_wait()
        self.query_one(GenerateView).stop_generation()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for tab_id, (title, _) in TABS.items():
            name = title.split(" ", 1)[1]
            yield SystemCommand(
                f"Go to {name}",
                f"Show the {name} tab",
                lambda t=tab_id: self.action_show_tab(t),
            )
        yield SystemCommand(
            "Toggle dark/light",
            "Switch between the dark and light theme",
            self.action_toggle_theme,
        )
        yield SystemCommand("Keys", "List the key bindings", self.action_help)


def main() -> None:
    """Console entry point: ``toytui``."""
    ToyTUI().run()
