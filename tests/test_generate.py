"""Sampling filters and LanguageModel.generate: greedy, seeded, cropped, cached."""

import copy
import functools
import math

import pytest
import torch

from toytorch.models import (
    LSTMConfig,
    LSTMLanguageModel,
    TransformerConfig,
    TransformerLanguageModel,
    lm_loss,
)
from toytorch.models.sampling import (
    check_sampling_args,
    filter_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
)


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


# --- filters, against small answers worked out by hand --------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_p_hand_example(dtype):
    # probs 0.5, 0.3, 0.15, 0.05: cumulative 0.5, 0.8 -> the nucleus for 0.8 is {0, 1}
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=dtype).log()
    assert kept(top_p_filter(logits, 0.8)) == {0, 1}
    assert kept(top_p_filter(logits, 0.81)) == {0, 1, 2}  # 0.8 < 0.81: one more
    assert kept(top_p_filter(logits, 0.5)) == {0}
    assert kept(top_p_filter(logits, 0.96)) == {0, 1, 2, 3}
    assert kept(top_p_filter(logits, 1.0)) == {0, 1, 2, 3}


def test_top_p_keeps_vocabulary_order():
    # the same distribution shuffled: 0.15, 0.5, 0.05, 0.3 -> keep ids 1 and 3
    logits = torch.tensor([0.15, 0.5, 0.05, 0.3]).log()
    out = top_p_filter(logits, 0.8)
    assert kept(out) == {1, 3}
    assert torch.equal(out[[1, 3]], logits[[1, 3]])  # kept logits are untouched


def test_top_k_hand_example():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.0])
    assert kept(top_k_filter(logits, 1)) == {1}
    assert kept(top_k_filter(logits, 2)) == {1, 2}
    assert kept(top_k_filter(logits, 10)) == {0, 1, 2, 3}
    # ties with the k-th value are all kept (documented)
    assert kept(top_k_filter(torch.tensor([1.0, 2.0, 2.0, 0.0]), 1)) == {1, 2}


def test_filters_work_on_batches():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [4.0, 0.0, 0.0, 5.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).tolist() == [
        [False, True, True, False],
        [True, False, False, True],
    ]


def test_filters_never_remove_the_most_likely_token():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 50, generator=g) * 5
    top = logits.argmax(dim=-1)
    for top_k, top_p in [(1, None), (None, 1e-9), (3, 0.01), (None, 0.5), (50, 0.999)]:
        out = filter_logits(logits, top_k, top_p)
        assert torch.isfinite(out.gather(1, top[:, None])).all(), (top_k, top_p)
        assert torch.equal(out.argmax(dim=-1), top)


# --- sample_next ---------------------------------------------------------------------


def test_temperature_zero_is_argmax_and_ignores_filters():
    logits = torch.tensor([0.1, 2.0, -1.0, 1.9])
    assert sample_next(logits, temperature=0) == 1
    assert sample_next(logits, temperature=0, top_k=1, top_p=0.1) == 1


def test_sampling_frequencies_follow_the_filtered_distribution():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    g = torch.Generator().manual_seed(1)
    n = 2000
    draws = [sample_next(logits, 1.0, top_p=0.8, generator=g) for _ in range(n)]
    assert set(draws) == {0, 1}
    # renormalised nucleus: 0.5 / 0.8 = 0.625 (standard error ~0.011)
    assert abs(draws.count(0) / n - 0.625) < 0.05

    draws = [sample_next(logits, 1.0, generator=g) for _ in range(n)]
    for i, p in enumerate([0.5, 0.3, 0.15, 0.05]):
        assert abs(draws.count(i) / n - p) < 0.05, i


def test_temperature_sharpens():
    # temperature 0.5 squares the odds: 0.75/0.25 -> 0.9/0.1
    logits = torch.tensor([0.75, 0.25]).log()
    g = torch.Generator().manual_seed(2)
    n = 2000
    draws = [sample_next(logits, 0.5, generator=g) for _ in range(n)]
    assert abs(draws.count(0) / n - 0.9) < 0.03


def test_sampling_is_seeded_and_leaves_the_global_rng_alone():
    logits = torch.randn(30, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = [sample_next(logits, generator=torch.Generator().manual_seed(7)) for _ in "ab"]
    g = torch.Generator().manual_seed(7)
    b = [sample_next(logits, generator=g) for _ in range(20)]
    g = torch.Generator().manual_seed(7)
    c = [sample_next(logits, generator=g) for _ in range(20)]
    assert a[0] == a[1] == b[0]
    assert b == c
    assert len(set(b)) > 1  # it really samples
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
        ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
        ({"temperature": 1.0, "top_p": -0.2}, "top_p"),
        ({"temperature": 1.0, "top_k": 0}, "top_k"),
        ({"temperature": 1.0, "top_k": -3}, "top_k"),
        ({"temperature": 1.0, "top_k": 2.5}, "top_k"),
    ],
)
def test_bad_sampling_args_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        check_sampling_args(**kwargs)
    with pytest.raises(ValueError, match=name):
        sample_next(torch.zeros(4), **kwargs)


# --- generate ------------------------------------------------------------------------

CONTEXT = 8


# A fixed random "song" that the test models learn by heart, so that greedy decoding
# walks through many different tokens instead of repeating one (as untrained ones do).
SONG = torch.randint(29, (48,), generator=torch.Generator().manual_seed(0)).tolist()


@functools.cache
def _memorised(arch: str, overrides: tuple) -> torch.nn.Module:
    torch.manual_seed(0)
    fields = dict(vocab_size=29, context=CONTEXT, n_layer=2, d_model=16)
    fields.update(overrides)
    if arch == "transformer":
        model = TransformerLanguageModel(TransformerConfig(n_head=2, **fields))
    else:
        model = LSTMLanguageModel(LSTMConfig(**fields))
    song = torch.tensor(SONG)
    windows = song.unfold(0, CONTEXT + 1, 1)  # (40, CONTEXT + 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        logits, _ = model(windows[:, :-1])
        loss = lm_loss(logits, windows[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def gpt(**overrides) -> TransformerLanguageModel:
    return copy.deepcopy(_memorised("transformer", tuple(sorted(overrides.items()))))


def lstm(**overrides) -> LSTMLanguageModel:
    return copy.deepcopy(_memorised("lstm", tuple(sorted(overrides.items()))))


def prompt(n: int, seed: int = 0) -> list[int]:
    """The first n tokens of the song (seed 0), or n random tokens."""
    if seed == 0:
        return SONG[:n]
    return torch.randint(
        29, (n,), generator=torch.Generator().manual_seed(seed)
    ).tolist()


def next_logits(model, tokens: list[int], crop: bool = True) -> torch.Tensor:
    window = tokens[-model.config.context :] if crop else tokens
    with torch.no_grad():
        logits, _ = model(torch.tensor([window]))
    return logits[0, -1]


SAMPLING = [
    {"temperature": 0.0},
    {"temperature": 2.0},  # hot: the test models know their song by heart
    {"temperature": 2.0, "top_k": 5},
    {"temperature": 2.5, "top_p": 0.95},
]


@pytest.mark.parametrize("use_cache", [True, False])
def test_temperature_zero_is_greedy_step_by_step_transformer(use_cache):
    model = gpt()
    tokens = prompt(5)
    out = list(model.generate(tokens, 14, temperature=0, use_cache=use_cache))
    for new in out:  # each id is the argmax of the forward logits on the window
        assert new == int(next_logits(model, tokens).argmax())
        tokens.append(new)
    assert len(set(out)) > 1


@pytest.mark.parametrize("use_cache", [True, False])
def test_temperature_zero_is_greedy_step_by_step_lstm(use_cache):
    model = lstm()
    tokens = prompt(2)
    out = list(model.generate(tokens, 7, temperature=0, use_cache=use_cache))
    for new in out:  # within the window both paths see the whole sequence
        assert new == int(next_logits(model, tokens).argmax())
        tokens.append(new)
    assert len(set(out)) > 1


@pytest.mark.parametrize("overrides", [{}, {"positions": "sinusoidal",
                                            "norm_first": False}])  # fmt: skip
@pytest.mark.parametrize("n_prompt", [1, 5, 12])
@pytest.mark.parametrize("sampling", SAMPLING)
def test_transformer_cache_gives_the_same_tokens(overrides, n_prompt, sampling):
    model = gpt(**overrides)
    args = (prompt(n_prompt), 3 * CONTEXT)  # well past the window
    cached = list(model.generate(*args, seed=11, use_cache=True, **sampling))
    fresh = list(model.generate(*args, seed=11, use_cache=False, **sampling))
    assert cached == fresh
    assert len(cached) == 3 * CONTEXT and len(set(cached)) > 2
    if sampling["temperature"] > 0:  # it really sampled: not the greedy sequence
        assert cached != list(model.generate(*args, temperature=0))


@pytest.mark.parametrize("sampling", SAMPLING)
def test_lstm_cache_gives_the_same_tokens_within_the_window(sampling):
    model = lstm()
    args = (prompt(2), CONTEXT - 1)  # the last id is predicted from CONTEXT tokens
    cached = list(model.generate(*args, seed=5, use_cache=True, **sampling))
    fresh = list(model.generate(*args, seed=5, use_cache=False, **sampling))
    assert cached == fresh


def test_lstm_past_the_window_cache_remembers_and_recompute_forgets():
    model = lstm()
    tokens = prompt(3)
    cached = list(model.generate(tokens, 3 * CONTEXT, temperature=0))
    fresh = list(model.generate(tokens, 3 * CONTEXT, temperature=0, use_cache=False))
    seq_c, seq_f = list(tokens), list(tokens)
    for c, f in zip(cached, fresh, strict=True):
        # carried state = the recurrence over everything since the prompt window
        assert c == int(next_logits(model, seq_c, crop=False).argmax())
        # recomputed = the last CONTEXT tokens only, from a zero state
        assert f == int(next_logits(model, seq_f, crop=True).argmax())
        seq_c.append(c)
        seq_f.append(f)


@pytest.mark.parametrize("make", [gpt, lstm])
@pytest.mark.parametrize("use_cache", [True, False])
def test_long_prompt_is_cropped_to_the_context(make, use_cache):
    model = make()
    long = prompt(3 * CONTEXT)
    other = prompt(2 * CONTEXT, seed=1) + long[-CONTEXT:]  # differs before the window
    kw = dict(temperature=1.0, seed=3, use_cache=use_cache)
    out = list(model.generate(long, 6, **kw))
    assert out == list(model.generate(long[-CONTEXT:], 6, **kw))
    assert out == list(model.generate(other, 6, **kw))


@pytest.mark.parametrize("make", [gpt, lstm])
def test_cache_feeds_one_token_per_step(make):
    model = make()
    lengths = []  # the length of every batch of ids the model embeds
    model.embed.register_forward_hook(lambda m, a, out: lengths.append(a[0].shape[1]))
    list(model.generate(prompt(5), 6, temperature=0))
    if isinstance(model, LSTMLanguageModel):
        assert lengths == [5, 1, 1, 1, 1, 1]
    else:  # 5 + 3 fills the window; past it, a fresh prefill of the last 8
        assert lengths == [5, 1, 1, 1, 8, 8]
    lengths.clear()
    list(model.generate(prompt(5), 3, temperature=0, use_cache=False))
    assert lengths == [5, 6, 7]


@pytest.mark.parametrize("make", [gpt, lstm])
def test_empty_prompt_needs_a_start_id(make):
    model = make()
    with pytest.raises(ValueError, match="start_id"):
        model.generate([], 3)
    kw = dict(temperature=0.7, seed=1)
    assert list(model.generate([], 5, start_id=4, **kw)) == list(
        model.generate([4], 5, **kw)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"prompt_ids": [3, 29]}, r"outside \[0, 29\): \[29\]"),
        ({"prompt_ids": torch.zeros(1, 3, dtype=torch.long)}, "1-D"),
    ],
)
def test_bad_arguments_fail_at_the_call(kwargs, match):
    model = gpt()
    args = {"prompt_ids": [1, 2], "max_new_tokens": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        model.generate(**args)  # no next(): checked before the first token


@pytest.mark.parametrize("make", [gpt, lstm])
def test_seeded_generation_is_reproducible_and_private(make):
    model = make()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    kw = dict(temperature=2.0)  # flat enough that seeds matter for a memorised song
    a = list(model.generate(prompt(3), 20, seed=42, **kw))
    b = list(model.generate(prompt(3), 20, seed=42, **kw))
    c = list(model.generate(prompt(3), 20, seed=43, **kw))
    assert a == b and a != c
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched
    assert all(type(i) is int and 0 <= i < 29 for i in a)
    assert len(list(model.generate(prompt(3), 20))) == 20  # seed=None works


@pytest.mark.parametrize("make", [gpt, lstm])
def test_runs_in_eval_without_grad_and_restores_training_mode(make):
    model = make(dropout=0.5)
    seen = []
    model.embed.register_forward_hook(
        lambda m, a, o: seen.append((model.training, torch.is_grad_enabled()))
    )
    model.train()
    stream = model.generate(prompt(3), 4, seed=0)
    next(stream)
    assert model.training and torch.is_grad_enabled()  # between tokens: as before
    rest = list(stream)
    assert len(rest) == 3 and model.training
    assert seen and all(mode == (False, False) for mode in seen)

    # eval mode made dropout inactive, so cached and uncached still agree
    kw = dict(temperature=1.0, seed=8)
    assert list(model.generate(prompt(3), 6, **kw)) == list(
        model.generate(prompt(3), 6, use_cache=False, **kw)
    )
    model.eval()
    list(model.generate(prompt(3), 2))
    assert not model.training


@pytest.mark.parametrize("make", [gpt, lstm])
def test_generate_accepts_tensors_and_float64(make):
    model = make().double()
    ids = torch.tensor(prompt(4))
    out = list(model.generate(ids, 10, temperature=0.9, seed=2))
    assert out == list(model.generate(ids.tolist(), 10, 0.9, seed=2, use_cache=False))
    assert list(model.generate(ids, 0)) == []
