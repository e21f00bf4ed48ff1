"""The toytui application (placeholder until the app lands)."""

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static


class ToyTUI(App):
    """The toytorch terminal app."""

    TITLE = "toytui"
    BINDINGS = [("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("toytui: the app screens are being built.")
        yield Footer()


def main() -> None:
    ToyTUI().run()
