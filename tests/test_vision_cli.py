"""`toytorch train --task classify`, `classify` and `eval` through the real app."""

import json
import sys

import pytest
from typer.testing import CliRunner
from vision_helpers import write_colour_folder

from toytorch.cli.main import app, main

runner = CliRunner()


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Run ``toytorch ARGS`` as the console script does; (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["toytorch", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CNN trained for a few epochs on red vs blue squares (24 images)."""
    root = tmp_path_factory.mktemp("vision")
    images = write_colour_folder(root / "colours", per_class=12)
    out = root / "ckpt"
    args = ["train", "--task", "classify", "--data", str(images), "--image-size", "8"]
    args += ["--epochs", "6", "--batch-size", "4", "--warmup", "5", "--threads", "1"]
    args += ["--out", str(out), "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return images, out, result.output


def test_train_reports_each_epoch_and_keeps_the_best(trained):
    images, out, output = trained
    assert output.count("val_accuracy") >= 6  # one evaluation per epoch (4 steps)
    assert (out / "model.safetensors").is_file()
    best = out.with_name(out.name + "-best")
    config = json.loads((best / "config.json").read_text())
    task = config["task"]
    assert task["kind"] == "classify" and task["label_names"] == ["blue", "red"]
    assert len(task["mean"]) == 3 and len(task["std"]) == 3
    assert config["model"]["arch"] == "cnn"
    metrics = json.loads((best / "metrics.json").read_text())
    best_acc = max(e["val_accuracy"] for e in metrics["evals"])
    assert metrics["best"] == best_acc == 1.0  # the colours are easy to tell apart


def test_classify_prints_the_top_labels(trained):
    images, out, _ = trained
    red, blue = images / "red" / "1.png", images / "blue" / "2.png"
    result = runner.invoke(app, ["classify", f"{out}-best", str(red), str(blue)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{red}:" and lines[1].split()[0] == "red"
    assert lines[3] == f"{blue}:" and lines[4].split()[0] == "blue"
    assert "%" in lines[1]


def test_eval_prints_accuracy_and_confusion_matrix(trained, monkeypatch):
    images, out, _ = trained
    monkeypatch.setenv("COLUMNS", "120")
    result = runner.invoke(app, ["eval", f"{out}-best"])
    assert result.exit_code == 0, result.output
    assert "test accuracy 100.00% on 2 images" in result.output
    assert "confusion matrix" in result.output and "recall" in result.output


def test_bad_inputs_are_one_line_errors(trained, tmp_path, monkeypatch, capsys):
    images, out, _ = trained
    code, err = run_main(monkeypatch, capsys, "classify", str(out), "missing.png")
    assert code == 1 and err.strip() == "error: image missing.png does not exist"

    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    code, err = run_main(monkeypatch, capsys, "classify", str(out), str(fake))
    assert code == 1 and err.startswith(f"error: {fake} is not a readable image")
    assert len(err.strip().splitlines()) == 1

    lm = tmp_path / "lm"
    lm.mkdir()
    for f in out.iterdir():
        if f.is_file():
            (lm / f.name).write_bytes(f.read_bytes())
    config = json.loads((lm / "config.json").read_text())
    config["task"] = {"kind": "LanguageModelTask"}
    (lm / "config.json").write_text(json.dumps(config))
    code, err = run_main(monkeypatch, capsys, "eval", str(lm))
    assert code == 1 and "is not an image classifier" in err

    code, err = run_main(monkeypatch, capsys, "train", "--task", "classify")
    assert code == 1 and "needs --data" in err
    code, err = run_main(
        monkeypatch,
        capsys,
        "train",
        "--task",
        "classify",
        "--data",
        "x",
        "--corpus",
        "y",
    )
    assert code == 1 and "--corpus is for language models" in err
    for flag in ("--no-tie-weights", "--tie-weights", "--no-bias"):
        argv = ["train", "--task", "classify", "--data", "x", flag]
        code, err = run_main(monkeypatch, capsys, *argv)
        name = flag.removeprefix("--no-").removeprefix("--")
        assert code == 1 and f"--{name}/--no-{name} is for language models" in err
    code, err = run_main(monkeypatch, capsys, "train", "--task", "segment")
    assert code == 1 and "unknown --task 'segment'" in err


def test_cifar10_from_the_data_folder_trains_and_evaluates(tmp_path, monkeypatch):
    """--data cifar10 reads the archive `data fetch` puts in the data folder."""
    from vision_helpers import make_cifar, write_cifar_archive

    from toytorch.vision import cifar

    monkeypatch.setenv(cifar.ENV_DIR, str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    write_cifar_archive(tmp_path / "data" / cifar.ARCHIVE_NAME, make_cifar(per_batch=4))
    out = tmp_path / "c10"
    args = ["train", "--task", "classify", "--data", "cifar10", "--epochs", "1"]
    args += ["--batch-size", "6", "--threads", "1", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "18 train / 2 val / 4 test images of 3x32x32, 10 classes" in result.output
    assert "crop (padding 4) + flip" in result.output
    result = runner.invoke(app, ["eval", str(out)])
    assert result.exit_code == 0, result.output
    assert "on 4 images" in result.output and "airplane" in result.output


def test_resume_continues_to_more_epochs(trained, tmp_path):
    images, _, _ = trained
    out = tmp_path / "r"
    args = ["train", "--task", "classify", "--data", str(images), "--image-size", "8"]
    args += ["--batch-size", "4", "--threads", "1", "--out", str(out)]
    assert runner.invoke(app, [*args, "--epochs", "1"]).exit_code == 0
    more = ["train", "--task", "classify", "--resume", "--out", str(out)]
    result = runner.invoke(app, [*more, "--epochs", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert (
        "resumed at step 5" in result.output and "finished at step 10" in result.output
    )
