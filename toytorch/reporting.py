"""The one reporter of a training run: start-up decisions, a live bar, metric lines.

The ``format_*`` functions turn training events into fixed-format text, so the CLI
(:class:`ConsoleReporter`, a rich progress bar) and the Textual app show the same
words and numbers::

    step  250/2000 | loss 2.0345 | val 2.0812 | ppl 8.01 | lr 9.81e-04 | 4,123 tok/s
    | eta 5m12s   (one line on screen)
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from toytorch.training.events import (
    CheckpointSaved,
    Evaluated,
    Event,
    Failed,
    Finished,
    Started,
    Step,
)

_UNIT_SHORT = {"tokens": "tok", "samples": "samples"}


def format_duration(seconds: float) -> str:
    """``3h02m``, ``5m12s``, ``42s``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def format_rate(items_per_s: float, unit: str) -> str:
    return f"{items_per_s:,.0f} {_UNIT_SHORT.get(unit, unit)}/s"


def format_metrics_line(step: Step, evaluated: Evaluated | None = None) -> str:
    """One fixed-format line: step, loss, validation metrics if given, lr, rate, ETA."""
    width = len(str(step.total_steps))
    parts = [f"step {step.step:>{width}}/{step.total_steps}", f"loss {step.loss:.4f}"]
    if evaluated is not None:
        parts.extend(format_eval_metrics(evaluated.metrics))
    parts += [
        f"lr {step.lr:.2e}",
        format_rate(step.items_per_s, step.unit),
        f"eta {format_duration(step.eta_s)}",
    ]
    return " | ".join(parts)


def format_eval_metrics(metrics: dict[str, float]) -> list[str]:
    """``val 2.0812``, ``ppl 8.01`` and any other metric as ``name value``."""
    names = {"val_loss": ("val", "{:.4f}"), "perplexity": ("ppl", "{:.2f}")}
    out = []
    for key, value in metrics.items():
        label, fmt = names.get(key, (key, "{:.4g}"))
        out.append(f"{label} {fmt.format(value)}")
    return out


def format_summary(finished: Finished, checkpoint: str | None) -> str:
    """The closing line of a run."""
    how = "finished" if finished.reason == "completed" else "stopped"
    text = f"{how} at step {finished.step} in {format_duration(finished.elapsed_s)}"
    if finished.metrics:
        text += ": " + ", ".join(format_eval_metrics(finished.metrics))
    if checkpoint:
        text += f"; checkpoint {checkpoint}"
    return text


class ConsoleReporter:
    """Prints a run to a rich console: call it with each event (``on_event``).

    Start-up decisions are printed one per line, then a live progress bar shows step,
    loss, validation loss, throughput and ETA; each evaluation (and, with
    ``log_every``, each N-th step) adds a fixed-format metrics line above the bar.
    """

    def __init__(self, console: Console | None = None, log_every: int = 0):
        self.console = console or Console(highlight=False)
        self.log_every = log_every
        self.progress: Progress | None = None
        self.bar: TaskID | None = None
        self.last_step: Step | None = None
        self.checkpoint: str | None = None
        self.val = "-"

    def __call__(self, event: Event) -> None:
        handler = {
            Started: self._started,
            Step: self._step,
            Evaluated: self._evaluated,
            CheckpointSaved: self._saved,
            Finished: self._finished,
            Failed: self._failed,
        }[type(event)]
        handler(event)

    def _started(self, e: Started) -> None:
        for line in e.decisions:
            self.console.print(line, markup=False, soft_wrap=True)
        self.progress = Progress(
            TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("eta {task.fields[eta]}"),
            console=self.console,
        )
        self.progress.start()
        self.bar = self.progress.add_task(
            "train",
            total=e.total_steps,
            completed=e.start_step,
            loss="-",
            val="-",
            rate="-",
            eta="?",
        )

    def _step(self, e: Step) -> None:
        self.last_step = e
        self.progress.update(
            self.bar,
            completed=e.step,
            loss=f"{e.loss:.4f}",
            val=self.val,
            rate=format_rate(e.items_per_s, e.unit),
            eta=format_duration(e.eta_s),
        )
        if self.log_every and e.step % self.log_every == 0:
            self._print(format_metrics_line(e))

    def _evaluated(self, e: Evaluated) -> None:
        if "val_loss" in e.metrics:
            self.val = f"{e.metrics['val_loss']:.4f}"
        if self.last_step is not None:
            self._print(format_metrics_line(self.last_step, e))
            self.progress.update(self.bar, val=self.val)

    def _saved(self, e: CheckpointSaved) -> None:
        if not e.best:
            self.checkpoint = e.path

    def _finished(self, e: Finished) -> None:
        self._close()
        summary = format_summary(e, self.checkpoint)
        self.console.print(summary, markup=False, soft_wrap=True)

    def _failed(self, e: Failed) -> None:
        self._close()  # the front end prints the error itself

    def _print(self, line: str) -> None:
        target = self.progress.console if self.progress else self.console
        target.print(line, markup=False, soft_wrap=True)  # one line, even in a log

    def _close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
