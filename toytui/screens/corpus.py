"""The Corpus tab: the corpora on offer, adding a file, a preview with statistics."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from toytorch.cli.corpora import format_size  # the CLI's units (1000-based)
from toytui import backend
from toytui.screens.file_picker import FilePickerScreen

PREVIEW_LINES = 30


class CorpusView(Vertical):
    """Choose the text to learn from; the chosen corpus goes to the app's state."""

    FIRST_FOCUS = "#corpus-list"

    def compose(self) -> ComposeResult:
        with Horizontal(classes="body"):
            with Vertical(id="corpus-left", classes="side"):
                yield Label("Corpora (Enter uses one)", classes="heading")
                yield OptionList(id="corpus-list")
                yield Label("Or a file or folder", classes="heading")
                yield Input(placeholder="path/to/lyrics.txt", id="corpus-path")
                with Horizontal(classes="buttons"):
                    yield Button("Use file", id="corpus-use", variant="primary")
                    yield Button("Browse", id="corpus-browse")
            with Vertical(id="corpus-right"):
                yield Static("", id="corpus-title", classes="heading")
                yield Static("", id="corpus-stats")
                yield Static("", id="corpus-message")
                with VerticalScroll(id="corpus-preview-box"):
                    yield Static("", id="corpus-preview", markup=False)

    def on_mount(self) -> None:
        reason = backend.missing("toytorch.corpora")
        if reason:
            self.show_message(f"Corpora are unavailable: {reason}", error=True)
            return
        self.refresh_list()
        first = self.app.settings.corpus or backend.default_corpus()
        self.load(first, restore=True)

    def refresh_list(self) -> None:
        options = self.query_one("#corpus-list", OptionList)
        options.clear_options()
        for entry in backend.list_corpora():
            text = f"{entry.name}  {format_size(entry.size)}  {entry.origin}"
            options.add_option(Option(text, id=entry.name))

    def state_changed(self) -> None:
        """The shared state changed elsewhere (nothing to redraw here)."""

    @on(OptionList.OptionSelected, "#corpus-list")
    def corpus_picked(self, event: OptionList.OptionSelected) -> None:
        self.load(str(event.option.id))

    @on(Button.Pressed, "#corpus-use")
    @on(Input.Submitted, "#corpus-path")
    def use_path(self) -> None:
        text = self.query_one("#corpus-path", Input).value.strip()
        if not text:
            self.show_message("Type the path of a text file first.", error=True)
            return
        self.load(text)

    @on(Button.Pressed, "#corpus-browse")
    def browse(self) -> None:
        """Browse from the folder typed in the path field, else the working folder."""
        typed = Path(self.query_one("#corpus-path", Input).value.strip()).expanduser()
        root = typed if typed.is_dir() else Path.cwd()
        self.app.push_screen(FilePickerScreen(root), self._picked_file)

    def _picked_file(self, path: Path | None) -> None:
        if path is not None:
            self.query_one("#corpus-path", Input).value = str(path)
            self.load(str(path))

    @work(thread=True, exclusive=True, group="corpus")
    def load(self, name: str, restore: bool = False) -> None:
        """Read and measure the corpus off the UI thread, then show it."""
        from toytorch.errors import ToytorchError

        try:
            path, text = backend.load_corpus(name)
            stats = backend.corpus_stats(text)
        except ToytorchError as e:  # its message names the corpus already
            self.app.call_from_thread(self.show_message, str(e), True)
            return
        except OSError as e:
            self.app.call_from_thread(self.show_message, f"{name}: {e.strerror}", True)
            return
        self.app.call_from_thread(self.show_corpus, name, path, text, stats, restore)

    def show_corpus(
        self, name: str, path: Path, text: str, stats: dict, restore: bool
    ) -> None:
        from toytui.app import CorpusChoice

        size = path.stat().st_size
        self.query_one("#corpus-title", Static).update(f"{name} ({format_size(size)})")
        self.query_one("#corpus-stats", Static).update(_stats_text(stats))
        preview = "\n".join(text.splitlines()[:PREVIEW_LINES])
        self.query_one("#corpus-preview", Static).update(preview)
        if size > backend.LARGE_CORPUS_BYTES:
            self.show_message(
                f"This corpus is large ({format_size(size)}): "
                "tokenizing and training will take a while.",
                error=False,
            )
        else:
            self.show_message("")
        self.app.set_corpus(CorpusChoice(name, path, text))
        if restore:
            self.app.restore_tokenizer()

    def show_message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#corpus-message", Static)
        message.update(text)
        message.set_class(error, "error")
        message.set_class(bool(text) and not error, "warning")


def _stats_text(stats: dict[str, int]) -> str:
    names = ("lines", "words", "distinct_words", "characters")
    rows = [f"{n.replace('_', ' ')}: {stats[n]:,}" for n in names if n in stats]
    return "   ".join(rows)
