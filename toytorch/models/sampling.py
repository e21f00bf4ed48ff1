"""Choosing the next token from a row of logits: temperature, top-k, top-p, a draw.

The pipeline (the same order as Hugging Face ``generate``)::

    logits --/temperature--> top-k filter --> top-p filter --> softmax --> draw

Filters replace removed logits by ``-inf`` so that softmax gives them probability 0.
Neither filter ever removes the most likely token, so a draw always has a candidate.

Worked example (top-p): probabilities ``[0.5, 0.3, 0.15, 0.05]`` with ``top_p=0.8``.
Sorted cumulative mass is ``[0.5, 0.8, 0.95, 1.0]``; the nucleus is the smallest prefix
whose mass reaches 0.8, i.e. the first two tokens, so ``0.15`` and ``0.05`` are removed.
"""

import math

import torch

from toytorch.func import softmax

# Mass within this distance of top_p counts as reaching it, so rounding in softmax does
# not decide who is in the nucleus (the example above sums to 0.7999999999999999 from
# float64 logits and to 0.8000000021 from float32 ones).
TOP_P_TOLERANCE = 1e-6


def check_sampling_args(
    temperature: float, top_k: int | None = None, top_p: float | None = None
) -> None:
    """Raise ValueError naming the argument when a sampling setting is out of range."""
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number, got {temperature!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be a positive int or None, got {top_k}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (last dim), set the rest to ``-inf``.

    Ties with the k-th largest value are all kept, so a row may keep more than ``k``.
    """
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches ``p``.

    A token stays when the mass of the tokens ranked above it is still below ``p``; the
    top token has none above it, so it always stays.
    """
    if p >= 1:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = softmax(sorted_logits.double(), dim=-1)
    mass_above = torch.cumsum(probs, dim=-1) - probs  # exclusive cumulative sum
    drop_sorted = mass_above >= p - TOP_P_TOLERANCE
    drop_sorted[..., 0] = False  # even when p is below the tolerance
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Apply top-k then top-p filtering (either may be None) to the last dim."""
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Pick one token id from a 1-D row of logits (V,).

    Temperature 0 is greedy: the argmax (the first one on ties), filters and generator
    unused. Otherwise the draw is by inverse CDF with one uniform number from
    ``generator`` (a CPU generator; None uses a fresh unseeded one, never torch's global
    RNG), in float64 on the CPU so the result does not depend on the model's device.
    """
    if logits.dim() != 1:
        raise ValueError(f"logits must be 1-D (V,), got shape {tuple(logits.shape)}")
    check_sampling_args(temperature, top_k, top_p)
    logits = logits.detach().to("cpu", torch.float64)
    if temperature == 0:
        return int(torch.argmax(logits))

    logits = filter_logits(logits / temperature, top_k, top_p)
    probs = softmax(logits, dim=-1)  # (V,)
    cdf = torch.cumsum(probs, dim=-1)  # (V,)

    if generator is None:
        generator = torch.Generator()
        generator.seed()
    u = torch.rand((), generator=generator, dtype=torch.float64)
    # First index whose cumulative mass exceeds u * total; filtered tokens add nothing
    # to the CDF, so they are skipped. Should u * total round up to the total, fall back
    # to the last token that has any probability rather than run off the end.
    index = int(torch.searchsorted(cdf, (u * cdf[-1]).reshape(1), right=True))
    return min(index, int(torch.nonzero(probs).max()))
