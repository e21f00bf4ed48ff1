"""What the loop tells its front end, and how the front end steers the loop.

Events are small frozen dataclasses handed to ``on_event`` on the training thread, in
this order: one :class:`Started`; then :class:`Step` after every optimizer step,
:class:`Evaluated` after each evaluation and :class:`CheckpointSaved` after each save;
finally exactly one of :class:`Finished` (completed or stopped) or :class:`Failed`
(the run raised; ``train`` re-raises after the event).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Started:
    """The run is set up. ``decisions`` are the choices taken, one line each."""

    start_step: int
    total_steps: int
    device: str
    num_parameters: int
    unit: str
    decisions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One optimizer step done. ``items_per_s`` counts ``unit`` (tokens or samples)."""

    step: int
    total_steps: int
    loss: float
    lr: float
    items_per_s: float
    eta_s: float
    unit: str = "tokens"


@dataclass(frozen=True)
class Evaluated:
    """An evaluation on the fixed validation set; ``metrics`` holds all the task gave.

    ``train_loss`` is the mean training loss since the previous evaluation.
    """

    step: int
    metrics: dict[str, float]
    train_loss: float | None = None

    @property
    def val_loss(self) -> float | None:
        return self.metrics.get("val_loss")

    @property
    def perplexity(self) -> float | None:
        return self.metrics.get("perplexity")


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str
    best: bool = False


@dataclass(frozen=True)
class Finished:
    """``reason`` is "completed" (reached the last step) or "stopped" (on request)."""

    step: int
    reason: str
    elapsed_s: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    step: int
    message: str


Event = Started | Step | Evaluated | CheckpointSaved | Finished | Failed


class TrainControl:
    """Thread-safe stop / pause / resume, honoured between optimizer steps.

    A front end calls these from any thread (a signal handler, a button); the loop
    calls :meth:`wait_if_paused` and reads :attr:`stop_requested` after each step.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        """Finish after the current step and save, when there is a checkpoint folder."""
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self) -> float:
        """Block while paused; return the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        t0 = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - t0
