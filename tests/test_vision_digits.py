"""Opt-in (slow): the CNN learns real handwritten digits to >= 95% test accuracy.

Run:  .venv/bin/pytest tests/test_vision_digits.py -m slow -q   (a few CPU minutes)
"""

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def _digits_script():
    spec = importlib.util.spec_from_file_location(
        "digits_cnn", ROOT / "benchmarks" / "digits_cnn.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cnn_reaches_95_percent_on_held_out_digits(tmp_path):
    from toytorch.cli.main import app
    from toytorch.training import load_checkpoint
    from toytorch.vision.data import load_test_split
    from toytorch.vision.task import evaluate_split

    folder = tmp_path / "digits"
    _digits_script().write_digits_folder(folder)  # 1,437 train / 360 test images
    out = tmp_path / "ckpt"
    args = ["train", "--task", "classify", "--data", str(folder), "--image-size", "8"]
    args += ["--epochs", "20", "--batch-size", "32", "--lr", "2e-3", "--warmup", "50"]
    args += ["--no-augment", "--threads", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    loaded = load_checkpoint(f"{out}-best")
    info = loaded.config["task"]
    test = load_test_split(str(folder), info["label_names"], 8)
    assert len(test) == 360
    _, accuracy, _ = evaluate_split(loaded.model, test, info["mean"], info["std"])
    print(f"digits test accuracy: {accuracy:.2%}")
    assert accuracy >= 0.95
