"""Forward+backward time of toytorch's attention and encoder layer against torch.nn.

Run: .venv/bin/python benchmarks/bench_transformer_layer.py [--threads 1] [--runs 40]

At the baby Shakespeare size (batch 12, context 64, d_model 128, 4 heads, FF 512,
pre-norm, GELU, causal) it times, alternating run by run so a passing load hits both:
the attention core against scaled_dot_product_attention, MultiheadAttention
(need_weights=False) against nn.MultiheadAttention, and a stack of 4
TransformerEncoderLayers against nn.TransformerEncoderLayer. Prints the median and
the minimum time of each and their ratios (toytorch / torch; below 1 is faster).
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from toytorch.layers import MultiheadAttention, TransformerEncoderLayer
from toytorch.layers.attention_core import attention, causal_mask

B, T, C, NH, N_LAYER = 12, 64, 128, 4, 4


def core_pair():
    qkv = torch.randn(B, T, 3, NH, C // NH, requires_grad=True)
    mask = causal_mask(T, T)

    def run(fn):
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hs) each
        fn(q, k, v).sum().backward()

    def mine():
        run(lambda q, k, v: attention(q, k, v, mask)[0])

    def theirs():
        run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))

    return mine, theirs


def mha_pair():
    mine_mha = MultiheadAttention(C, NH, batch_first=True)
    their_mha = nn.MultiheadAttention(C, NH, batch_first=True)
    mask = causal_mask(T, T)
    x = torch.randn(B, T, C, requires_grad=True)

    def mine():
        mine_mha(x, x, x, need_weights=False, is_causal=True)[0].sum().backward()

    def theirs():
        y = their_mha(x, x, x, need_weights=False, attn_mask=mask, is_causal=True)[0]
        y.sum().backward()

    return mine, theirs


def layers_pair():
    def stack(cls):
        torch.manual_seed(0)
        kw = {"dropout": 0.0, "activation": "gelu", "batch_first": True}
        return [cls(C, NH, 4 * C, norm_first=True, **kw) for _ in range(N_LAYER)]

    mine_layers, their_layers = (
        stack(TransformerEncoderLayer),
        stack(nn.TransformerEncoderLayer),
    )
    mask = causal_mask(T, T)
    x = torch.randn(B, T, C, requires_grad=True)

    def mine():
        h = x
        for layer in mine_layers:
            h = layer(h, src_mask=mask, is_causal=True)
        h.sum().backward()

    def theirs():
        h = x
        for layer in their_layers:
            h = layer(h, src_mask=mask, is_causal=True)
        h.sum().backward()

    return mine, theirs


def time_pair(mine, theirs, runs: int) -> tuple[list[float], list[float]]:
    for _ in range(3):  # warm-up
        mine()
        theirs()
    t_mine, t_theirs = [], []
    for _ in range(runs):
        for fn, out in ((mine, t_mine), (theirs, t_theirs)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return t_mine, t_theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"B={B} T={T} C={C} nh={NH} threads={args.threads} runs={args.runs}")
    print(
        f"{'case':<22}{'toytorch ms':>12}{'torch ms':>10}{'ratio':>8}{'min ratio':>11}"
    )
    cases = [("attention core", core_pair), ("MultiheadAttention", mha_pair)]
    cases.append((f"{N_LAYER} encoder layers", layers_pair))
    for name, make in cases:
        t_mine, t_theirs = time_pair(*make(), args.runs)
        ratio = statistics.median(a / b for a, b in zip(t_mine, t_theirs, strict=True))
        med_m, med_t = statistics.median(t_mine), statistics.median(t_theirs)
        best = min(t_mine) / min(t_theirs)
        print(
            f"{name:<22}{med_m * 1e3:>12.2f}{med_t * 1e3:>10.2f}{ratio:>8.3f}"
            f"{best:>11.3f}"
        )


if __name__ == "__main__":
    main()
