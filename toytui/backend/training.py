"""Devices and the one training loop, for the Train tab."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toytui.backend.checkpoints import CHECKPOINT_ROOT

# ---------------------------------------------------------------- devices


def devices() -> list[tuple[str, str]]:
    """(label, value) pairs: CPU always, then each CUDA device torch sees."""
    import torch

    choices = [("CPU", "cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gib = props.total_memory / 2**30
            choices.append((f"cuda:{i} {props.name} ({gib:.0f} GiB)", f"cuda:{i}"))
    return choices


def check_device(name: str) -> None:
    """A one-line ToytorchError if torch cannot use the device (CUDA without a GPU)."""
    from toytorch.training.device import resolve_device

    resolve_device(name)


# ---------------------------------------------------------------- training


@dataclass
class TrainSpec:
    """Everything the Train form collects (already validated)."""

    arch: str
    n_layer: int
    n_head: int
    d_model: int
    context: int
    batch_size: int
    max_steps: int
    lr: float
    seed: int
    device: str
    eval_every: int
    dropout: float = 0.0
    out_dir: Path = CHECKPOINT_ROOT / "toytui"
    resume: bool = False


@dataclass
class TrainUpdate:
    """A training event, reduced to what the screen draws (made in the worker)."""

    kind: str  # "started" | "step" | "eval" | "checkpoint" | "finished" | "failed"
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    path: str | None = None
    message: str | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)


VAL_FRACTION = 0.1


def new_control():
    from toytorch.training import TrainControl

    return TrainControl()


def run_training(
    spec: TrainSpec, corpus_name: str, text: str, tokenizer, on_update, control
) -> None:
    """Build the model and task from ``spec`` and run the one training loop.

    Runs in a worker thread; ``on_update(TrainUpdate)`` is called from that thread.
    Resuming rebuilds the model and tokenizer saved in ``spec.out_dir`` (the form's
    sizes are then ignored: the saved run decides them).
    """
    import torch

    from toytorch.training import TrainConfig, text_task, train

    torch.manual_seed(spec.seed)  # the model's initialisation is the caller's to seed
    if spec.resume:
        model, tokenizer = _saved_model(spec.out_dir)
    else:
        model = build_model(spec, tokenizer.vocab_size)
    corpus = {"name": corpus_name}
    task = text_task(
        tokenizer, text, corpus, spec.context, spec.batch_size, VAL_FRACTION
    )
    config = TrainConfig(
        max_steps=spec.max_steps,
        batch_size=spec.batch_size,
        lr=spec.lr,
        min_lr=spec.lr / 10,
        warmup=min(100, spec.max_steps // 10),
        eval_every=spec.eval_every,
        eval_batches=4,
        val_fraction=VAL_FRACTION,
        seed=spec.seed,
        device=spec.device,
        out_dir=str(spec.out_dir),
    )
    train(model, task, config, _translator(on_update, spec), control, spec.resume)


def build_model(spec: TrainSpec, vocab_size: int):
    """A fresh Transformer or LSTM language model of the form's sizes."""
    from toytorch import models

    if spec.arch == "lstm":
        config = models.LSTMConfig(
            vocab_size, spec.context, spec.n_layer, spec.d_model, spec.dropout
        )
        return models.LSTMLanguageModel(config)
    config = models.TransformerConfig(
        vocab_size, spec.context, spec.n_layer, spec.n_head, spec.d_model, spec.dropout
    )
    return models.TransformerLanguageModel(config)


def _saved_model(folder: Path):
    """The model (fresh weights; train() loads them) and tokenizer of a saved run."""
    from toytorch.errors import ToytorchError
    from toytorch.models import model_from_config
    from toytorch.tokenizers import load_tokenizer
    from toytorch.training import checkpoint

    config = checkpoint.read_config(folder)
    file = checkpoint.checkpoint_dir(folder) / "tokenizer.json"
    if not file.is_file():
        raise ToytorchError(f"checkpoint {folder} has no tokenizer.json to resume with")
    return model_from_config(config["model"]), load_tokenizer(file)


def _translator(on_update, spec: TrainSpec):
    """The loop's on_event: turns its events into TrainUpdates for the screen."""
    from toytorch.training import events

    def on_event(event) -> None:
        if isinstance(event, events.Started):
            on_update(TrainUpdate("started", event.start_step, event.total_steps))
        elif isinstance(event, events.Step):
            on_update(
                TrainUpdate(
                    "step",
                    event.step,
                    event.total_steps,
                    event.loss,
                    tokens_per_s=event.items_per_s,
                    eta_s=event.eta_s,
                )
            )
        elif isinstance(event, events.Evaluated):
            on_update(TrainUpdate("eval", event.step, val_loss=event.val_loss))
        elif isinstance(event, events.CheckpointSaved):
            on_update(TrainUpdate("checkpoint", event.step, path=event.path))
        elif isinstance(event, events.Finished):
            on_update(
                TrainUpdate(
                    "finished",
                    event.step,
                    message=event.reason,
                    path=str(spec.out_dir),
                )
            )
        # events.Failed: train() re-raises; the worker reports the exception itself

    return on_event
