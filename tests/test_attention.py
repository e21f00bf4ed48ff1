"""MultiheadAttention and KVCache against torch.nn.MultiheadAttention.

The reference is torch.nn's layer with the same state_dict, in train() mode with
dropout 0 (its eval-mode fast path treats fully masked rows differently).
"""

import zlib

import pytest
import torch
from torch import nn

from toytorch.layers import KVCache, MultiheadAttention
from toytorch.layers import attention as attention_module
from toytorch.layers.attention import attention

TOL = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
}
DTYPES = [torch.float32, torch.float64]


def make_pair(E, nh, dtype, batch_first, **kw):
    theirs = nn.MultiheadAttention(E, nh, batch_first=batch_first, dtype=dtype, **kw)
    mine = MultiheadAttention(E, nh, batch_first=batch_first, dtype=dtype, **kw)
    mine.load_state_dict(theirs.state_dict())
    return mine.train(), theirs.train()


def seq_input(B, T, E, dtype, batch_first, gen):
    x = torch.randn(B, T, E, dtype=dtype, generator=gen)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()  # (T, B, E)
    return x.requires_grad_()


def causal(L, S):
    return torch.ones(L, S, dtype=torch.bool).triu(1)


def float_mask(bool_mask, dtype, gen):
    """-inf where masked, plus a random finite bias everywhere else."""
    bias = torch.randn(bool_mask.shape, dtype=dtype, generator=gen)
    return bias.masked_fill(bool_mask, float("-inf"))


def grads(out, inputs, module, g):
    names = [n for n, _ in module.named_parameters()]
    params = [p for _, p in module.named_parameters()]
    gs = torch.autograd.grad(out, [*inputs, *params], g, allow_unused=True)
    return dict(zip([f"input{i}" for i in range(len(inputs))] + names, gs, strict=True))


def assert_same_grads(mine, theirs, dtype):
    assert mine.keys() == theirs.keys()
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], **TOL[dtype], msg=name)


def random_masks(kind, B, nh, L, S, dtype, gen):
    """(attn_mask, key_padding_mask, is_causal for mine, attn_mask for torch)."""
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[:, S - 1] = S > 1  # pad the last key of every sequence (never a whole row)
    if kind == "none":
        return None, None, False, None
    if kind == "causal":
        return None, None, True, causal(L, S)
    if kind == "bool2d":
        m = torch.rand(L, S, generator=gen) < 0.3
        m[:, 0] = False  # keep one key per row
        return m, None, False, m
    if kind == "float2d":
        m = float_mask(causal(L, S), dtype, gen)
        return m, None, False, m
    if kind == "bool3d":
        m = torch.rand(B * nh, L, S, generator=gen) < 0.3
        m[..., 0] = False
        return m, None, False, m
    if kind == "kpm_bool":
        return None, pad, False, None
    if kind == "kpm_float":
        fpad = torch.zeros(B, S, dtype=dtype).masked_fill(pad, float("-inf"))
        return None, fpad, False, None
    if kind == "causal_kpm":
        return None, pad, True, causal(L, S)
    raise AssertionError(kind)


MASK_KINDS = ["none", "causal", "bool2d", "float2d", "bool3d", "kpm_bool", "kpm_float"]
MASK_KINDS += ["causal_kpm"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize(
    "need_weights,average", [(True, True), (True, False), (False, True)]
)
def test_self_attention_matches_torch(dtype, batch_first, kind, need_weights, average):
    seed = zlib.crc32(repr((dtype, batch_first, kind, need_weights, average)).encode())
    gen = torch.Generator().manual_seed(seed)
    B, T = (
        int(torch.randint(1, 4, (1,), generator=gen)),
        int(torch.randint(2, 7, (1,), generator=gen)),
    )
    E, nh = 12, 3
    torch.manual_seed(seed)
    mine, theirs = make_pair(E, nh, dtype, batch_first)
    x = seq_input(B, T, E, dtype, batch_first, gen)
    attn_mask, kpm, is_causal, their_mask = random_masks(kind, B, nh, T, T, dtype, gen)

    kw = {"need_weights": need_weights, "average_attn_weights": average}
    y_t, w_t = theirs(
        x, x, x, key_padding_mask=kpm, attn_mask=their_mask, is_causal=is_causal, **kw
    )
    y_m, w_m = mine(
        x, x, x, key_padding_mask=kpm, attn_mask=attn_mask, is_causal=is_causal, **kw
    )

    torch.testing.assert_close(y_m, y_t, **TOL[dtype])
    if need_weights:
        torch.testing.assert_close(w_m, w_t, **TOL[dtype])
    else:
        assert w_m is None and w_t is None
    g = torch.randn(y_t.shape, dtype=dtype, generator=gen)
    assert_same_grads(grads(y_m, [x], mine, g), grads(y_t, [x], theirs, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layout", ["key_is_value", "separate", "kdim_vdim"])
def test_cross_attention_matches_torch(dtype, batch_first, layout):
    gen = torch.Generator().manual_seed(7)
    B, L, S, E, nh = 2, 3, 5, 8, 2
    kw = {"kdim": 6, "vdim": 10} if layout == "kdim_vdim" else {}
    torch.manual_seed(3)
    mine, theirs = make_pair(E, nh, dtype, batch_first, **kw)
    q = seq_input(B, L, E, dtype, batch_first, gen)
    k = seq_input(B, S, kw.get("kdim", E), dtype, batch_first, gen)
    v = (
        k
        if layout == "key_is_value"
        else seq_input(B, S, kw.get("vdim", E), dtype, batch_first, gen)
    )
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[0, 1] = True
    mask = float_mask(torch.rand(L, S, generator=gen) < 0.2, dtype, gen)
    mask[:, 0] = 0.0

    y_t, w_t = theirs(
        q, k, v, key_padding_mask=pad, attn_mask=mask, average_attn_weights=False
    )
    y_m, w_m = mine(
        q, k, v, key_padding_mask=pad, attn_mask=mask, average_attn_weights=False
    )

    torch.testing.assert_close(y_m, y_t, **TOL[dtype])
    torch.testing.assert_close(w_m, w_t, **TOL[dtype])
    inputs = [q, k] if v is k else [q, k, v]
    g = torch.randn(y_t.shape, dtype=dtype, generator=gen)
    assert_same_grads(grads(y_m, inputs, mine, g), grads(y_t, inputs, theirs, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "extra",
    [
        {"add_bias_kv": True},
        {"add_zero_attn": True},
        {"add_bias_kv": True, "add_zero_attn": True},
    ],
)
@pytest.mark.parametrize("masks", ["none", "bool_kpm", "float_kpm"])
def test_bias_kv_and_zero_attn_match_torch(dtype, extra, masks):
    gen = torch.Generator().manual_seed(4)
    B, T, E, nh = 2, 4, 8, 2
    torch.manual_seed(8)
    mine, theirs = make_pair(E, nh, dtype, False, **extra)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    x = seq_input(B, T, E, dtype, False, gen)
    attn_mask, kpm, _, _ = random_masks(
        {"none": "none", "bool_kpm": "kpm_bool", "float_kpm": "kpm_float"}[masks],
        B,
        nh,
        T,
        T,
        dtype,
        gen,
    )
    if masks != "none":
        attn_mask = (
            causal(T, T)
            if masks == "bool_kpm"
            else float_mask(causal(T, T), dtype, gen)
        )
    kw = {
        "key_padding_mask": kpm,
        "attn_mask": attn_mask,
        "average_attn_weights": False,
    }
    y_t, w_t = theirs(x, x, x, **kw)
    y_m, w_m = mine(x, x, x, **kw)
    extras = len(extra)
    assert w_m.shape == (B, nh, T, T + extras)
    torch.testing.assert_close(y_m, y_t, **TOL[dtype])
    torch.testing.assert_close(w_m, w_t, **TOL[dtype])
    g = torch.randn(y_t.shape, dtype=dtype, generator=gen)
    assert_same_grads(grads(y_m, [x], mine, g), grads(y_t, [x], theirs, g), dtype)


def test_bias_kv_init_and_cache_refusal():
    torch.manual_seed(5)
    theirs = nn.MultiheadAttention(16, 4, add_bias_kv=True)
    torch.manual_seed(5)
    mine = MultiheadAttention(16, 4, add_bias_kv=True)
    for name, value in theirs.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[name], value, atol=0, rtol=0)
    x = torch.randn(3, 1, 16)
    with pytest.raises(ValueError, match="cache"):
        mine(x, x, x, cache=KVCache())


@pytest.mark.parametrize("batch_first", [True, False])
def test_unbatched_input_matches_torch(batch_first):
    torch.manual_seed(0)
    mine, theirs = make_pair(8, 2, torch.float64, batch_first)
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)  # (T, E)
    mask = causal(5, 5)
    y_t, w_t = theirs(x, x, x, attn_mask=mask, average_attn_weights=False)
    y_m, w_m = mine(x, x, x, attn_mask=mask, average_attn_weights=False)
    assert y_m.shape == (5, 8) and w_m.shape == (2, 5, 5)
    torch.testing.assert_close(y_m, y_t, **TOL[torch.float64])
    torch.testing.assert_close(w_m, w_t, **TOL[torch.float64])
    g = torch.randn_like(y_t)
    assert_same_grads(
        grads(y_m, [x], mine, g), grads(y_t, [x], theirs, g), torch.float64
    )


def test_bias_false_matches_torch():
    torch.manual_seed(0)
    mine, theirs = make_pair(8, 4, torch.float64, True, bias=False)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    y_t, _ = theirs(x, x, x, attn_mask=causal(4, 4), is_causal=True, need_weights=False)
    y_m, _ = mine(x, x, x, is_causal=True, need_weights=False)
    torch.testing.assert_close(y_m, y_t, **TOL[torch.float64])
    g = torch.randn_like(y_t)
    assert_same_grads(
        grads(y_m, [x], mine, g), grads(y_t, [x], theirs, g), torch.float64
    )


def test_init_draws_the_same_values_as_torch():
    torch.manual_seed(5)
    theirs = nn.MultiheadAttention(16, 4)
    torch.manual_seed(5)
    mine = MultiheadAttention(16, 4)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[name], value, atol=0, rtol=0)
    mine.reset_parameters()  # re-draws; the biases stay zero, the weights change
    assert torch.count_nonzero(mine.in_proj_bias) == 0
    assert torch.count_nonzero(mine.out_proj.bias) == 0
    assert not torch.equal(mine.in_proj_weight, theirs.in_proj_weight)
    bound = (6 / (16 + 48)) ** 0.5  # Glorot uniform bound of the (48, 16) weight
    assert mine.in_proj_weight.abs().max() <= bound


def test_fully_masked_row_is_zero_weights_and_no_nan():
    """A query row that may attend to nothing: weights 0, output out_proj.bias, no NaN.

    torch.nn gives NaN for that row (and NaN gradients), so the other rows are
    compared with torch.nn run without the masked query row.
    """
    dtype = torch.float64
    torch.manual_seed(0)
    mine, theirs = make_pair(8, 2, dtype, True)
    with torch.no_grad():
        mine.out_proj.bias.normal_()
        theirs.out_proj.bias.copy_(mine.out_proj.bias)
    q = torch.randn(2, 4, 8, dtype=dtype, requires_grad=True)
    kv = torch.randn(2, 5, 8, dtype=dtype, requires_grad=True)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[2] = True  # query 2 sees no key

    y, w = mine(q, kv, kv, attn_mask=mask)
    assert torch.equal(w[:, 2], torch.zeros(2, 5, dtype=dtype))
    torch.testing.assert_close(y[:, 2], mine.out_proj.bias.expand(2, 8), atol=0, rtol=0)
    y.sum().backward()
    for t in [q.grad, kv.grad, *(p.grad for p in mine.parameters())]:
        assert torch.isfinite(t).all()
    assert torch.equal(q.grad[:, 2], torch.zeros(2, 8, dtype=dtype))

    keep = [0, 1, 3]
    y_t, w_t = theirs(q[:, keep], kv, kv, attn_mask=mask[keep])
    torch.testing.assert_close(y[:, keep], y_t, **TOL[dtype])
    torch.testing.assert_close(w[:, keep], w_t, **TOL[dtype])
    # Gradients of the kept rows only (upstream 0 on row 2) against torch's.
    g = torch.randn(2, 4, 8, dtype=dtype)
    g[:, 2] = 0.0
    y, _ = mine(q, kv, kv, attn_mask=mask)
    mine_g = grads(y, [q, kv], mine, g)
    mine_g["input0"] = mine_g["input0"][:, keep]
    q_kept = q[:, keep].detach().requires_grad_()
    y_t, _ = theirs(q_kept, kv, kv, attn_mask=mask[keep])
    assert_same_grads(mine_g, grads(y_t, [q_kept, kv], theirs, g[:, keep]), dtype)


def test_fully_padded_sequence_gives_no_nan():
    torch.manual_seed(0)
    mine = MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 3, 8, requires_grad=True)
    pad = torch.tensor([[False, False, True], [True, True, True]])  # sample 1: all pad
    float_pad = torch.zeros(2, 3).masked_fill(pad, float("-inf"))
    for kpm in (pad, float_pad):
        y, w = mine(x, x, x, key_padding_mask=kpm, attn_mask=causal(3, 3))
        y.square().sum().backward()
        assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
        assert torch.equal(w[1], torch.zeros(3, 3))
        x.grad = None


def test_bool_mask_true_means_masked_on_every_path():
    torch.manual_seed(0)
    mha = MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(1, 4, 8)
    attn = torch.zeros(4, 4, dtype=torch.bool)
    attn[:, 1] = True
    pad = torch.tensor([[False, False, False, True]])
    _, w = mha(x, x, x, attn_mask=attn, key_padding_mask=pad)
    assert torch.equal(w[0, :, 1], torch.zeros(4)) and torch.equal(
        w[0, :, 3], torch.zeros(4)
    )
    assert (w[0, :, [0, 2]] > 0).all()
    _, w = mha(x, x, x, attn_mask=attn.reshape(1, 4, 4).expand(2, 4, 4))  # (B*nh, L, S)
    assert torch.equal(w[0, :, 1], torch.zeros(4))
    _, w = mha(x, x, x, is_causal=True)
    assert torch.equal(w[0].triu(1), torch.zeros(4, 4))


def test_is_causal_with_a_mask_uses_the_mask_given():
    torch.manual_seed(0)
    mine, theirs = make_pair(8, 2, torch.float64, True)
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    m = float_mask(causal(4, 4), torch.float64, torch.Generator().manual_seed(1))
    y_t, _ = theirs(x, x, x, attn_mask=m, is_causal=True)
    y_m, _ = mine(x, x, x, attn_mask=m, is_causal=True)
    torch.testing.assert_close(y_m, y_t, **TOL[torch.float64])


@pytest.mark.parametrize(
    "layout,calls", [("self", 1), ("key_is_value", 2), ("separate", 3)]
)
def test_projections_use_one_matmul_for_self_attention(monkeypatch, layout, calls):
    seen = []
    original = attention_module._project

    def counting(x, weight, bias):
        seen.append(tuple(weight.shape))
        return original(x, weight, bias)

    monkeypatch.setattr(attention_module, "_project", counting)
    mha = MultiheadAttention(8, 2, batch_first=True)
    x, m = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    q, k, v = {"self": (x, x, x), "key_is_value": (x, m, m), "separate": (x, m, m + 1)}[
        layout
    ]
    mha(q, k, v)
    assert len(seen) == calls
    if layout == "self":
        assert seen == [(24, 8)]


# ---------------------------------------------------------------------------------
# The attention core (hand-written backward)
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "full_row"])
def test_attention_core_gradcheck(mask_kind):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(2, 2, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
        for _ in range(3)
    )
    mask = None
    if mask_kind == "bool":
        mask = causal(3, 3)
    elif mask_kind == "float":
        mask = float_mask(causal(3, 3), torch.float64, gen)
    elif mask_kind == "full_row":
        mask = causal(3, 3)
        mask[1] = True

    def both(q, k, v):
        y, w = attention(q, k, v, mask)
        return y, w

    assert torch.autograd.gradcheck(both, (q, k, v))


def test_attention_core_gradcheck_with_dropout():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(1, 2, 4, 3, dtype=torch.float64, generator=gen).requires_grad_()
        for _ in range(3)
    )

    def dropped(q, k, v):
        torch.manual_seed(123)  # the same dropout mask on every call
        return attention(q, k, v, causal(4, 4), dropout_p=0.4)

    assert torch.autograd.gradcheck(dropped, (q, k, v))
    y, w = dropped(q, k, v)
    torch.testing.assert_close(y, torch.matmul(w, v))  # output uses the dropped weights
    assert (w == 0).any()


# ---------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------


def run_in_chunks(mha, x, chunks, batch_first, need_weights=False):
    """Feed x (B, T, E) or (T, B, E) in chunks of the given sizes through one cache."""
    cache, outs, start = KVCache(), [], 0
    dim = 1 if batch_first else 0
    for n in chunks:
        part = x.narrow(dim, start, n)
        y, w = mha(
            part, part, part, is_causal=True, cache=cache, need_weights=need_weights
        )
        outs.append(y)
        start += n
        assert len(cache) == start
        if need_weights:
            assert w.shape[-1] == start
    return torch.cat(outs, dim=dim), cache


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("chunks", [[1] * 7, [3, 1, 1, 1, 1], [4, 2, 1], [7]])
def test_cache_token_by_token_equals_whole_sequence(dtype, batch_first, chunks):
    torch.manual_seed(0)
    mha = MultiheadAttention(12, 3, batch_first=batch_first, dtype=dtype)
    x = seq_input(2, 7, 12, dtype, batch_first, torch.Generator().manual_seed(1))
    whole, _ = mha(x, x, x, is_causal=True, need_weights=False)
    stepped, cache = run_in_chunks(mha, x, chunks, batch_first, need_weights=True)
    torch.testing.assert_close(stepped, whole, **TOL[dtype])
    assert cache.k.shape == (2, 3, 7, 4) and cache.v.shape == (2, 3, 7, 4)
    assert cache.k.dtype == dtype


def test_cache_crop_and_reset():
    torch.manual_seed(0)
    mha = MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(1, 6, 8)
    whole, _ = mha(x, x, x, is_causal=True)
    cache = KVCache()
    mha(x, x, x, is_causal=True, cache=cache)
    cache.crop(4)  # forget positions 4 and 5, then recompute them
    assert len(cache) == 4
    again, _ = mha(x[:, 4:], x[:, 4:], x[:, 4:], is_causal=True, cache=cache)
    torch.testing.assert_close(again, whole[:, 4:], atol=1e-6, rtol=1e-5)
    cache.reset()
    assert len(cache) == 0 and cache.k is None
    first, _ = mha(x[:, :1], x[:, :1], x[:, :1], is_causal=True, cache=cache)
    torch.testing.assert_close(first, whole[:, :1], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="length"):
        cache.crop(-1)


def test_cache_with_key_padding_mask_over_all_positions():
    torch.manual_seed(0)
    mha = MultiheadAttention(8, 2, batch_first=True).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[1, 0] = True  # sample 1 starts with a pad token
    whole, _ = mha(x, x, x, key_padding_mask=pad, is_causal=True)
    cache = KVCache()
    y0, _ = mha(
        x[:, :3],
        x[:, :3],
        x[:, :3],
        key_padding_mask=pad[:, :3],
        is_causal=True,
        cache=cache,
    )
    y1, _ = mha(
        x[:, 3:], x[:, 3:], x[:, 3:], key_padding_mask=pad, is_causal=True, cache=cache
    )
    torch.testing.assert_close(torch.cat([y0, y1], 1), whole, **TOL[torch.float64])


# ---------------------------------------------------------------------------------
# Devices, dtypes, errors
# ---------------------------------------------------------------------------------


def test_meta_device_and_float64():
    mha = MultiheadAttention(8, 2, batch_first=True, device="meta")
    x = torch.empty(2, 3, 8, device="meta")
    pad = torch.zeros(2, 3, dtype=torch.bool, device="meta")
    y, w = mha(x, x, x, key_padding_mask=pad, is_causal=True)
    assert y.device.type == "meta" and y.shape == (2, 3, 8) and w.shape == (2, 3, 3)
    cache = KVCache()
    y, _ = mha(x, x, x, is_causal=True, cache=cache)
    assert cache.k.device.type == "meta"

    mha = MultiheadAttention(8, 2).to(torch.float64)
    assert all(p.dtype == torch.float64 for p in mha.parameters())
    x = torch.randn(3, 2, 8, dtype=torch.float64)
    y, w = mha(x, x, x, is_causal=True, key_padding_mask=torch.zeros(2, 3))
    assert y.dtype == torch.float64 and w.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"embed_dim": 10, "num_heads": 3}, "divisible"),
        ({"embed_dim": 8, "num_heads": 0}, "num_heads"),
        ({"embed_dim": 8, "num_heads": 2, "dropout": 1.5}, "dropout"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiheadAttention(**kwargs)


def test_bad_forward_arguments():
    mha = MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="query"):
        mha(torch.randn(2, 3, 6), x, x)
    with pytest.raises(ValueError, match="attn_mask"):
        mha(x, x, x, attn_mask=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask"):
        mha(x, x, x, attn_mask=torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="query"):
        mha(torch.randn(8), x, x)


def test_repr_names_the_hyper_parameters():
    text = repr(MultiheadAttention(8, 2, dropout=0.1, batch_first=True))
    assert "embed_dim=8, num_heads=2, dropout=0.1, batch_first=True" in text
    assert "out_proj" in text


def test_dropout_on_weights_in_training_only():
    torch.manual_seed(0)
    mha = MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = torch.randn(2, 6, 8)
    kw = {"average_attn_weights": False}
    _, w_eval = mha.eval()(x, x, x, **kw)
    _, w_eval2 = mha(x, x, x, **kw)
    assert torch.equal(w_eval, w_eval2)  # eval: no dropout, deterministic
    _, w_train = mha.train()(x, x, x, **kw)
    kept = w_train != 0
    assert kept.any() and (~kept).any()
    # kept weights are rescaled by 1 / (1 - p) = 2, as torch's dropout does
    torch.testing.assert_close(w_train[kept], 2 * w_eval[kept])


def test_nan_input_is_not_hidden():
    # Masked rows become zeros, but a NaN in the input must still surface as NaN.
    # (A NaN key poisons even the rows that mask it: NaN + -inf is NaN, as in torch.)
    mine, theirs = make_pair(8, 2, torch.float32, True)
    x = torch.randn(1, 3, 8)
    x[0, 1, 0] = float("nan")
    y, _ = mine(x, x, x, is_causal=True)
    y_t, _ = theirs(x, x, x, attn_mask=causal(3, 3))
    assert torch.isnan(y_t).all() and torch.isnan(y).all()
