"""Train nanoGPT's baby Shakespeare model twice: toytorch layers vs torch.nn layers.

Both models have the same architecture (pre-norm, GELU, learned positions, untied
head, no biases: benchmarks/shakespeare_char.toml), start from the same weights (the
torch.nn one loads the toytorch one's state_dict) and see the same batches, through
the same training loop (``toytorch.training.train``: AdamW, warm-up and cosine,
clip 1.0). The two runs of a repeat follow each other, in an order that flips every
repeat, so load on the machine and its drift hit both alike; the verdict takes the
median of the per-pair ratios. Target: scratch at most 1.15x torch.nn.

    .venv/bin/python benchmarks/bench_shakespeare.py --steps 150 --repeats 7 --threads 1
    .venv/bin/python benchmarks/bench_shakespeare.py --steps 2000 --repeats 1
    .venv/bin/python benchmarks/bench_shakespeare.py --only scratch --repeats 1

``--only`` trains one of the two, for timing each in a process of its own (e.g. with
``/usr/bin/time``, alternating the two commands). Needs
../shared/corpora/tinyshakespeare.txt (or --corpus PATH).

Last measured (shared 2-core machine, quiet, --steps 150 --repeats 7 --threads 1):
median pair ratio 1.04x; ratio of the medians 1.15x (scratch 14.0 s, torch.nn
12.2 s), the machine's speed drifting by 30% within the run. As whole processes,
--only scratch against --only torch.nn, 300 steps, median of 4 pairs: 1.01x (1.04x
in an earlier run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from toytorch.corpora import read_corpus
from toytorch.data import split_by_position
from toytorch.models import TransformerConfig, TransformerLanguageModel
from toytorch.tokenizers import train_tokenizer
from toytorch.training import Finished, LanguageModelTask, Step, TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


class TorchNNLanguageModel(nn.Module):
    """The same decoder-only Transformer from torch.nn layers, with the same keys."""

    stateful = False

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        C, T = config.d_model, config.context
        self.embed = nn.Embedding(config.vocab_size, C)
        self.pos = nn.Embedding(T, C)  # the learned position table, key pos.weight
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                C,
                config.n_head,
                dim_feedforward=4 * C,
                dropout=config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
                bias=config.bias,
            )
            for _ in range(config.n_layer)
        )
        self.norm = nn.LayerNorm(C, bias=config.bias)
        self.head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.embed.weight
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # True above the diagonal
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, idx: torch.Tensor, state=None):
        B, T = idx.shape
        x = self.embed(idx) + self.pos.weight[:T]  # (B, T, C)
        mask = self.causal_mask[:T, :T]
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        return self.head(self.norm(x)), None  # (B, T, V)


def baby_config(vocab_size: int, **choices) -> TransformerConfig:
    """The toml's model: 4 layers, 4 heads, width 128, context 64, no biases, untied
    head; ``choices`` override the last two (see shakespeare_dev_split.py)."""
    kw = {"bias": False, "tie_weights": False, **choices}
    return TransformerConfig(
        vocab_size=vocab_size, context=64, n_layer=4, n_head=4, d_model=128, **kw
    )


def baby_train_config(steps: int, seed: int, eval_batches: int) -> TrainConfig:
    """The toml's optimizer and schedule, evaluating only at the end."""
    return TrainConfig(
        max_steps=steps,
        batch_size=12,
        lr=1e-3,
        min_lr=1e-4,
        warmup=100,
        weight_decay=0.1,
        betas=(0.9, 0.99),
        grad_clip=1.0,
        eval_every=0,
        eval_batches=eval_batches,
        seed=seed,
        device="cpu",
    )


def build_models(vocab_size: int, seed: int):
    config = baby_config(vocab_size)
    torch.manual_seed(seed)
    scratch = TransformerLanguageModel(config)
    reference = TorchNNLanguageModel(config)
    reference.load_state_dict(scratch.state_dict())
    return scratch, reference


def timed_run(model, ids, steps: int, seed: int) -> dict[str, float]:
    """One training run of ``steps`` steps; returns wall time, rate and losses."""
    config = baby_train_config(steps, seed, eval_batches=1)
    train_ids, val_ids = split_by_position(ids, 0.1)
    task = LanguageModelTask(train_ids, val_ids)
    steps_seen: list[Step] = []
    finished: list[Finished] = []

    def on_event(e):
        if isinstance(e, Step):
            steps_seen.append(e)
        elif isinstance(e, Finished):
            finished.append(e)

    t0 = time.perf_counter()
    train(model, task, config, on_event)
    wall = time.perf_counter() - t0
    tokens = steps * 12 * 64
    return {
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "first_loss": steps_seen[0].loss,
        "last_loss": steps_seen[-1].loss,
        "val_loss": finished[0].metrics.get("val_loss", float("nan")),
    }


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive, default=300)
    parser.add_argument("--repeats", type=positive, default=3)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument(
        "--only", choices=["scratch", "torch.nn"], help="time one model alone"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if not args.corpus.is_file():
        parser.error(f"no corpus at {args.corpus} (pass --corpus PATH)")
    text = read_corpus(args.corpus)
    tok = train_tokenizer("char", [text])
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    print(
        f"corpus {args.corpus.name}: {len(ids):,} chars, vocab {tok.vocab_size}; "
        f"{args.steps} steps x batch 12 x context 64; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )

    # Untimed warm-up: the first AdamW step imports torch._dynamo (seconds), and the
    # allocator and caches settle; without it the first timed run pays for both.
    scratch, reference = build_models(tok.vocab_size, args.seed)
    for name, model in (("scratch", scratch), ("torch.nn", reference)):
        if not args.only or name == args.only:
            timed_run(model, ids, 5, args.seed)

    results: dict[str, list[dict[str, float]]] = {"scratch": [], "torch.nn": []}
    for r in range(args.repeats):
        scratch, reference = build_models(tok.vocab_size, args.seed)
        pair = [("scratch", scratch), ("torch.nn", reference)]
        for name, model in pair if r % 2 == 0 else pair[::-1]:  # ABBA: drift cancels
            if args.only and name != args.only:
                continue
            res = timed_run(model, ids, args.steps, args.seed)
            results[name].append(res)
            print(
                f"run {r + 1} {name:>8}: {res['wall_s']:7.1f} s, "
                f"{res['tokens_per_s']:8,.0f} tok/s, loss {res['first_loss']:.4f} -> "
                f"{res['last_loss']:.4f}, val {res['val_loss']:.4f}",
                flush=True,
            )
    if not args.only:
        report(results, args.steps)


def report(results: dict[str, list[dict[str, float]]], steps: int) -> None:
    """Medians of each model, and the ratio pair by pair.

    The verdict takes the median of the per-pair ratios: the two runs of a pair are
    back to back, so a machine whose speed drifts over minutes (a shared host does,
    by 30% and more) moves both alike; the ratio of the two medians mixes runs from
    different minutes and is printed for comparison.
    """
    med = {k: statistics.median(x["wall_s"] for x in v) for k, v in results.items()}
    tokens = steps * 12 * 64
    for name, wall in med.items():
        print(f"median {name:>8}: {wall:7.1f} s, {tokens / wall:8,.0f} tok/s")
    pairs = [
        a["wall_s"] / b["wall_s"]
        for a, b in zip(results["scratch"], results["torch.nn"], strict=True)
    ]
    print("ratio of each pair: " + ", ".join(f"{p:.3f}" for p in pairs))
    print(f"ratio of the medians: {med['scratch'] / med['torch.nn']:.3f}x")
    ratio = statistics.median(pairs)
    verdict = "meets" if ratio <= 1.15 else "misses"
    print(f"median pair ratio scratch / torch.nn: {ratio:.3f}x ({verdict} the 1.15x)")


if __name__ == "__main__":
    main()
