"""``toytorch train`` and ``toytorch generate``: the headless lyric trainer.

Settings come from three layers, later ones winning: the defaults below, a TOML file
(``--config``, keys named like the options, ``-`` or ``_``), then the flags given on
the command line. ``--resume`` takes the model, tokenizer and training settings from
the checkpoint instead, and lets flags change only the run's length and evaluation;
a flag that would change the saved model or schedule is refused.

``--out`` is replaced only when it holds a toytorch checkpoint (and ``--force`` is
given): a file or any other non-empty folder there is refused, even with ``--force``.
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from toytorch.cli.checkpoints import CHECKPOINT_ROOT
from toytorch.errors import ToytorchError

DEFAULTS: dict[str, Any] = {
    "corpus": None,  # None: toytorch.corpora.DEFAULT_CORPUS
    "encoding": None,  # None: UTF-8 (with or without a byte-order mark)
    "tokenizer": "char",
    "vocab_size": None,
    "model": "transformer",
    "layers": 4,
    "heads": 4,
    "width": 128,
    "context": 64,
    "batch_size": 12,
    "max_steps": 2000,
    "epochs": None,
    "lr": 1e-3,
    "min_lr": 1e-4,
    "warmup": 100,  # when not given: min(100, steps // 10), see default_warmup
    "dropout": 0.0,
    "bias": True,
    "tie_weights": True,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "eval_every": 250,
    "eval_batches": 20,
    "val_fraction": 0.1,
    "log_every": 0,
    "device": "auto",
    "seed": 1337,
    "out": None,  # None: checkpoints/<corpus>-<model>
    "compile": False,
    "threads": None,  # None: torch's default (one per core)
}
CHOICES = {"tokenizer": ("char", "word", "bpe"), "model": ("transformer", "lstm")}
# What a resumed run may change; the rest must match the checkpoint.
RESUME_OVERRIDES = (
    "max_steps",
    "epochs",
    "eval_every",
    "log_every",
    "device",
    "compile",
    "threads",
)
# What a resumed run reads besides the checkpoint: where it is and its corpus.
RESUME_INPUTS = ("out", "corpus", "encoding")
# Where the checkpoint keeps the value of a flag a resume may not change.
SAVED_AS = {
    "model": ("model", "arch"),
    "layers": ("model", "n_layer"),
    "heads": ("model", "n_head"),
    "width": ("model", "d_model"),
    "context": ("model", "context"),
    "dropout": ("model", "dropout"),
    "bias": ("model", "bias"),
    "tie_weights": ("model", "tie_weights"),
}


def train_command(
    corpus: Annotated[
        str | None, typer.Option(help="Corpus name or text file (default songbook).")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(help="The corpus's text encoding (default UTF-8).")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="char, word or bpe (default char).")
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(help="Vocabulary limit (word, bpe).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="transformer or lstm (default transformer).")
    ] = None,
    layers: Annotated[int | None, typer.Option(help="Layers (default 4).")] = None,
    heads: Annotated[
        int | None, typer.Option(help="Attention heads (transformer) (default 4).")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Model width d_model (default 128).")
    ] = None,
    context: Annotated[
        int | None, typer.Option(help="Context length T in tokens (default 64).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Windows per step (default 12).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps in total (default 2000).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Passes over the data (replaces steps).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default 1e-3).")
    ] = None,
    min_lr: Annotated[
        float | None, typer.Option(help="Floor of the cosine decay (default 1e-4).")
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(help="Linear warm-up steps (default 100).")
    ] = None,
    dropout: Annotated[
        float | None, typer.Option(help="Dropout (default 0.0).")
    ] = None,
    bias: Annotated[
        bool | None,
        typer.Option("--bias/--no-bias", help="Biases in linear and norm layers."),
    ] = None,
    tie_weights: Annotated[
        bool | None,
        typer.Option(
            "--tie-weights/--no-tie-weights",
            help="The head shares the token embedding (default tied).",
        ),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay, 2-D (default 0.1).")
    ] = None,
    grad_clip: Annotated[
        float | None, typer.Option(help="Gradient-norm clip, 0 off (default 1.0).")
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Evaluate and save every N steps.")
    ] = None,
    eval_batches: Annotated[
        int | None, typer.Option(help="Batches in the fixed eval set (default 20).")
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Last share for validation (default 0.1).")
    ] = None,
    log_every: Annotated[
        int | None, typer.Option(help="Metrics line every N steps (0: at evaluations).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda or cuda:N (default auto).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default 1337).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default checkpoints/NAME).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a run already in --out.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file of settings.")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="CPU threads for torch (default: one per core)."),
    ] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile", help="Use torch.compile.")
    ] = None,
    # --- images (toytorch.cli.vision): --task classify and its own options
    task: Annotated[
        str, typer.Option(help="lm (language model) or classify (images).")
    ] = "lm",
    data: Annotated[
        str | None, typer.Option(help="classify: cifar10 or an image folder.")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="classify: resize images to N x N (32).")
    ] = None,
    augment: Annotated[
        bool, typer.Option(help="classify: random crop + horizontal flip.")
    ] = True,
) -> None:
    """Train a tokenizer and a language model on a corpus, saving checkpoints.

    With --task classify: train a CNN on images (--data cifar10 or an image folder).
    """
    if task != "lm":  # images: the whole path lives in toytorch.cli.vision
        from toytorch.cli.vision import train_images

        return train_images(task, dict(locals()))
    if resume and force:
        raise ToytorchError("--resume and --force contradict each other: pass one")
    flags = {k: v for k, v in locals().items() if k in DEFAULTS and v is not None}
    settings = {**DEFAULTS, **read_toml(config), **flags}
    check_choices(settings)
    if settings["threads"] is not None:
        set_threads(settings["threads"])
    given = {**read_toml(config), **flags}
    if resume:
        run_resumed(settings, given)
    else:
        run_fresh(settings, force, given)


def read_toml(path: Path | None) -> dict[str, Any]:
    """Settings from a TOML file; an unknown key or a bad file is a one-line error."""
    if path is None:
        return {}
    import tomllib

    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToytorchError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ToytorchError(f"config file {path} cannot be read: {e}") from None
    settings = {k.replace("-", "_"): v for k, v in raw.items()}
    if len(settings) < len(raw):
        dashed = {k.replace("_", "-") for k in raw if "_" in k}
        twice = sorted(k for k in raw if k in dashed)
        raise ToytorchError(
            f"config file {path} sets {', '.join(twice)} twice (with - and with _)"
        )
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ToytorchError(
            f"config file {path} has unknown settings: {', '.join(unknown)}"
        )
    for key, value in settings.items():
        settings[key] = _typed(key, value, path)
    return settings


def _typed(key: str, value: Any, path: Path) -> Any:
    default = DEFAULTS[key]
    want = type(default) if default is not None else None
    if key in ("vocab_size", "epochs", "threads"):
        want = int
    if key in ("corpus", "out", "encoding"):
        want = str
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is not None and not isinstance(value, want):
        raise ToytorchError(
            f"config file {path}: {key} must be {want.__name__}, got {value!r}"
        )
    return value


def set_threads(n: int) -> None:
    """Fewer threads than cores can be faster on a busy machine (no waiting on each
    other at every operation)."""
    if n < 1:
        raise ToytorchError(f"--threads must be at least 1, got {n}")
    import torch

    torch.set_num_threads(n)


def check_choices(settings: dict[str, Any]) -> None:
    for key, allowed in CHOICES.items():
        if settings[key] not in allowed:
            raise ToytorchError(
                f"unknown --{key} {settings[key]!r}: use one of {', '.join(allowed)}"
            )
    for key in ("layers", "heads", "width", "context", "batch_size", "max_steps"):
        if settings[key] < 1:
            raise ToytorchError(f"--{key.replace('_', '-')} must be at least 1")


# ------------------------------------------------------------------ a fresh run


def run_fresh(settings: dict[str, Any], force: bool, given: dict[str, Any]) -> None:
    from toytorch.training import checkpoint as ckpt
    from toytorch.training import resolve_device

    resolve_device(settings["device"])  # a missing GPU fails before any work
    if "warmup" not in given:
        settings["warmup"] = default_warmup(settings["max_steps"])
    train_config(settings, None)  # every bad number fails before any work
    corpus_path, text = load_corpus(settings["corpus"], settings["encoding"])
    out = out_dir(settings, corpus_path)
    if ckpt.check_target(out, "--out") and not force:
        raise ToytorchError(
            f"{out} already holds a checkpoint: pass --resume to continue it, --force "
            "to replace it, or --out for another folder"
        )
    ckpt.check_writable(out, "--out")
    tok = make_tokenizer(settings, text)
    corpus = corpus_record(settings["corpus"], corpus_path, text)
    task = make_task(tok, text, corpus, settings)
    config = settle_warmup(train_config(settings, out), task, "warmup" in given)
    model = make_model(settings, tok.vocab_size)
    run_training(model, task, config, resume=False)


def default_warmup(steps: int) -> int:
    """A tenth of the run, at most 100 steps (as the Textual app does), so the
    learning rate peaks early in a short run too."""
    return min(100, steps // 10)


def settle_warmup(config, task, explicit: bool):
    """Fit the warm-up to the run's real length (``--epochs`` sets it from the data);
    a warm-up given explicitly that outlasts the run is refused."""
    import dataclasses

    total = total_steps(config, task)
    if not explicit:
        return dataclasses.replace(config, warmup=default_warmup(total))
    if config.warmup >= total:
        raise ToytorchError(
            f"--warmup {config.warmup} is not below the run's {total} steps: the "
            "learning rate would never reach --lr"
        )
    return config


def total_steps(config, task) -> int:
    if config.epochs is not None:
        return config.epochs * task.steps_per_epoch()
    return config.max_steps


def load_corpus(name: str | None, encoding: str | None = None) -> tuple[Path, str]:
    from toytorch.corpora import DEFAULT_CORPUS, read_corpus, resolve_corpus

    path = resolve_corpus(name or DEFAULT_CORPUS)
    return path, read_corpus(path, encoding=encoding)


def out_dir(settings: dict[str, Any], corpus_path: Path) -> Path:
    if settings["out"]:
        return Path(settings["out"])
    return CHECKPOINT_ROOT / f"{corpus_path.stem}-{settings['model']}"


def make_tokenizer(settings: dict[str, Any], text: str):
    from toytorch.tokenizers import train_tokenizer
    from toytorch.training.distributed import is_main_process

    if is_main_process():  # under torchrun only rank 0 prints
        print(
            f"tokenizer: training {settings['tokenizer']} on {len(text):,} characters"
        )
    return train_tokenizer(settings["tokenizer"], [text], settings["vocab_size"])


def make_task(tok, text: str, corpus: dict[str, Any], settings: dict[str, Any]):
    from toytorch.training import text_task

    try:
        return text_task(
            tok,
            text,
            corpus,
            settings["context"],
            settings["batch_size"],
            settings["val_fraction"],
        )
    except ValueError as e:  # the options were checked first: a last guard
        raise ToytorchError(f"bad training setting: {e}") from None


def make_model(settings: dict[str, Any], vocab_size: int):
    import torch

    from toytorch.models import model_from_config

    common = {
        "vocab_size": vocab_size,
        "context": settings["context"],
        "n_layer": settings["layers"],
        "d_model": settings["width"],
        "dropout": settings["dropout"],
        "tie_weights": settings["tie_weights"],
    }
    if settings["model"] == "transformer":
        config = {
            "arch": "transformer",
            "n_head": settings["heads"],
            "bias": settings["bias"],
            **common,
        }
    else:
        config = {"arch": "lstm", **common}
    torch.manual_seed(settings["seed"])  # the initial weights come from the seed
    try:
        return model_from_config(config)
    except ValueError as e:
        raise ToytorchError(f"bad model setting: {e}") from None


def corpus_record(name: str | None, path: Path, text: str) -> dict[str, Any]:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return {"name": name or path.stem, "path": str(path), "sha256": digest}


# ---------------------------------------------------------------- a resumed run


def run_resumed(settings: dict[str, Any], given: dict[str, Any]) -> None:
    from toytorch.models import model_from_config
    from toytorch.training import checkpoint as ckpt

    if not given.get("out"):
        raise ToytorchError("--resume needs --out, the checkpoint folder to continue")
    out = Path(settings["out"])
    saved = ckpt.read_config(out)
    tok = ckpt.read_tokenizer(out)
    if tok is None:
        raise ToytorchError(f"checkpoint {out} is missing tokenizer.json")
    refuse_changes(saved, tok, given)
    corpus_info = saved.get("task", {}).get("corpus", {})
    corpus_path, text = load_corpus(
        given.get("corpus") or corpus_info.get("path"), given.get("encoding")
    )
    record = corpus_record(corpus_info.get("name"), corpus_path, text)
    if record["sha256"] != corpus_info.get("sha256"):
        raise ToytorchError(
            f"the corpus {corpus_path} is not the text {out} was trained on"
        )
    settings = resumed_settings(saved["training"], given)
    settings["context"] = saved["model"]["context"]
    config = train_config(settings, out)
    model = model_from_config(saved["model"])
    task = make_task(tok, text, record, settings)
    check_beyond(int(saved.get("step", 0)), config, task)
    run_training(model, task, config, resume=True)


def resumed_settings(training: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's training settings with the flags a resume may change."""
    settings = {**DEFAULTS, **training}
    for key in RESUME_OVERRIDES:
        if key in given:
            settings[key] = given[key]
    if "max_steps" in given and "epochs" not in given:
        settings["epochs"] = None  # --max-steps alone replaces a saved epoch count
    return settings


def refuse_changes(saved: dict[str, Any], tok, given: dict[str, Any]) -> None:
    """A resume continues the saved model and schedule: a flag (or TOML setting) that
    would change them, e.g. ``--width 64`` on a width-128 run, is an error."""
    changed = {}
    for key, value in given.items():
        if key in RESUME_OVERRIDES or key in RESUME_INPUTS:
            continue
        if key in SAVED_AS:
            part, name = SAVED_AS[key]
            was = saved.get(part, {}).get(name)
        elif key == "tokenizer":
            was = tok.kind
        elif key == "vocab_size":
            was = tok.vocab_size
        else:
            was = saved.get("training", {}).get(key)
        if value != was:
            changed[key] = was
    if not changed:
        return
    names = ", ".join(option(k) for k in changed)
    if len(changed) == 1:
        has = shown(next(iter(changed.values())))
    else:
        has = ", ".join(f"{option(k)} {shown(v)}" for k, v in changed.items())
    raise ToytorchError(
        f"{names} cannot change when resuming (the checkpoint has {has})"
    )


def check_beyond(step: int, config, task) -> None:
    """A resume must have steps left to run."""
    total = total_steps(config, task)
    if total > step:
        return
    if config.epochs is not None:
        asked = f"--epochs {config.epochs} ({total} steps)"
    else:
        asked = f"--max-steps {total}"
    raise ToytorchError(f"the run is already at step {step}; {asked} is not beyond it")


def option(key: str) -> str:
    return "--" + key.replace("_", "-")


def shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------- training


def train_config(settings: dict[str, Any], out: Path | None):
    """The loop's TrainConfig; a value out of range is a one-line error naming the
    option (``--lr must be > 0, got -1``)."""
    from toytorch.training import TrainConfig
    from toytorch.training.config import ConfigError

    try:
        return TrainConfig(
            max_steps=settings["max_steps"],
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            min_lr=settings["min_lr"],
            warmup=settings["warmup"],
            weight_decay=settings["weight_decay"],
            grad_clip=settings["grad_clip"],
            eval_every=settings["eval_every"],
            eval_batches=settings["eval_batches"],
            val_fraction=settings["val_fraction"],
            log_every=settings["log_every"],
            seed=settings["seed"],
            device=settings["device"],
            compile=settings["compile"],
            out_dir=None if out is None else str(out),
            **({"betas": tuple(settings["betas"])} if "betas" in settings else {}),
        )
    except ConfigError as e:
        value = shown(e.value)
        raise ToytorchError(f"{option(e.name)} must be {e.rule}, got {value}") from None


def run_training(model, task, config, resume: bool) -> None:
    from toytorch.reporting import ConsoleReporter
    from toytorch.training import TrainControl, train
    from toytorch.training.distributed import is_main_process

    control = TrainControl()
    reporter = ConsoleReporter(log_every=config.log_every)
    on_event = reporter if is_main_process() else None  # torchrun: rank 0 reports
    with stop_on_ctrl_c(control, reporter):
        train(model, task, config, on_event, control, resume=resume)


class stop_on_ctrl_c:
    """While active, a first Ctrl-C asks the loop to stop (and save); a second quits."""

    def __init__(self, control, reporter):
        self.control, self.reporter = control, reporter

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.control.stop_requested:
            raise KeyboardInterrupt
        self.control.stop()
        self.reporter.console.print("stopping after this step (Ctrl-C again to quit)")

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False
