"""The Classify tab: a CNN checkpoint names what an image shows (top-5 classes).

The image comes from the CIFAR-10 test set (type its index; the set is read from
toytorch's data folder, ``toytorch data fetch cifar10`` puts it there) or from an image
file (type its path). It is drawn with half-block characters, two pixels per cell.
"""

from __future__ import annotations

from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from toytui import backend

BAR_WIDTH = 24
NO_CLASSIFIER = (
    "No image classifier yet. Train one with\n"
    "  toytorch train --task classify --data cifar10\n"
    "(checkpoints under checkpoints/ are listed here)."
)


def half_blocks(pixels: list[list[tuple[int, int, int]]]) -> Text:
    """Rows of RGB pixels as text: '▀' with the upper pixel as colour, lower as back."""
    text = Text()
    for top, bottom in zip(pixels[::2], pixels[1::2], strict=False):
        for upper, lower in zip(top, bottom, strict=True):
            text.append("▀", Style(color=_rgb(upper), bgcolor=_rgb(lower)))
        text.append("\n")
    return text


def _rgb(p: tuple[int, int, int]) -> str:
    return f"rgb({p[0]},{p[1]},{p[2]})"


def probability_bars(top: list[tuple[str, float]]) -> Text:
    """One line per class: label, a bar as long as its probability, the percentage."""
    text = Text()
    for label, p in top:
        filled = round(p * BAR_WIDTH)
        text.append(f"{label:<12} ")
        text.append("█" * filled, "bold green")
        text.append("░" * (BAR_WIDTH - filled), "dim")
        text.append(f" {p:6.1%}\n")
    return text


class ClassifyView(Vertical):
    """Pick a classifier checkpoint and an image; show the image and the top 5."""

    FIRST_FOCUS = "#cls-ckpt"
    BINDINGS = [Binding("f7", "classify", "Classify")]

    def compose(self) -> ComposeResult:
        with Horizontal(classes="body"):
            with VerticalScroll(id="cls-form", classes="side"):
                yield Label("Classifier", classes="heading")
                yield Select([], id="cls-ckpt", prompt="(none yet)", compact=True)
                yield Label("Image: CIFAR-10 test index or a file path")
                yield Input("0", id="cls-image", compact=True)
                with Horizontal(classes="buttons"):
                    yield Button("Classify", id="cls-go", variant="success")
                yield Static("", id="cls-message")
            with Horizontal(id="cls-right"):
                yield Static("", id="cls-picture")
                yield Static("", id="cls-top")

    def on_mount(self) -> None:
        reason = backend.missing("toytorch.vision")
        if reason:
            self.show_message(
                f"Classify needs toytorch's vision module: {reason}", True
            )
            return
        self.refresh_classifiers()

    def state_changed(self) -> None:
        """A new checkpoint may be a classifier: refresh the picker."""
        if not backend.missing("toytorch.vision"):
            self.refresh_classifiers()

    @work(thread=True, exclusive=True, group="classifiers")
    def refresh_classifiers(self) -> None:
        paths = backend.list_classifiers(backend.CHECKPOINT_ROOT)
        self.app.call_from_thread(self.show_classifiers, paths)

    def show_classifiers(self, paths: list[Path]) -> None:
        select = self.query_one("#cls-ckpt", Select)
        keep = select.value
        select.set_options([(p.name, str(p)) for p in paths])
        if keep in [str(p) for p in paths]:
            select.value = keep
        if not paths:
            self.show_message(NO_CLASSIFIER)

    def action_classify(self) -> None:
        self.query_one("#cls-go", Button).press()

    @on(Button.Pressed, "#cls-go")
    @on(Input.Submitted, "#cls-image")
    def classify_pressed(self) -> None:
        value = self.query_one("#cls-ckpt", Select).value
        if value is Select.BLANK:
            self.show_message(NO_CLASSIFIER, error=True)
            return
        image = self.query_one("#cls-image", Input).value.strip()
        if not image:
            self.show_message("Type a CIFAR-10 test index or an image path.", True)
            return
        self.show_message("Classifying...")
        self.run_classify(Path(str(value)), image)

    @work(thread=True, exclusive=True, group="classify")
    def run_classify(self, path: Path, image: str) -> None:
        """Load, run and rank off the UI thread; errors become a message."""
        try:
            result = backend.classify(path, image)
        except Exception as e:  # noqa: BLE001 - shown to the user, not raised
            self.app.call_from_thread(self.show_message, str(e), True)
            return
        self.app.call_from_thread(self.show_result, result)

    def show_result(self, result: backend.Classified) -> None:
        self.query_one("#cls-picture", Static).update(half_blocks(result.pixels))
        bars = probability_bars(result.top)
        if result.truth is not None:
            bars.append(f"\ntrue label: {result.truth}")
        self.query_one("#cls-top", Static).update(bars)
        self.show_message("")

    def show_message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#cls-message", Static)
        message.update(text)
        message.set_class(error, "error")
