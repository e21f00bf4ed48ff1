"""The Generate tab: pick a checkpoint, set the sampling, stream new text into view."""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from toytui import backend
from toytui.widgets.fields import (
    FieldError,
    parse_float,
    parse_form,
    parse_int,
    parse_optional_int,
)

STREAM_EVERY_S = 0.05

# field id -> (label, default text, parser of the text)
FIELDS = {
    "temperature": (
        "temperature",
        "0.8",
        partial(parse_float, "temperature", low=0, high=10),
    ),
    "top_k": ("top-k", "", partial(parse_optional_int, "top-k")),
    "top_p": ("top-p", "", lambda t: _optional_top_p(t)),
    "max_tokens": ("length", "200", partial(parse_int, "length", high=100_000)),
    "seed": ("seed", "", partial(parse_optional_int, "seed", low=0)),
}


def _optional_top_p(text: str) -> float | None:
    if not text.strip():
        return None
    return parse_float("top-p", text, 0.0, 1.0, low_open=True)


class GenerateView(Vertical):
    """Write text with a trained language model; tokens appear as they are made."""

    FIRST_FOCUS = "#prompt"  # first in the form, so Tab then reaches the rest in order

    BINDINGS = [
        Binding("f7", "press('#gen-start')", "Generate"),
        Binding("f8", "press('#gen-save')", "Save"),
        Binding("f9", "press('#gen-stop')", "Stop"),
    ]

    class Pieces(Message):
        """Text made since the last message, posted from the generating thread."""

        def __init__(self, text: str, done: bool = False, error: str | None = None):
            super().__init__()
            self.text = text
            self.done = done
            self.error = error

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stop_flag = threading.Event()
        self.finished = threading.Event()
        self.finished.set()
        self.output = ""
        self.running = False
        self.entries: dict[str, backend.CheckpointEntry] = {}
        self.suggested_path = ""  # the save path last filled in for a checkpoint

    def compose(self) -> ComposeResult:
        with Horizontal(classes="body"):
            with VerticalScroll(id="gen-form", classes="side"):
                yield Label("Prompt (may be empty)", classes="heading")
                yield Input(id="prompt", placeholder="the first words")
                yield Label("Checkpoint", classes="heading")
                yield Select(
                    [], id="gen-ckpt", prompt="(none yet: train one)", compact=True
                )
                yield Static("", id="gen-ckpt-info")
                for key, (label, default, _) in FIELDS.items():
                    with Horizontal(classes="row"):
                        yield Label(label, classes="field-label")
                        yield Input(
                            default,
                            id=f"gen-{key}",
                            compact=True,
                            placeholder="off" if key != "seed" else "random",
                        )
                with Horizontal(classes="buttons"):
                    yield Button("Generate", id="gen-start", variant="success")
                    yield Button("Stop", id="gen-stop", variant="error", disabled=True)
                with Horizontal(classes="row"):
                    yield Label("save to", classes="field-label")
                    yield Input(
                        id="save-path", compact=True, placeholder="pick a checkpoint"
                    )
                yield Button("Save output", id="gen-save")
                yield Static("", id="gen-message")
            with VerticalScroll(id="gen-output-box"):
                yield Static("", id="gen-output", markup=False)

    def on_mount(self) -> None:
        self.refresh_checkpoints()

    def action_press(self, selector: str) -> None:
        self.query_one(selector, Button).press()

    def state_changed(self) -> None:
        """A new checkpoint may have been saved: refresh the picker."""
        self.refresh_checkpoints()

    @work(thread=True, exclusive=True, group="checkpoints")
    def refresh_checkpoints(self) -> None:
        """Read the checkpoint folders off the UI thread (it imports torch)."""
        entries = backend.list_checkpoints(backend.CHECKPOINT_ROOT)
        self.app.call_from_thread(self.show_checkpoints, entries)

    def show_checkpoints(self, entries: list[backend.CheckpointEntry]) -> None:
        select = self.query_one("#gen-ckpt", Select)
        self.entries = {str(e.path): e for e in entries}
        keep = self.app.checkpoint or select.value
        select.set_options([(e.label, str(e.path)) for e in entries])
        if keep is not None and str(keep) in self.entries:
            select.value = str(keep)

    @on(Select.Changed, "#gen-ckpt")
    def checkpoint_picked(self, event: Select.Changed) -> None:
        entry = self.entries.get(str(event.value))
        info = self.query_one("#gen-ckpt-info", Static)
        if entry is None:
            info.update("")
            return
        info.update(entry.details)
        self.suggest_save_path(entry.path)
        if self.app.checkpoint != entry.path:
            self.app.set_checkpoint(entry.path)

    def suggest_save_path(self, checkpoint: Path) -> None:
        """Point "save to" at ``<checkpoint>/generated.txt`` unless the user typed one.

        The default lies next to the model that wrote the text, not in the folder the
        app was started from (often a source checkout).
        """
        field = self.query_one("#save-path", Input)
        if not field.value or field.value == self.suggested_path:
            self.suggested_path = str(checkpoint / "generated.txt")
            field.value = self.suggested_path

    # ------------------------------------------------------------ generating

    def read_form(self) -> dict:
        texts = {key: self.query_one(f"#gen-{key}", Input).value for key in FIELDS}
        result = parse_form(texts, {k: p for k, (_, _, p) in FIELDS.items()})
        for key in FIELDS:
            field = self.query_one(f"#gen-{key}", Input)
            field.set_class(key in result.errors, "-invalid")
        if result.errors:
            raise FieldError("", "\n".join(result.errors.values()))
        return result.values

    @on(Button.Pressed, "#gen-start")
    @on(Input.Submitted, "#prompt")
    def start(self) -> None:
        value = self.query_one("#gen-ckpt", Select).value
        if value is Select.BLANK or str(value) not in self.entries:
            self.show_message(
                "Pick a checkpoint first (train one on the Train tab).", error=True
            )
            return
        try:
            settings = self.read_form()
        except FieldError as e:
            self.show_message(str(e), error=True)
            return
        self.output = ""
        self.query_one("#gen-output", Static).update("")
        self.show_message("Generating...")
        self.stop_flag.clear()
        self.finished.clear()
        self.set_running(True)
        prompt = self.query_one("#prompt", Input).value
        self.generate(Path(str(value)), prompt, settings)

    @work(thread=True, exclusive=True, group="generate")
    def generate(self, path: Path, prompt: str, settings: dict) -> None:
        """The generating thread: batches pieces into a message every 50 ms."""
        buffer, last = [], time.monotonic()
        try:
            for piece in backend.stream_text(
                path, prompt, settings, self.stop_flag.is_set
            ):
                buffer.append(piece)
                if time.monotonic() - last >= STREAM_EVERY_S:
                    self.post_message(self.Pieces("".join(buffer)))
                    buffer, last = [], time.monotonic()
            self.post_message(self.Pieces("".join(buffer), done=True))
        except Exception as e:  # noqa: BLE001 - shown to the user, not raised
            self.post_message(self.Pieces("".join(buffer), done=True, error=str(e)))
        finally:
            self.finished.set()

    @on(Pieces)
    def pieces(self, message: Pieces) -> None:
        self.output += message.text
        self.query_one("#gen-output", Static).update(self.output)
        self.query_one("#gen-output-box", VerticalScroll).scroll_end(animate=False)
        if message.done:
            self.set_running(False)
            if message.error:
                self.show_message(f"Generation failed: {message.error}", error=True)
            elif self.stop_flag.is_set():
                self.show_message("Stopped.")
            else:
                self.show_message(f"Done: {len(self.output)} characters.")

    @on(Button.Pressed, "#gen-stop")
    def stop_generation(self) -> None:
        """Stop after the current token (also used when the app quits)."""
        self.stop_flag.set()

    def on_unmount(self) -> None:
        self.stop_flag.set()
        self.finished.wait(timeout=30)

    def set_running(self, running: bool) -> None:
        self.running = running
        self.query_one("#gen-start", Button).disabled = running
        self.query_one("#gen-stop", Button).disabled = not running

    @on(Button.Pressed, "#gen-save")
    def save(self) -> None:
        if not self.output:
            self.show_message("Nothing to save yet: generate first.", error=True)
            return
        path = self.query_one("#save-path", Input).value.strip()
        if not path:
            self.show_message("Say where to save: a file path.", error=True)
            return
        target = Path(path)
        try:
            target.write_text(self.output, encoding="utf-8")
        except OSError as e:
            self.show_message(f"Cannot save to {target}: {e.strerror}", error=True)
            return
        self.show_message(f"Saved {len(self.output)} characters to {target}.")

    def show_message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#gen-message", Static)
        message.update(text)
        message.set_class(error, "error")
