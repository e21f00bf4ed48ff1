"""Scratch BPE against Hugging Face tokenizers: training and encoding time.

Both train a byte-level BPE on ../shared/corpora/sherlock.txt fed line by line at vocab
4000, then encode every line (tokenizers with ``encode_batch``, which may use several
threads; the scratch one in one Python thread). Prints the median of 3 runs of each and
the ratios scratch / tokenizers, and checks that merges and ids agree.

Targets (issue 3): training within 4x, encoding within 3x of tokenizers.

Run: .venv/bin/python benchmarks/bench_bpe.py [--corpus PATH] [--vocab-size N]
[--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from toytorch.compare_bpe import hf_byte_level_bpe
from toytorch.tokenizers import BPETokenizer

DEFAULT_CORPUS = (
    Path(__file__).resolve().parents[2] / "shared" / "corpora" / "sherlock.txt"
)


def timed(fn, runs: int):
    """(median wall seconds, median CPU seconds, last result) of ``runs`` calls."""
    wall, cpu, result = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu), result


def report(name: str, mine: tuple, theirs: tuple, target: float) -> None:
    """One line: wall times, their ratio against the target, and CPU times."""
    ratio = mine[0] / theirs[0]
    verdict = "ok" if ratio <= target else "MISSED"
    print(
        f"{name:6}  scratch {mine[0]:6.2f} s   tokenizers {theirs[0]:6.2f} s   "
        f"ratio {ratio:5.2f}x (target <= {target:g}x: {verdict})   "
        f"CPU s: scratch {mine[1]:.2f}, tokenizers {theirs[1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    text = args.corpus.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    print(f"corpus {args.corpus.name}: {len(text):,} characters, {len(lines):,} lines")

    # training
    hf_train = timed(lambda: hf_byte_level_bpe(lines, args.vocab_size), args.runs)
    my_train = timed(lambda: BPETokenizer.train(lines, args.vocab_size), args.runs)
    hf, mine = hf_train[2], my_train[2]
    hf_model = json.loads(hf.to_str())["model"]
    same_merges = [tuple(m) for m in hf_model["merges"]] == mine.merges
    same_vocab = hf_model["vocab"] == mine.vocab

    # encoding (the scratch encoder starts each run with an empty cache)
    def my_encode():
        mine._cache.clear()
        return [mine.encode(line) for line in lines]

    hf_enc = timed(lambda: [e.ids for e in hf.encode_batch(lines)], args.runs)
    my_enc = timed(my_encode, args.runs)

    print(
        f"same vocabulary: {same_vocab}, same merges: {same_merges}, "
        f"same ids: {hf_enc[2] == my_enc[2]}"
    )
    report("train", my_train, hf_train, 4)
    report("encode", my_enc, hf_enc, 3)
    print("(wall-clock medians; tokenizers may use several threads, hence CPU s)")


if __name__ == "__main__":
    main()
