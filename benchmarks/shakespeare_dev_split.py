"""Compare recipe variants of the baby Shakespeare model without touching validation.

How benchmarks/shakespeare_char.toml chose an untied head: each variant trains on the
first 80% of tinyshakespeare and is scored on the next 10% (the last ninth of the
training split), with the toml's settings otherwise. The real validation split, the
last 10%, is dropped before anything runs, so choosing here cannot fit it.

    .venv/bin/python benchmarks/shakespeare_dev_split.py --variant untied --seed 1
    .venv/bin/python benchmarks/shakespeare_dev_split.py --all --seeds 1337 1

Measured (each run about 3.5 minutes on one thread), dev loss for seeds 1337 / 1:
tied 1.860 / 1.872, tied + biases 1.857 / 1.866, untied 1.825 / 1.838,
untied + biases 1.818 / 1.843.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_shakespeare import baby_config, baby_train_config  # this folder

from toytorch.corpora import read_corpus
from toytorch.data import split_by_position
from toytorch.models import TransformerLanguageModel
from toytorch.tokenizers import train_tokenizer
from toytorch.training import Finished, LanguageModelTask, train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
VARIANTS = {
    "tied": {"bias": False, "tie_weights": True},
    "tied-bias": {"bias": True, "tie_weights": True},
    "untied": {"bias": False, "tie_weights": False},
    "untied-bias": {"bias": True, "tie_weights": False},
}


def dev_splits(path: Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(fit ids, dev ids, vocab size): the first 80% and the next 10% of the text."""
    text = read_corpus(path)
    tok = train_tokenizer("char", [text])
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, _ = split_by_position(ids, 0.1)  # the validation split is dropped
    fit_ids, dev_ids = split_by_position(train_ids, 1 / 9)
    return fit_ids, dev_ids, tok.vocab_size


def dev_loss(variant: str, seed: int, fit_ids, dev_ids, vocab_size: int) -> float:
    """Train the toml's model with ``variant``'s choices; its loss on the dev split."""
    torch.manual_seed(seed)
    model = TransformerLanguageModel(baby_config(vocab_size, **VARIANTS[variant]))
    train_config = baby_train_config(2000, seed, eval_batches=len(dev_ids))
    finished: list[Finished] = []

    def keep_finished(event):
        if isinstance(event, Finished):
            finished.append(event)

    train(model, LanguageModelTask(fit_ids, dev_ids), train_config, keep_finished)
    return finished[0].metrics["val_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="untied")
    parser.add_argument("--all", action="store_true", help="run every variant")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    fit_ids, dev_ids, vocab_size = dev_splits(args.corpus)
    print(f"fit {len(fit_ids):,} chars, dev {len(dev_ids):,} chars, vocab {vocab_size}")
    for variant in sorted(VARIANTS) if args.all else [args.variant]:
        for seed in args.seeds:
            t0 = time.perf_counter()
            loss = dev_loss(variant, seed, fit_ids, dev_ids, vocab_size)
            took = time.perf_counter() - t0
            print(f"{variant:>12} seed {seed:>5}: dev loss {loss:.4f} ({took:.0f} s)")


if __name__ == "__main__":
    main()
