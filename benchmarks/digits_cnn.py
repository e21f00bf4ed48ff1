"""Learning on real images: the CNN on scikit-learn's 8x8 handwritten digits.

CIFAR-10 cannot be downloaded everywhere; scikit-learn ships 1,797 real scans of
handwritten digits (8x8, 17 grey levels). This script writes them as an image folder
(``train/<digit>/*.png`` and a held-out ``test/<digit>/*.png``, 20% stratified by a
seed), trains the default-shaped ConvClassifier (two blocks of two convolutions, 16
and 32 channels) through ``toytorch train --task classify``, and evaluates the best
checkpoint on the held-out test images with ``toytorch eval``. Target: >= 95% test
accuracy in a few CPU minutes. Needs scikit-learn (a test-only dependency).

Run:  .venv/bin/python benchmarks/digits_cnn.py [--folder DIR] [--epochs 30]
      [--threads 1]   (one thread by default: on a busy shared machine, more threads
      mostly wait on each other)
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def write_digits_folder(root: Path, test_fraction: float = 0.2, seed: int = 0) -> None:
    """sklearn's digits as PNGs: root/train/<d>/<i>.png and root/test/<d>/<i>.png."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.images * (255 / 16)).round().astype(np.uint8)  # 0..16 -> 0..255
    idx = np.arange(len(pixels))
    train, test = train_test_split(
        idx, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    for split, chosen in (("train", train), ("test", test)):
        for i in chosen:
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i], mode="L").save(folder / f"{i}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="where to write the images")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="digits-"))
    folder = args.folder or work / "digits"
    write_digits_folder(folder)
    out = work / "ckpt"
    toytorch = [sys.executable, "-m", "toytorch.cli.main"]
    train = [
        *toytorch, "train", "--task", "classify", "--data", str(folder),
        "--image-size", "8", "--epochs", str(args.epochs), "--batch-size", "32",
        "--lr", "2e-3", "--warmup", "50", "--dropout", "0.25",
        "--no-augment", "--threads", str(args.threads), "--out", str(out),
    ]  # fmt: skip
    print("$", " ".join(train[2:]), flush=True)
    subprocess.run(train, check=True)
    evaluate = [*toytorch, "eval", f"{out}-best", "--data", str(folder)]
    print("$", " ".join(evaluate[2:]), flush=True)
    subprocess.run(evaluate, check=True)


if __name__ == "__main__":
    main()
