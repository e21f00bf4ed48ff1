"""Image commands: ``train --task classify``, ``classify``, ``eval``, ``data fetch``.

``toytorch train --task classify --data cifar10|PATH`` trains a ConvClassifier with
the one training loop: it evaluates on the validation split after every epoch and keeps
the best checkpoint by validation accuracy in ``<out>-best``. ``toytorch classify CKPT
IMAGE...`` prints the five likeliest labels of each image; ``toytorch eval CKPT`` the
test accuracy and a confusion matrix; ``toytorch data fetch cifar10`` downloads the
dataset (resuming, MD5-checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toytorch.cli.checkpoints import CHECKPOINT_ROOT, find_checkpoint
from toytorch.errors import ToytorchError

# Settings of `toytorch train` for images; the language-model defaults do not fit.
CLASSIFY_DEFAULTS: dict[str, Any] = {
    "data": None,
    "image_size": 32,
    "augment": True,
    "epochs": 10,
    "max_steps": None,
    "batch_size": 64,
    "lr": 2e-3,
    "min_lr": 1e-5,
    "warmup": 100,
    "dropout": 0.25,
    "weight_decay": 5e-4,
    "grad_clip": 1.0,
    "eval_every": None,  # None: once per epoch
    "val_fraction": 0.1,
    "log_every": 0,
    "device": "auto",
    "seed": 1337,
    "out": None,  # None: checkpoints/<data>-cnn
    "compile": False,
}
LM_ONLY = ("corpus", "tokenizer", "vocab_size", "model", "layers", "heads", "width")
LM_ONLY += ("context", "eval_batches", "config", "bias", "tie_weights")
RESUME_OVERRIDES = ("epochs", "max_steps", "log_every", "device")


# ------------------------------------------------------------------------- train


def train_images(task: str, options: dict[str, Any]) -> None:
    """``toytorch train --task classify``: ``options`` are the command's parameters."""
    if task != "classify":
        raise ToytorchError(f"unknown --task {task!r}: use lm or classify")
    for name in LM_ONLY:
        if options.get(name) is not None:  # a --no-... flag is given too: False
            flag = name.replace("_", "-")
            if isinstance(options[name], bool):
                flag = f"{flag}/--no-{flag}"
            raise ToytorchError(f"--{flag} is for language models, not --task classify")
    given = {
        k: v for k, v in options.items() if k in CLASSIFY_DEFAULTS and v is not None
    }
    if options.get("augment") is True:
        given.pop("augment")  # the flag's default, not a choice
    if options.get("threads") is not None:
        from toytorch.cli.train import set_threads

        set_threads(options["threads"])
    if "max_steps" in given and "epochs" not in given:
        given["epochs"] = None  # --max-steps alone replaces the epoch count
    if options.get("resume"):
        _train_resumed(given)
    else:
        _train_fresh({**CLASSIFY_DEFAULTS, **given}, bool(options.get("force")))


def _train_fresh(settings: dict[str, Any], force: bool) -> None:
    from toytorch.training import resolve_device
    from toytorch.training.checkpoint import check_target, check_writable
    from toytorch.vision.data import load_image_data

    resolve_device(settings["device"])  # a missing GPU fails before any work
    if not settings["data"]:
        raise ToytorchError("--task classify needs --data cifar10 or an image folder")
    out = Path(settings["out"] or CHECKPOINT_ROOT / f"{_data_stem(settings)}-cnn")
    check_writable(out, "--out")
    if check_target(out, "--out") and not force:
        raise ToytorchError(
            f"{out} already holds a checkpoint: pass --resume to continue it, --force "
            "to replace it, or --out for another folder"
        )
    data = load_image_data(
        settings["data"], settings["image_size"], settings["val_fraction"],
        settings["seed"],
    )  # fmt: skip
    model = _make_model(settings, data)
    _run(model, data, settings, out, resume=False)


def _data_stem(settings: dict[str, Any]) -> str:
    return Path(str(settings["data"]).rstrip("/\\")).name or "images"


def _make_model(settings: dict[str, Any], data):
    import torch

    from toytorch.models import ConvClassifier, ConvConfig

    torch.manual_seed(settings["seed"])  # the initial weights come from the seed
    try:
        config = ConvConfig(
            num_classes=len(data.label_names),
            in_channels=data.in_channels,
            image_size=data.image_size,
            dropout=settings["dropout"],
        )
    except ValueError as e:
        raise ToytorchError(f"bad model setting: {e}") from None
    return ConvClassifier(config)


def _train_resumed(given: dict[str, Any]) -> None:
    from toytorch.models import model_from_config
    from toytorch.training import checkpoint as ckpt
    from toytorch.vision.classify import classifier_info
    from toytorch.vision.data import load_image_data

    if not given.get("out"):
        raise ToytorchError("--resume needs --out, the checkpoint folder to continue")
    out = Path(given["out"])
    saved = ckpt.read_config(out)
    info = classifier_info(saved, out)
    settings = {**CLASSIFY_DEFAULTS, **saved["training"], "data": info["data"]}
    settings["image_size"], settings["augment"] = info["image_size"], info["augment"]
    settings.update({k: given[k] for k in RESUME_OVERRIDES if k in given})
    if settings["epochs"] is not None:
        settings["max_steps"] = None  # the saved max_steps was a placeholder
    data = load_image_data(
        settings["data"], settings["image_size"], settings["val_fraction"],
        settings["seed"],
    )  # fmt: skip
    _run(model_from_config(saved["model"]), data, settings, out, resume=True)


def _run(model, data, settings: dict[str, Any], out: Path, resume: bool) -> None:
    from toytorch.cli.train import stop_on_ctrl_c
    from toytorch.reporting import ConsoleReporter
    from toytorch.training import TrainConfig, TrainControl, train
    from toytorch.vision.task import ClassificationTask

    task = ClassificationTask(data, settings["augment"], max(1, data.image_size // 8))
    batch = min(settings["batch_size"], len(data.train))
    eval_every = settings["eval_every"] or max(1, len(data.train) // batch)
    try:
        config = TrainConfig(
            max_steps=settings["max_steps"] or 1,  # unused when epochs is set
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            min_lr=min(settings["min_lr"], settings["lr"]),
            warmup=settings["warmup"],
            weight_decay=settings["weight_decay"],
            grad_clip=settings["grad_clip"],
            eval_every=eval_every,
            val_fraction=settings["val_fraction"],
            log_every=settings["log_every"],
            seed=settings["seed"],
            device=settings["device"],
            compile=settings["compile"],
            out_dir=str(out),
            keep_best=True,
        )
    except ValueError as e:
        raise ToytorchError(f"bad training setting: {e}") from None
    control = TrainControl()
    reporter = ConsoleReporter(log_every=config.log_every)
    with stop_on_ctrl_c(control, reporter):
        train(model, task, config, reporter, control, resume=resume)
    reporter.console.print(f"best checkpoint (by val_accuracy): {out}-best")


# ---------------------------------------------------------------- load a model


def _load_classifier(path: Path, device: str):
    from toytorch.vision.classify import load_classifier

    return load_classifier(find_checkpoint(path), device)


# ---------------------------------------------------------------------- classify


def classify_command(
    checkpoint: Annotated[Path, typer.Argument(help="A classifier checkpoint folder.")],
    images: Annotated[list[Path], typer.Argument(help="PNG or JPEG files.")],
    top: Annotated[int, typer.Option(help="How many labels to show.")] = 5,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Print the likeliest labels of each image, with their probabilities."""
    import torch

    from toytorch.vision.classify import classify
    from toytorch.vision.imagefolder import load_image

    classifier = _load_classifier(checkpoint, device)
    size = classifier.image_size
    pixels = torch.stack([load_image(p, size) for p in images])  # checks all first
    for path, tops in zip(images, classify(classifier, pixels, top), strict=True):
        print(f"{path}:")
        for name, p in tops:
            print(f"  {name:<16} {p:7.2%}")


# -------------------------------------------------------------------------- eval


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A classifier checkpoint folder.")],
    data: Annotated[
        str | None,
        typer.Option(help="cifar10 or an image folder (default: as trained)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Print the test accuracy and the confusion matrix of a classifier."""
    from rich.console import Console

    from toytorch.vision.data import load_test_split
    from toytorch.vision.task import confusion_matrix, evaluate_split

    classifier = _load_classifier(checkpoint, device)
    info = classifier.config["task"]
    training = classifier.config.get("training", {})
    split = load_test_split(
        data or info["data"], classifier.label_names, classifier.image_size,
        training.get("val_fraction", 0.1), training.get("seed", 1337),
    )  # fmt: skip
    loss, accuracy, predicted = evaluate_split(
        classifier.model, split, classifier.mean, classifier.std, classifier.device
    )
    console = Console(highlight=False)
    console.print(
        f"test accuracy {accuracy:.2%} on {len(split):,} images (loss {loss:.4f})",
        markup=False,
    )
    names = classifier.label_names
    counts = confusion_matrix(split.labels, predicted, len(names))
    console.print(_confusion_table(counts, names))


def _confusion_table(counts, names: list[str]):
    """Rows: true label (index and name); columns: predicted label index; recall."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="confusion matrix (rows: true label, columns: predicted)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),  # so ten 4-digit columns fit in 80 characters
    )
    table.add_column("true label", style="bold", no_wrap=True)
    for j in range(len(names)):
        table.add_column(str(j), justify="right", min_width=4, no_wrap=True)
    table.add_column("recall", justify="right", no_wrap=True)
    for i, name in enumerate(names):
        row = counts[i].tolist()
        recall = f"{row[i] / sum(row):.1%}" if sum(row) else "-"
        cells = [f"[green]{v}[/]" if j == i else str(v) for j, v in enumerate(row)]
        table.add_row(f"{i} {name}", *cells, recall)
    return table


# -------------------------------------------------------------------------- data

data_app = typer.Typer(help="Download datasets.", no_args_is_help=True)


@data_app.command("fetch")
def fetch_command(
    name: Annotated[str, typer.Argument(help="The dataset: cifar10.")],
    dir: Annotated[
        Path | None, typer.Option("--dir", help="Folder to put it in.")
    ] = None,
) -> None:
    """Download a dataset (resumes a broken download; checks the MD5)."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from toytorch.vision import cifar

    if name != "cifar10":
        raise ToytorchError(f"unknown dataset {name!r}: the one known is cifar10")
    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()
    ) as progress:
        bar = progress.add_task("cifar-10-python.tar.gz", total=None)

        def report(done: int, total: int | None) -> None:
            progress.update(bar, completed=done, total=total)

        path = cifar.fetch_cifar10(dir, progress=report)
    print(f"cifar10: {path} (MD5 checked)")
