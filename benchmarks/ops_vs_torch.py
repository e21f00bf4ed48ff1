"""Per-op forward+backward time of toytorch's functions and layers against torch's own.

Run: .venv/bin/python benchmarks/ops_vs_torch.py [--threads N] [--rows 768]
[--width 128] [--vocab 65]. Each op runs forward + backward (of its sum) on fixed
inputs; toytorch and torch are timed alternately in the same process, run after run,
and the table shows the median time of each and the median of the per-run ratios
(toytorch / torch; below 1 is faster). The default sizes are those of the baby
Transformer LM step: batch 12 x context 64 = 768 rows, d_model 128, vocab 65.
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from toytorch import func, layers
from toytorch.layers.feedforward import gelu_feed_forward


def _weights(linear1, linear2):
    return linear1.weight, linear1.bias, linear2.weight, linear2.bias


def _time_pair(mine, theirs, reps: int, runs: int) -> tuple[float, float, float]:
    """Median seconds per call of each, and the median of the per-run ratios.

    The two are timed alternately, run after run, so a load that comes and goes on a
    shared machine weighs on both alike.
    """
    for fn in (mine, theirs):  # warm-up
        for _ in range(reps):
            fn()
    t_mine, t_theirs = [], []
    for _ in range(runs):
        for fn, out in ((mine, t_mine), (theirs, t_theirs)):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            out.append((time.perf_counter() - t0) / reps)
    ratios = [a / b for a, b in zip(t_mine, t_theirs, strict=True)]
    return (
        statistics.median(t_mine),
        statistics.median(t_theirs),
        statistics.median(ratios),
    )


def _fwd_bwd(module_or_fn, *inputs):
    """A closure running forward and backward of one op on fixed inputs."""
    leaves = [t for t in inputs if t.is_floating_point() and t.requires_grad]

    def step():
        out = module_or_fn(*inputs)
        out.sum().backward() if out.dim() else out.backward()
        for t in leaves:
            t.grad = None
        if isinstance(module_or_fn, nn.Module):
            module_or_fn.zero_grad(set_to_none=True)

    return step


def _cases(N: int, C: int, V: int):
    x = torch.randn(N, C, requires_grad=True)
    x3 = torch.randn(N, 4 * C, requires_grad=True)
    logits = torch.randn(N, V, requires_grad=True)
    target = torch.randint(0, V, (N,))
    lin_t, lin_m = nn.Linear(C, 4 * C), layers.Linear(C, 4 * C)
    lin_m.load_state_dict(lin_t.state_dict())
    yield "LayerNorm", _fwd_bwd(layers.LayerNorm(C), x), _fwd_bwd(nn.LayerNorm(C), x)
    yield "Linear", _fwd_bwd(lin_m, x), _fwd_bwd(lin_t, x)
    yield "gelu", _fwd_bwd(func.gelu, x3), _fwd_bwd(F.gelu, x3)
    yield (
        "cross_entropy",
        _fwd_bwd(func.cross_entropy, logits, target),
        _fwd_bwd(F.cross_entropy, logits, target),
    )
    yield (
        "softmax",
        _fwd_bwd(lambda t: func.softmax(t, -1), x),
        _fwd_bwd(lambda t: torch.softmax(t, -1), x),
    )
    ff_m = (layers.Linear(C, 4 * C), layers.Linear(4 * C, C))
    ff_t = (nn.Linear(C, 4 * C), nn.Linear(4 * C, C))
    for m, t in zip(ff_m, ff_t, strict=True):
        m.load_state_dict(t.state_dict())
    yield (
        "feed-forward",  # linear2(gelu(linear1(x))), fused in toytorch
        _fwd_bwd(lambda t: gelu_feed_forward(t, *_weights(*ff_m)), x),
        _fwd_bwd(lambda t: ff_t[1](F.gelu(ff_t[0](t))), x),
    )
    ids = torch.randint(0, V, (N,))
    emb_m, emb_t = layers.Embedding(V, C), nn.Embedding(V, C)
    yield "Embedding", _fwd_bwd(emb_m, ids), _fwd_bwd(emb_t, ids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=12 * 64)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"rows={args.rows} width={args.width} vocab={args.vocab} "
        f"threads={torch.get_num_threads()} (median of {args.runs} x {args.reps})"
    )
    print(f"{'op':<14} {'toytorch us':>12} {'torch us':>10} {'ratio':>7}")
    for name, mine, theirs in _cases(args.rows, args.width, args.vocab):
        t_mine, t_theirs, ratio = _time_pair(mine, theirs, args.reps, args.runs)
        print(f"{name:<14} {t_mine * 1e6:12.1f} {t_theirs * 1e6:10.1f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
