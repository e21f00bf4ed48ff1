"""Tiny language-model runs for tests/test_distributed.py, on one or more processes.

``worker`` is what each spawned process runs: it sets the variables torchrun would set
and calls the same ``train`` as a single process, so the distributed path under test
is the one ``toytorch train`` takes under torchrun.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch

from toytorch.data import split_by_position
from toytorch.models import (
    LSTMConfig,
    LSTMLanguageModel,
    TransformerConfig,
    TransformerLanguageModel,
)
from toytorch.training import (
    Evaluated,
    LanguageModelTask,
    Step,
    TrainConfig,
    TrainControl,
    train,
)
from toytorch.training import checkpoint as ckpt

ARCHS = ("transformer", "lstm")
VOCAB, CONTEXT, BATCH = 11, 8, 4
STEPS, STOP_AT = 6, 3  # the interrupted runs stop after STOP_AT and resume to STEPS


RUNS_PER_WORKER = 4 * len(ARCHS)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if arch == "transformer":
        # No biases: the key part of in_proj_bias has a gradient that is zero in exact
        # arithmetic (softmax ignores a constant added to a row), so Adam turns its
        # rounding noise (~1e-9) into full-size updates, and no two summation orders
        # (one process or two) agree on it.
        config = TransformerConfig(
            vocab_size=VOCAB,
            context=CONTEXT,
            n_layer=1,
            n_head=2,
            d_model=16,
            bias=False,
        )
        return TransformerLanguageModel(config)
    config = LSTMConfig(vocab_size=VOCAB, context=CONTEXT, n_layer=1, d_model=16)
    return LSTMLanguageModel(config)


def make_task() -> LanguageModelTask:
    """700 ids: a repeating phrase with every fifth token random, so the loss falls."""
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(700) % 7
    noisy = torch.rand(700, generator=g) < 0.2
    ids[noisy] = torch.randint(0, VOCAB, (int(noisy.sum()),), generator=g)
    train_ids, val_ids = split_by_position(ids, 0.2)
    return LanguageModelTask(train_ids, val_ids)


def make_config(out: Path) -> TrainConfig:
    return TrainConfig(
        max_steps=STEPS,
        batch_size=BATCH,
        lr=1e-2,
        min_lr=1e-3,
        warmup=2,
        eval_every=2,
        eval_batches=3,
        device="cpu",
        seed=5,
        out_dir=str(out),
    )


def run(
    arch: str, out: Path, stop_at: int | None = None, resume: bool = False
) -> dict[str, list]:
    """One call to ``train``; returns the step losses and the validation losses.

    ``stop_at`` asks for a stop at that step from rank 0 only: every rank must stop.
    A resumed run starts from a model with other weights, which the checkpoint
    replaces.
    """
    losses, evals = [], []
    control = TrainControl()
    is_main = os.environ.get("RANK", "0") == "0"

    def on_event(e) -> None:
        if isinstance(e, Step):
            losses.append(e.loss)
            if e.step == stop_at and is_main:
                control.stop()
        if isinstance(e, Evaluated):
            evals.append([e.step, e.metrics["val_loss"], e.metrics["perplexity"]])

    model = make_model(arch, seed=99 if resume else 0)
    train(model, make_task(), make_config(out), on_event, control, resume)
    return {"losses": losses, "evals": evals}


def worker(rank: int, world_size: int, ports: list[int], root: str) -> None:
    """One process of a ``world_size``-process group; results go to rankN.json.

    Each run joins a new group on its own port from ``ports``: a rank that reached
    the next run first could otherwise meet the previous run's store, still open.
    """
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
    )
    next_port = iter(ports)
    torch.set_num_threads(1)  # two processes on a small, shared machine
    saves = _count_saves()
    root = Path(root)
    results: dict[str, dict] = {}
    for arch in ARCHS:
        mine = root / f"{arch}-{world_size}"
        runs = {
            "full": dict(out=mine / "full"),
            "part": dict(out=mine / "part", stop_at=STOP_AT),
            "resumed": dict(out=mine / "part", resume=True),
            # the single-process run's checkpoint at STOP_AT, copied by the test
            "cross": dict(out=root / f"{arch}-1" / "cross", resume=True),
        }
        for name, kwargs in runs.items():
            os.environ["MASTER_PORT"] = str(next(next_port))
            results[f"{arch}/{name}"] = run(arch, **kwargs)
    results["saves"] = {"count": saves[0]}
    (root / f"rank{rank}.json").write_text(json.dumps(results))


def _count_saves() -> list[int]:
    """Count this process's calls to ``save_checkpoint`` (the loop looks it up)."""
    count = [0]
    real = ckpt.save_checkpoint

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    ckpt.save_checkpoint = counting
    return count
