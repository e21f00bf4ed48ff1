"""The Train tab: a validated form, Start / Pause / Stop, live figures and a loss plot.

Training runs in a thread worker that calls the one toytorch training loop. The loop's
events arrive on that thread; ``_Throttle`` passes them on as posted messages at most a
few times a second (every validation, checkpoint and the end are passed on at once), so
a fast model cannot flood the UI. Widgets are touched only in the message handlers, on
the UI thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Select, Static

from toytui import backend
from toytui.widgets.fields import FieldError, parse_float, parse_form, parse_int
from toytui.widgets.loss_plot import LossPlot

POST_EVERY_S = 0.25

# field id -> (label, default text, parser of the text)
FIELDS = {
    "n_layer": ("layers", "2", partial(parse_int, "layers", low=1, high=64)),
    "n_head": ("heads", "2", partial(parse_int, "heads", low=1, high=64)),
    "d_model": ("width", "64", partial(parse_int, "width", low=1, high=8192)),
    "context": ("context", "64", partial(parse_int, "context", low=2, high=16384)),
    "batch_size": ("batch size", "16", partial(parse_int, "batch size", high=4096)),
    "max_steps": ("steps", "300", partial(parse_int, "steps", high=10_000_000)),
    "lr": (
        "learning rate",
        "3e-3",
        partial(parse_float, "learning rate", low=0, high=1, low_open=True),
    ),
    "dropout": ("dropout", "0", partial(parse_float, "dropout", low=0.0, high=0.9)),
    "eval_every": ("eval every", "50", partial(parse_int, "eval every", low=0)),
    "seed": ("seed", "1337", partial(parse_int, "seed", low=0, high=2**32 - 1)),
}
ARCHS = [("Transformer", "transformer"), ("LSTM", "lstm")]


def validate(arch: str, texts: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """Parse every field; add the checks between fields (heads must divide width)."""
    result = parse_form(texts, {k: parser for k, (_, _, parser) in FIELDS.items()})
    values, errors = result.values, result.errors
    if arch == "transformer" and "n_head" in values and "d_model" in values:
        if values["d_model"] % values["n_head"]:
            errors["n_head"] = (
                f"heads: {values['n_head']} does not divide width {values['d_model']}"
            )
    return values, errors


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Throttle:
    """Called on the training thread: forwards updates at most every POST_EVERY_S.

    Step losses in between are collected, so the plot still gets every point.
    """

    def __init__(self, post) -> None:
        self.post = post
        self.last = 0.0
        self.pending: backend.TrainUpdate | None = None
        self.losses: list[tuple[int, float]] = []

    def __call__(self, update: backend.TrainUpdate) -> None:
        if update.kind == "step":
            if update.loss is not None:
                self.losses.append((update.step, update.loss))
            self.pending = update
            if time.monotonic() - self.last >= POST_EVERY_S:
                self.flush()
            return
        self.flush()
        self.post(update)

    def flush(self) -> None:
        if self.pending is not None:
            self.pending.losses = self.losses
            self.post(self.pending)
            self.pending, self.losses = None, []
            self.last = time.monotonic()


class TrainView(Vertical):
    """Train a language model on the app's corpus with the app's tokenizer."""

    FIRST_FOCUS = "#arch"

    BINDINGS = [
        Binding("f7", "start", "Start"),
        Binding("f8", "pause", "Pause/Resume"),
        Binding("f9", "stop", "Stop"),
    ]

    class Progress(Message):
        """A (throttled) training update, posted from the training thread."""

        def __init__(self, update: backend.TrainUpdate) -> None:
            super().__init__()
            self.update = update

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.control = None
        self.running = False
        self.paused = False
        self.thread: threading.Thread | None = None
        self.finished = threading.Event()
        self.finished.set()
        self.last: backend.TrainUpdate | None = None
        self.last_val: float | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="body"):
            with VerticalScroll(id="train-form", classes="side"):
                with Horizontal(classes="row"):
                    yield Label("model", classes="field-label")
                    yield Select(
                        ARCHS,
                        value="transformer",
                        allow_blank=False,
                        id="arch",
                        compact=True,
                    )
                for key, (label, default, _) in FIELDS.items():
                    with Horizontal(classes="row"):
                        yield Label(label, classes="field-label")
                        yield Input(default, id=key, compact=True)
                with Horizontal(classes="row"):
                    yield Label("device", classes="field-label")
                    yield Select(
                        [("CPU", "cpu")],
                        value="cpu",
                        allow_blank=False,
                        id="device",
                        compact=True,
                    )
                with Horizontal(classes="row"):
                    yield Label("output", classes="field-label")
                    yield Input("checkpoints/toytui", id="out_dir", compact=True)
                yield Checkbox("resume from output", id="resume", compact=True)
                yield Static("", id="form-errors", classes="error")
            with Vertical(id="train-right"):
                with Horizontal(classes="buttons"):
                    yield Button("Start", id="start", variant="success")
                    yield Button("Pause", id="pause", disabled=True)
                    yield Button("Stop", id="stop", variant="error", disabled=True)
                yield Static("Not started.", id="train-figures")
                yield ProgressBar(total=1, id="train-progress", show_eta=False)
                yield Static("", id="train-error", classes="error-panel")
                yield LossPlot(id="loss-plot")

    def on_mount(self) -> None:
        self.query_one("#train-error").display = False
        self.load_devices()

    @work(thread=True, group="devices")
    def load_devices(self) -> None:
        """Ask torch for GPUs off the UI thread (importing torch takes a moment)."""
        choices = backend.devices()
        if len(choices) > 1:
            self.app.call_from_thread(
                self.query_one("#device", Select).set_options, choices
            )

    def state_changed(self) -> None:
        """Nothing here depends on the shared state until Start is pressed."""

    # ------------------------------------------------------------ the form

    def form_texts(self) -> dict[str, str]:
        return {key: self.query_one(f"#{key}", Input).value for key in FIELDS}

    def check_form(self) -> tuple[dict, dict[str, str]]:
        """Validate and mark the bad fields; returns (values, errors)."""
        arch = str(self.query_one("#arch", Select).value)
        values, errors = validate(arch, self.form_texts())
        self.query_one("#n_head", Input).disabled = arch == "lstm"
        for key in FIELDS:
            self.query_one(f"#{key}", Input).set_class(key in errors, "-invalid")
        self.query_one("#form-errors", Static).update("\n".join(errors.values()))
        return values, errors

    @on(Input.Changed)
    @on(Select.Changed, "#arch")
    def form_changed(self) -> None:
        """Validate as the person types; a now-valid form clears an old error panel."""
        _, errors = self.check_form()
        if not errors and not self.running:
            self.show_error(None)

    def build_spec(self) -> backend.TrainSpec:
        """The validated run settings, or FieldError / ToytorchError with the cause."""
        values, errors = self.check_form()
        if errors:
            raise FieldError(next(iter(errors)), "\n".join(errors.values()))
        if self.app.corpus is None:
            raise FieldError("corpus", "Choose a corpus first (Corpus tab, F2).")
        if self.app.tokenizer is None:
            raise FieldError(
                "tokenizer", "Train a tokenizer first (Tokenizer tab, F3)."
            )
        device = str(self.query_one("#device", Select).value)
        backend.check_device(device)
        out = self.query_one("#out_dir", Input).value.strip() or "checkpoints/toytui"
        return backend.TrainSpec(
            arch=str(self.query_one("#arch", Select).value),
            device=device,
            out_dir=Path(out),
            resume=self.query_one("#resume", Checkbox).value,
            **values,
        )

    # ------------------------------------------------------------ buttons

    def action_start(self) -> None:
        self.query_one("#start", Button).press()

    def action_pause(self) -> None:
        self.query_one("#pause", Button).press()

    def action_stop(self) -> None:
        self.query_one("#stop", Button).press()

    @on(Button.Pressed, "#start")
    def start(self) -> None:
        from toytorch.errors import ToytorchError

        try:
            spec = self.build_spec()
        except (FieldError, ToytorchError) as e:
            self.show_error(str(e))
            self.app.notify(str(e), severity="error")
            return
        self.reset_run(spec)
        self.control = backend.new_control()
        self.finished.clear()
        self.running, self.paused = True, False
        self.set_buttons()
        corpus = self.app.corpus
        self.run_worker_thread(spec, corpus.name, corpus.text, self.app.tokenizer)

    def reset_run(self, spec: backend.TrainSpec) -> None:
        """A new run starts from a clean slate: figures, progress, ETA and plot."""
        self.show_error(None)
        self.last, self.last_val = None, None
        self.query_one("#train-progress", ProgressBar).update(
            total=spec.max_steps, progress=0
        )
        self.query_one("#train-figures", Static).update("Starting...")
        self.query_one(LossPlot).reset()

    @on(Button.Pressed, "#pause")
    def pause_or_resume(self) -> None:
        if not self.running:
            return
        if self.paused:
            self.control.resume()
        else:
            self.control.pause()
        self.paused = not self.paused
        self.set_buttons()
        self.app.update_status()

    @on(Button.Pressed, "#stop")
    def stop(self) -> None:
        """Ask the loop to stop; it does so between steps, saving a checkpoint."""
        if self.running:
            self.control.stop()
            self.query_one("#train-figures", Static).update(
                "Stopping after this step..."
            )

    def set_buttons(self) -> None:
        self.query_one("#start", Button).disabled = self.running
        self.query_one("#pause", Button).disabled = not self.running
        self.query_one("#pause", Button).label = "Resume" if self.paused else "Pause"
        self.query_one("#stop", Button).disabled = not self.running

    # ------------------------------------------------------------ the worker

    @work(thread=True, exclusive=True, group="train")
    def run_worker_thread(
        self, spec: backend.TrainSpec, corpus: str, text: str, tokenizer
    ) -> None:
        """The training thread: runs the loop; failures become a 'failed' update."""
        self.thread = threading.current_thread()
        throttle = _Throttle(lambda u: self.post_message(self.Progress(u)))
        try:
            backend.run_training(spec, corpus, text, tokenizer, throttle, self.control)
        except Exception as e:  # noqa: BLE001 - shown in the error panel, not raised
            throttle.flush()
            throttle(backend.TrainUpdate("failed", message=_cause(e)))
        finally:
            throttle.flush()
            self.finished.set()

    @on(Progress)
    def progress(self, message: Progress) -> None:
        u = message.update
        if u.kind == "step":
            self.on_step(u)
        elif u.kind == "eval":
            self.query_one(LossPlot).add([], [(u.step, u.val_loss)])
            self.last_val = u.val_loss
            self.on_step(u)
        elif u.kind == "checkpoint" and u.path:
            self.app.set_checkpoint(Path(u.path))
        elif u.kind in ("finished", "failed"):
            self.on_end(u)

    def on_step(self, u: backend.TrainUpdate) -> None:
        if u.losses:
            self.query_one(LossPlot).add(u.losses)
        if u.kind == "step":
            self.last = u
            self.query_one("#train-progress", ProgressBar).update(
                total=u.max_steps, progress=u.step
            )
        self.query_one("#train-figures", Static).update(self.figures())
        self.app.update_status()

    def figures(self) -> str:
        u = self.last
        if u is None:
            return "Starting..."
        val = self.last_val
        parts = [f"step {u.step}/{u.max_steps}", f"loss {u.loss:.4f}"]
        parts.append(f"val {val:.4f}" if val is not None else "val -")
        if u.tokens_per_s:
            parts.append(f"{u.tokens_per_s:,.0f} tok/s")
        if u.eta_s is not None:
            parts.append(f"ETA {format_eta(u.eta_s)}")
        return "  ".join(parts)

    def on_end(self, u: backend.TrainUpdate) -> None:
        self.running, self.paused = False, False
        self.set_buttons()
        if u.kind == "failed":
            self.show_error(f"Training failed: {u.message}")
            self.query_one("#train-figures", Static).update("Failed.")
        else:
            where = f" Checkpoint: {u.path}" if u.path else ""
            self.query_one("#train-figures", Static).update(
                f"{u.message or 'Finished'} at step {u.step}.{where}"
            )
            if u.path:
                self.app.set_checkpoint(Path(u.path))
        self.app.update_status()

    @property
    def error_shown(self) -> bool:
        return bool(self.query_one("#train-error").display)

    def show_error(self, text: str | None) -> None:
        panel = self.query_one("#train-error", Static)
        panel.update(text or "")
        panel.display = bool(text)

    def status_text(self) -> str:
        """The training part of the app's status line ('' when idle)."""
        if not self.running:
            return ""
        if self.last is None:
            return "training: starting"
        state = "paused" if self.paused else "training"
        return f"{state}: step {self.last.step}/{self.last.max_steps}"

    # ------------------------------------------------------------ shutdown

    async def stop_and_wait(self) -> None:
        """Stop between steps and wait for the thread (used when quitting)."""
        if self.control is not None:
            self.control.stop()
        await asyncio.to_thread(self.finished.wait)

    def on_unmount(self) -> None:
        """No training thread outlives the app: stop it and wait for it here."""
        if self.control is not None and not self.finished.is_set():
            self.control.stop()
            self.finished.wait(timeout=60)


def _cause(error: BaseException) -> str:
    """The error as one line, with its type unless it is a user-facing error."""
    from toytorch.errors import ToytorchError

    if isinstance(error, ToytorchError | FieldError):
        return str(error)
    return f"{type(error).__name__}: {error}"
