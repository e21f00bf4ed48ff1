"""Training throughput of 1 vs 2 CPU processes (DDP over gloo) on this machine.

Each configuration trains the same model with the same global batch through the one
training loop (``toytorch.training.train``), in fresh processes that join a gloo group
on 127.0.0.1 as torchrun would start them. Tokens/s is measured on rank 0 between
optimizer steps after a warm-up, so start-up, imports and evaluation are left out;
each configuration runs ``--repeats`` times and the median is printed.

Configurations (threads are torch's intra-op threads per process):

- 1 process x ``cores`` threads: the usual single-process run;
- 2 processes x ``cores // 2`` threads: the same cores split between two DDP ranks;
- 1 process x ``cores // 2`` threads: what one of those ranks would do alone.

There is no target: on a small CPU machine two processes mostly trade torch's own
threading for gloo's gradient all-reduce. The load average is printed before and after,
because a shared machine's other work changes every figure; on an oversubscribed
machine a process with several threads can be far slower than one with a single
thread (its threads wait for each other at every operation), which inflates the
first ratio, so the second one (the same threads per process) is printed too.

    .venv/bin/python benchmarks/bench_distributed.py            # baby Shakespeare model
    .venv/bin/python benchmarks/bench_distributed.py --steps 20 --repeats 2 --width 64
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def corpus_ids() -> tuple[torch.Tensor, str]:
    """Char ids of tinyshakespeare when ../shared has it, else the bundled corpus."""
    from toytorch.corpora import DEFAULT_CORPUS, read_corpus, resolve_corpus
    from toytorch.tokenizers import train_tokenizer

    path = SHARED / "tinyshakespeare.txt"
    if not path.is_file():
        path = resolve_corpus(DEFAULT_CORPUS)
    text = read_corpus(path)
    tok = train_tokenizer("char", [text])
    return torch.tensor(tok.encode(text), dtype=torch.long), path.name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, threads: int, args, out: str) -> None:
    """One rank: join the group (if more than one), train ``repeats`` times."""
    import torch.distributed as dist

    from toytorch.data import split_by_position
    from toytorch.models import TransformerConfig, TransformerLanguageModel
    from toytorch.training import LanguageModelTask, Step, TrainConfig, train

    torch.set_num_threads(threads)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    if world > 1:  # joined once here; the loop sees the group and uses it
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    ids, _ = corpus_ids()
    train_ids, val_ids = split_by_position(ids, 0.1)
    rates = []
    for _ in range(args.repeats):
        torch.manual_seed(1337)
        cfg = TransformerConfig(
            vocab_size=int(ids.max()) + 1,
            context=args.context,
            n_layer=args.layers,
            n_head=args.heads,
            d_model=args.width,
        )
        model = TransformerLanguageModel(cfg)
        config = TrainConfig(
            max_steps=args.steps,
            batch_size=args.batch_size,
            eval_every=0,
            eval_batches=1,
            device="cpu",
        )
        times: list[float] = []

        def on_event(e, times=times) -> None:
            if isinstance(e, Step):
                times.append(time.perf_counter())

        task = LanguageModelTask(train_ids, val_ids)
        train(model, task, config, on_event)
        measured = len(times) - 1 - args.warmup  # steps between the timed marks
        tokens = measured * args.batch_size * args.context
        rates.append(tokens / (times[-1] - times[args.warmup]))
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(rates))


def measure(world: int, threads: int, args) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rates.json")
        mp.start_processes(
            worker,
            (world, free_port(), threads, args, out),
            nprocs=world,
            start_method="spawn",
        )
        return json.loads(Path(out).read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--steps", type=int, default=40, help="steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.batch_size % 2 or args.steps <= args.warmup + 1:
        p.error("--batch-size must be even and --steps > --warmup + 1")

    cores = os.cpu_count() or 1
    half = max(1, cores // 2)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ids, name = corpus_ids()
    print(
        f"model: transformer {args.layers} layers, {args.heads} heads, width "
        f"{args.width}, context {args.context}; global batch {args.batch_size}; "
        f"{name} ({len(ids):,} char ids)"
    )
    print(f"{args.steps} steps per run ({args.warmup} untimed), {args.repeats} runs")
    print(f"cores: {cores}; load average before: {_load()}")

    rows = [(1, cores), (2, half), (1, half)]
    medians = {}
    for world, threads in rows:
        rates = measure(world, threads, args)
        medians[world, threads] = statistics.median(rates)
        shown = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"{world} process(es) x {threads} thread(s): median "
            f"{medians[world, threads]:,.0f} tok/s   (runs: {shown})"
        )
    ratio = medians[2, half] / medians[1, cores]
    print(f"2 processes / 1 process on the same {cores} cores: {ratio:.2f}x tokens/s")
    per_rank = medians[2, half] / medians[1, half]
    print(f"2 processes / 1 process, each with {half} thread(s): {per_rank:.2f}x")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


if __name__ == "__main__":
    main()
