"""TransformerEncoderLayer, TransformerDecoderLayer and PositionalEncoding.

The references are torch.nn's layers with the same state_dict, in train() mode with
dropout 0: in eval mode torch.nn may take its fused "fast path" (nested tensors for
padded batches), which returns zeros, not NaN, for padded rows and is not what the
training path computes.
"""

import math

import pytest
import torch
from torch import nn

from toytorch.layers import (
    KVCache,
    PositionalEncoding,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)

TOL = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
}
DTYPES = [torch.float32, torch.float64]


def make_pair(mine_cls, their_cls, dtype, **kw):
    theirs = their_cls(dropout=0.0, dtype=dtype, **kw)
    mine = mine_cls(dropout=0.0, dtype=dtype, **kw)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    mine.load_state_dict(theirs.state_dict())
    return mine.train(), theirs.train()


def seq(B, T, C, dtype, batch_first, gen):
    x = torch.randn(B, T, C, dtype=dtype, generator=gen)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()  # (T, B, C)
    return x.requires_grad_()


def causal(T, S=None):
    return torch.ones(T, T if S is None else S, dtype=torch.bool).triu(1)


def all_grads(out, inputs, module, g):
    names = [f"input{i}" for i in range(len(inputs))]
    names += [n for n, _ in module.named_parameters()]
    params = [p for _, p in module.named_parameters()]
    return dict(
        zip(names, torch.autograd.grad(out, [*inputs, *params], g), strict=True)
    )


def assert_same(mine_out, their_out, mine_g, their_g, dtype):
    torch.testing.assert_close(mine_out, their_out, **TOL[dtype])
    assert mine_g.keys() == their_g.keys()
    for name in mine_g:
        torch.testing.assert_close(mine_g[name], their_g[name], **TOL[dtype], msg=name)


def encoder_masks(kind, B, T, dtype):
    """(mine kwargs, torch kwargs) for the encoder's forward."""
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[0, T - 1] = True
    if kind == "none":
        return {}, {}
    if kind == "causal":  # torch.nn needs the mask with the hint; mine builds it
        return {"is_causal": True}, {"src_mask": causal(T), "is_causal": True}
    if kind == "bool_mask":
        return {"src_mask": causal(T)}, {"src_mask": causal(T)}
    if kind == "float_mask":
        m = torch.zeros(T, T, dtype=dtype).masked_fill(causal(T), float("-inf"))
        return {"src_mask": m}, {"src_mask": m}
    if kind == "padding":
        return {"src_key_padding_mask": pad}, {"src_key_padding_mask": pad}
    if kind == "causal_padding":
        mine = {"is_causal": True, "src_key_padding_mask": pad}
        return mine, {"src_mask": causal(T), "is_causal": True, **mine}
    raise AssertionError(kind)


ENCODER_MASKS = ["none", "causal", "bool_mask", "float_mask", "padding"]
ENCODER_MASKS += ["causal_padding"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first,activation", [(True, "gelu"), (False, "relu")])
@pytest.mark.parametrize("kind", ENCODER_MASKS)
def test_encoder_layer_matches_torch(dtype, batch_first, norm_first, activation, kind):
    gen = torch.Generator().manual_seed(len(kind) * 7 + norm_first)
    B, T, C = 2, int(torch.randint(2, 7, (1,), generator=gen)), 8
    torch.manual_seed(0)
    kw = {"d_model": C, "nhead": 2, "dim_feedforward": 16, "activation": activation}
    kw.update(batch_first=batch_first, norm_first=norm_first)
    mine, theirs = make_pair(
        TransformerEncoderLayer, nn.TransformerEncoderLayer, dtype, **kw
    )
    x = seq(B, T, C, dtype, batch_first, gen)
    mine_kw, their_kw = encoder_masks(kind, B, T, dtype)

    y_m, y_t = mine(x, **mine_kw), theirs(x, **their_kw)
    g = torch.randn(y_t.shape, dtype=dtype, generator=gen)
    g_m, g_t = all_grads(y_m, [x], mine, g), all_grads(y_t, [x], theirs, g)
    assert_same(y_m, y_t, g_m, g_t, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first,activation", [(True, "gelu"), (False, "relu")])
@pytest.mark.parametrize("masks", ["none", "causal_bool", "float_padded"])
def test_decoder_layer_matches_torch(dtype, batch_first, norm_first, activation, masks):
    gen = torch.Generator().manual_seed(11 + norm_first)
    B, T, S, C = 2, 4, 5, 8
    torch.manual_seed(1)
    kw = {"d_model": C, "nhead": 2, "dim_feedforward": 16, "activation": activation}
    kw.update(batch_first=batch_first, norm_first=norm_first)
    mine, theirs = make_pair(
        TransformerDecoderLayer, nn.TransformerDecoderLayer, dtype, **kw
    )
    tgt, memory = (
        seq(B, T, C, dtype, batch_first, gen),
        seq(B, S, C, dtype, batch_first, gen),
    )
    mine_kw, their_kw = {}, {}
    if masks == "causal_bool":
        mem_mask = torch.zeros(T, S, dtype=torch.bool)
        mem_mask[1, 2] = True
        mine_kw = {"tgt_is_causal": True, "memory_mask": mem_mask}
        their_kw = {"tgt_mask": causal(T), **mine_kw}
    elif masks == "float_padded":
        tgt_mask = torch.zeros(T, T, dtype=dtype).masked_fill(causal(T), float("-inf"))
        mem_pad = torch.zeros(B, S, dtype=torch.bool)
        mem_pad[1, 0] = True
        tgt_pad = torch.zeros(B, T, dtype=dtype)
        tgt_pad[0, 3] = float("-inf")
        mine_kw = their_kw = {
            "tgt_mask": tgt_mask,
            "tgt_key_padding_mask": tgt_pad,
            "memory_key_padding_mask": mem_pad,
        }

    y_m, y_t = mine(tgt, memory, **mine_kw), theirs(tgt, memory, **their_kw)
    g = torch.randn(y_t.shape, dtype=dtype, generator=gen)
    g_m = all_grads(y_m, [tgt, memory], mine, g)
    g_t = all_grads(y_t, [tgt, memory], theirs, g)
    assert_same(y_m, y_t, g_m, g_t, dtype)


def test_unbatched_and_no_bias_match_torch():
    dtype = torch.float64
    torch.manual_seed(2)
    kw = {"d_model": 8, "nhead": 4, "dim_feedforward": 12, "bias": False}
    mine, theirs = make_pair(
        TransformerEncoderLayer, nn.TransformerEncoderLayer, dtype, **kw
    )
    x = torch.randn(5, 8, dtype=dtype, requires_grad=True)  # (T, C)
    y_m, y_t = mine(x, is_causal=True), theirs(x, src_mask=causal(5), is_causal=True)
    g = torch.randn_like(y_t)
    assert_same(
        y_m, y_t, all_grads(y_m, [x], mine, g), all_grads(y_t, [x], theirs, g), dtype
    )


def test_seeded_init_draws_the_same_values_as_torch():
    for mine_cls, their_cls in [
        (TransformerEncoderLayer, nn.TransformerEncoderLayer),
        (TransformerDecoderLayer, nn.TransformerDecoderLayer),
    ]:
        torch.manual_seed(9)
        theirs = their_cls(16, 4, 32)
        torch.manual_seed(9)
        mine = mine_cls(16, 4, 32)
        for name, value in theirs.state_dict().items():
            assert torch.equal(mine.state_dict()[name], value), name


def test_fully_masked_rows_give_no_nan():
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x = torch.randn(2, 3, 8, requires_grad=True)
    pad = torch.tensor([[False, False, False], [True, True, True]])
    y = layer(x, src_key_padding_mask=pad, is_causal=True)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_activation_callable_and_bad_name():
    layer = TransformerEncoderLayer(8, 2, 16, activation=torch.tanh)
    assert layer.activation is torch.tanh
    assert "activation=tanh" in repr(layer)
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoderLayer(8, 2, activation="swish")
    with pytest.raises(ValueError, match="divisible"):
        TransformerDecoderLayer(9, 2)


# ---------------------------------------------------------------------------------
# KV cache through the layers
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("chunks", [[1] * 6, [3, 1, 1, 1], [2, 4]])
def test_encoder_cache_equals_whole_sequence(dtype, norm_first, chunks):
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(
        8, 2, 16, 0.0, "gelu", batch_first=True, norm_first=norm_first, dtype=dtype
    )
    x = torch.randn(2, 6, 8, dtype=dtype)
    whole = layer(x, is_causal=True)
    cache, outs, start = KVCache(), [], 0
    for n in chunks:
        outs.append(layer(x[:, start : start + n], is_causal=True, cache=cache))
        start += n
    assert len(cache) == 6
    torch.testing.assert_close(torch.cat(outs, 1), whole, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_decoder_cache_equals_whole_sequence(dtype):
    torch.manual_seed(0)
    layer = TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True, dtype=dtype)
    tgt, memory = torch.randn(5, 2, 8, dtype=dtype), torch.randn(7, 2, 8, dtype=dtype)
    whole = layer(tgt, memory, tgt_is_causal=True)
    cache = KVCache()
    outs = [layer(tgt[:2], memory, tgt_is_causal=True, cache=cache)]
    outs += [
        layer(tgt[t : t + 1], memory, tgt_is_causal=True, cache=cache)
        for t in (2, 3, 4)
    ]
    torch.testing.assert_close(torch.cat(outs, 0), whole, **TOL[dtype])


def test_layers_on_meta_device():
    enc = TransformerEncoderLayer(8, 2, 16, batch_first=True, device="meta")
    dec = TransformerDecoderLayer(8, 2, 16, batch_first=True, device="meta")
    x = torch.empty(2, 3, 8, device="meta")
    cache = KVCache()
    assert enc(x, is_causal=True, cache=cache).device.type == "meta"
    assert dec(x, x, tgt_is_causal=True).device.type == "meta"
    assert all(p.device.type == "meta" for p in enc.parameters())


# ---------------------------------------------------------------------------------
# PositionalEncoding
# ---------------------------------------------------------------------------------


def formula(max_len, d):
    """The paper's table, element by element in Python floats."""
    table = torch.empty(max_len, d, dtype=torch.float64)
    for pos in range(max_len):
        for j in range(d):
            angle = pos / 10000 ** ((j - j % 2) / d)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


@pytest.mark.parametrize("d_model", [8, 7])
def test_sinusoidal_values_match_the_formula(d_model):
    pe = PositionalEncoding(d_model, max_len=50, dtype=torch.float64)
    torch.testing.assert_close(pe.pe, formula(50, d_model), atol=1e-12, rtol=0)
    x = torch.randn(3, 10, d_model, dtype=torch.float64)
    torch.testing.assert_close(pe(x), x + formula(50, d_model)[:10])
    torch.testing.assert_close(
        pe(x[:, 4:6], offset=4), (x + formula(50, d_model)[:10])[:, 4:6]
    )


def test_sinusoidal_is_a_non_persistent_buffer_that_moves():
    pe = PositionalEncoding(16, max_len=32)
    assert "pe" in dict(pe.named_buffers()) and "pe" not in pe.state_dict()
    assert list(pe.parameters()) == []
    assert pe.pe.dtype == torch.float32
    pe64 = pe.to(torch.float64)
    assert pe64.pe.dtype == torch.float64
    assert pe(torch.zeros(1, 3, 16, dtype=torch.float64)).dtype == torch.float64
    meta = PositionalEncoding(16, max_len=32).to("meta")
    assert meta.pe.device.type == "meta"
    assert meta(torch.empty(2, 3, 16, device="meta")).device.type == "meta"
    assert PositionalEncoding(16, device="meta").pe.device.type == "meta"


def test_learned_positions_are_a_parameter():
    torch.manual_seed(0)
    pe = PositionalEncoding(8, max_len=20, kind="learned", batch_first=False)
    assert list(pe.state_dict()) == ["weight"] and pe.weight.shape == (20, 8)
    assert 0.01 < pe.weight.std().item() < 0.03  # N(0, 0.02^2)
    x = torch.randn(5, 2, 8)  # (T, B, C)
    y = pe(x, offset=3)
    torch.testing.assert_close(y, x + pe.weight[3:8].unsqueeze(1))
    y.sum().backward()
    assert torch.equal(pe.weight.grad[3:8], torch.full((5, 8), 2.0))
    assert torch.count_nonzero(pe.weight.grad[:3]) == 0


def test_positional_encoding_errors():
    with pytest.raises(ValueError, match="kind"):
        PositionalEncoding(8, kind="rotary")
    with pytest.raises(ValueError, match="max_len"):
        PositionalEncoding(8, max_len=4)(torch.zeros(1, 3, 8), offset=2)
    with pytest.raises(ValueError, match="d_model"):
        PositionalEncoding(0)


def test_empty_sequence_gives_an_empty_output_like_torch():
    kw = dict(d_model=12, nhead=3, dim_feedforward=20, activation="gelu")
    mine, theirs = make_pair(
        TransformerEncoderLayer, nn.TransformerEncoderLayer, torch.float32, **kw
    )
    x = torch.randn(0, 2, 12, requires_grad=True)  # (T=0, B, C)
    for layer in (mine, theirs):
        y = layer(x)
        y.sum().backward()
        assert y.shape == (0, 2, 12) and x.grad.shape == (0, 2, 12)
