"""Scratch Convolution against nn.Conv2d: forward+backward time and peak memory.

Two shapes, as in the issue: a batch of 128 images 3x32x32 -> 64 channels, and
64 -> 64 channels at 32x32, kernel 3, padding 1. Targets: time within 1.5x and peak
memory within 2x of nn.Conv2d, measured in the same run.

Time: forward + backward (with a fixed random output gradient), scratch and reference
interleaved, median of --repeats runs after one warm-up each.

Memory, two measures:
- peak RSS: each (layer, shape) runs in a fresh subprocess, one small warm-up pass
  first (so library code is paged in), then one full pass; the figure is the rise of
  the high-water mark VmHWM over the resident size VmRSS just before the full pass
  (both from /proc/self/status, so Linux only), inputs, output gradient and
  parameters already allocated. It counts everything the pass allocates, temporaries
  included. (Not ru_maxrss: Linux carries the parent's peak over into the child.)
- saved for backward: the bytes of the distinct tensors autograd keeps between forward
  and backward, counted with torch.autograd.graph.saved_tensors_hooks.

Run:  .venv/bin/python benchmarks/bench_conv.py [--repeats 7] [--threads N]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from toytorch.layers.conv import Convolution

SHAPES = {"3->64": (128, 3, 64, 32), "64->64": (128, 64, 64, 32)}  # B, C_in, C_out, HW


def make(kind: str, shape: str, seed: int = 0):
    """A layer (scratch or torch), an input needing grad and a fixed output gradient."""
    B, C_in, C_out, HW = SHAPES[shape]
    torch.manual_seed(seed)
    ref = nn.Conv2d(C_in, C_out, 3, padding=1)
    layer = ref
    if kind == "scratch":
        layer = Convolution(C_in, C_out, 3, padding=1)
        layer.load_state_dict(ref.state_dict())
    x = torch.randn(B, C_in, HW, HW, requires_grad=True)
    grad = torch.randn(B, C_out, HW, HW)
    return layer, x, grad


def step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    x.grad = None
    layer.zero_grad(set_to_none=True)
    layer(x).backward(grad)


def time_pair(shape: str, repeats: int) -> dict[str, float]:
    """Median seconds of forward+backward for both layers, runs interleaved."""
    setups = {kind: make(kind, shape) for kind in ("scratch", "torch")}
    times: dict[str, list[float]] = {kind: [] for kind in setups}
    for args in setups.values():
        step(*args)  # warm-up
    for _ in range(repeats):
        for kind, args in setups.items():
            t0 = time.perf_counter()
            step(*args)
            times[kind].append(time.perf_counter() - t0)
    return {kind: statistics.median(ts) for kind, ts in times.items()}


def saved_bytes(kind: str, shape: str) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one forward."""
    layer, x, _ = make(kind, shape)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(storages.values())


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_child(kind: str, shape: str) -> None:
    """In a subprocess: print the rise of peak RSS during one forward+backward."""
    layer, x, grad = make(kind, shape)
    step(layer, x[:2].detach().requires_grad_(), grad[:2])  # page in the library code
    before = _status_bytes("VmRSS")
    step(layer, x, grad)
    print(json.dumps({"peak": max(0, _status_bytes("VmHWM") - before)}))


def peak_rss(kind: str, shape: str, threads: int) -> int:
    cmd = [sys.executable, __file__, "--child", kind, shape, "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SHAPE"), help="internal")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        peak_child(*args.child)
        return

    print(
        f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}"
    )
    mib = 2**20
    for shape in SHAPES:
        t = time_pair(shape, args.repeats)
        rss = {k: peak_rss(k, shape, args.threads) for k in ("scratch", "torch")}
        saved = {k: saved_bytes(k, shape) for k in ("scratch", "torch")}
        print(
            f"{shape:>7}: time scratch {t['scratch'] * 1e3:7.1f} ms  "
            f"torch {t['torch'] * 1e3:7.1f} ms  ratio {t['scratch'] / t['torch']:.2f}"
            f" (target <= 1.5)\n"
            f"         peak RSS scratch {rss['scratch'] / mib:6.1f} MiB  torch "
            f"{rss['torch'] / mib:6.1f} MiB  ratio {rss['scratch'] / rss['torch']:.2f}"
            f" (target <= 2)\n"
            f"         saved for backward scratch {saved['scratch'] / mib:6.1f} MiB  "
            f"torch {saved['torch'] / mib:6.1f} MiB"
        )


if __name__ == "__main__":
    main()
