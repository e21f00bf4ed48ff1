"""The Tokenizer tab: train char, word or BPE on the corpus and look at the result."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from toytui import backend
from toytui.widgets.fields import FieldError, parse_int, parse_optional_int
from toytui.widgets.tokens import token_text

PROGRESS_EVERY_S = 0.1


class TokenizerView(Vertical):
    """Train a tokenizer; the result goes to the app's state for the Train tab."""

    FIRST_FOCUS = "#tok-kind"

    BINDINGS = [Binding("f7", "press('#tok-train')", "Train")]

    def compose(self) -> ComposeResult:
        with Horizontal(classes="body"):
            with VerticalScroll(id="tok-left", classes="side"):
                yield Label("Tokenizer", classes="heading")
                with Horizontal(classes="row"):
                    yield Label("kind", classes="field-label")
                    yield Select(
                        [(k, k) for k in backend.TOKENIZER_KINDS],
                        value="char",
                        allow_blank=False,
                        id="tok-kind",
                        compact=True,
                    )
                with Horizontal(classes="row"):
                    yield Label("vocab size", classes="field-label")
                    yield Input(id="tok-vocab", compact=True, placeholder="all")
                with Horizontal(classes="row"):
                    yield Label("min frequency", classes="field-label")
                    yield Input("0", id="tok-minfreq", compact=True)
                with Horizontal(classes="buttons"):
                    yield Button("Train", id="tok-train", variant="primary")
                    yield Button("Check BPE", id="tok-check")
                yield ProgressBar(total=1, id="tok-progress", show_eta=False)
                yield Static("", id="tok-message")
            with VerticalScroll(id="tok-right"):
                yield Static("No tokenizer trained yet.", id="tok-summary")
                yield Static("", id="tok-sample")
                yield Static("", id="tok-bpe")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown = None  # the tokenizer whose summary is on screen

    def action_press(self, selector: str) -> None:
        self.query_one(selector, Button).press()

    def state_changed(self) -> None:
        """Show the tokenizer the app holds (e.g. one restored from the settings)."""
        tok = self.app.tokenizer
        if tok is None:
            self.shown = None
            self.query_one("#tok-summary", Static).update("No tokenizer trained yet.")
            self.query_one("#tok-sample", Static).update("")
        elif tok is not self.shown and self.app.corpus is not None:
            self.summarise(tok, self.app.corpus.text)

    @work(thread=True, exclusive=True, group="tok-summary")
    def summarise(self, tok, text: str) -> None:
        """Measure a tokenizer not trained here (a restored one), off the UI thread."""
        summary = backend.summarise_tokenizer(tok, text)
        self.app.call_from_thread(self.show_summary, tok, summary)

    def read_form(self) -> tuple[str, int | None, int]:
        kind = str(self.query_one("#tok-kind", Select).value)
        vocab = parse_optional_int(
            "vocab size", self.query_one("#tok-vocab", Input).value
        )
        minfreq = parse_int(
            "min frequency", self.query_one("#tok-minfreq", Input).value, low=0
        )
        if kind == "bpe" and vocab is None:
            raise FieldError("vocab size", "vocab size: BPE needs one (e.g. 1000)")
        return kind, vocab, minfreq

    @on(Button.Pressed, "#tok-train")
    @on(Input.Submitted, "#tok-vocab, #tok-minfreq")
    def train_pressed(self) -> None:
        if self.app.corpus is None:
            self.show_message("Choose a corpus first (Corpus tab, F2).", error=True)
            return
        try:
            kind, vocab, minfreq = self.read_form()
        except FieldError as e:
            self.show_message(str(e), error=True)
            return
        self.show_message(f"Training a {kind} tokenizer...")
        self.query_one("#tok-progress", ProgressBar).update(total=1, progress=0)
        self.train(kind, vocab, minfreq, self.app.corpus.text)

    @work(thread=True, exclusive=True, group="tokenizer")
    def train(self, kind: str, vocab: int | None, minfreq: int, text: str) -> None:
        """Train off the UI thread; progress is passed on at most 10 times a second."""
        from toytorch.errors import ToytorchError

        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S or done >= total:
                last = now
                self.app.call_from_thread(self._progress, done, total)

        try:
            tok = backend.train_tokenizer(kind, text, vocab, minfreq, progress)
            summary = backend.summarise_tokenizer(tok, text)
        except (ToytorchError, ValueError) as e:
            self.app.call_from_thread(self.show_message, str(e), True)
            return
        self.app.call_from_thread(self._trained, tok, summary)

    def _progress(self, done: int, total: int) -> None:
        self.query_one("#tok-progress", ProgressBar).update(total=total, progress=done)

    def _trained(self, tok, summary: backend.TokenizerSummary) -> None:
        bar = self.query_one("#tok-progress", ProgressBar)
        bar.update(total=1, progress=1)
        self.show_message(f"Trained a {tok.kind} tokenizer.")
        self.show_summary(tok, summary)
        self.app.set_tokenizer(tok)

    def show_summary(self, tok, summary: backend.TokenizerSummary) -> None:
        self.shown = tok
        kind = tok.kind
        longest = "  ".join(repr(t) for t in summary.longest)
        self.query_one("#tok-summary", Static).update(
            Text.assemble(
                ("Tokenizer ", "bold"),
                f"{kind}\n",
                ("vocab size ", "bold"),
                f"{summary.vocab_size:,}\n",
                ("tokens per word ", "bold"),
                f"{summary.tokens_per_word:.2f}\n",
                ("longest tokens ", "bold"),
                longest,
            )
        )
        sample = Text.assemble(("A sample line, token by token:\n", "bold"))
        sample.append_text(token_text(summary.sample_pieces))
        self.query_one("#tok-sample", Static).update(sample)

    @on(Button.Pressed, "#tok-check")
    def check_pressed(self) -> None:
        if self.app.corpus is None:
            self.show_message("Choose a corpus first (Corpus tab, F2).", error=True)
            return
        try:
            vocab = parse_int("vocab size", self.query_one("#tok-vocab", Input).value)
        except FieldError as e:
            self.show_message(f"{e} (the BPE check needs a vocab size)", error=True)
            return
        self.query_one("#tok-bpe", Static).update("Checking BPE against tokenizers...")
        self.check(self.app.corpus.text, vocab)

    @work(thread=True, exclusive=True, group="bpe-check")
    def check(self, text: str, vocab: int) -> None:
        """Train both BPEs off the UI thread and show the comparison."""
        try:
            result = backend.compare_bpe(text, vocab)
        except Exception as e:  # noqa: BLE001 - any failure is shown, not raised
            self.app.call_from_thread(
                self.query_one("#tok-bpe", Static).update, f"BPE check failed: {e}"
            )
            return
        self.app.call_from_thread(self._checked, result)

    def _checked(self, r: backend.Comparison) -> None:
        yes = {True: "yes", False: "no"}
        lines = [
            f"BPE against Hugging Face tokenizers (vocab {r.vocab_size}):",
            f"same vocabulary: {yes[r.same_vocab]}   same merges: {yes[r.same_merges]}",
            f"time: toytorch {r.scratch_s:.2f} s, tokenizers {r.reference_s:.2f} s",
        ]
        if r.first_divergence:
            lines.append(r.first_divergence)
        self.query_one("#tok-bpe", Static).update("\n".join(lines))

    def show_message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#tok-message", Static)
        message.update(text)
        message.set_class(error, "error")
