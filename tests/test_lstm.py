"""toytorch.layers.LSTM against nn.LSTM: outputs, final states and every gradient."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from toytorch import layers
from toytorch.layers.lstm import _LSTMCell

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _close(a, b, dtype):
    assert_close(a, b, atol=TOL[dtype], rtol=TOL[dtype])


def _twins(dtype, *args, **kwargs):
    theirs = nn.LSTM(*args, dtype=dtype, **kwargs)
    mine = layers.LSTM(*args, dtype=dtype, **kwargs)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    mine.load_state_dict(theirs.state_dict())
    return mine, theirs


def _run(lstm, x, hx):
    """Forward and backward with fixed random upstream gradients; leaves' grads."""
    x = x.clone().requires_grad_(True)
    hx = None if hx is None else tuple(s.clone().requires_grad_(True) for s in hx)
    out, (h, c) = lstm(x, hx)
    g = torch.Generator().manual_seed(5)
    loss = sum(
        (t * torch.randn(t.shape, dtype=t.dtype, generator=g)).sum()
        for t in (out, h, c)
    )
    loss.backward()
    grads = [x.grad] + ([] if hx is None else [s.grad for s in hx])
    grads += [p.grad for p in lstm.parameters()]
    return (out.detach(), h.detach(), c.detach()), grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_parity(dtype, num_layers, batch_first, with_state):
    seed = num_layers * 4 + 2 * batch_first + with_state
    torch.manual_seed(seed)
    n_in, H, B, T = 3 + seed % 3, 4 + seed % 4, 1 + seed % 3, 2 + seed % 5
    mine, theirs = _twins(dtype, n_in, H, num_layers, batch_first=batch_first)
    x = torch.randn((B, T, n_in) if batch_first else (T, B, n_in), dtype=dtype)
    hx = None
    if with_state:
        hx = (
            torch.randn(num_layers, B, H, dtype=dtype),
            torch.randn(num_layers, B, H, dtype=dtype),
        )
    outs_mine, grads_mine = _run(mine, x, hx)
    outs_theirs, grads_theirs = _run(theirs, x, hx)
    for a, b in zip(outs_mine, outs_theirs, strict=True):
        assert a.shape == b.shape
        _close(a, b, dtype)
    for a, b in zip(grads_mine, grads_theirs, strict=True):
        _close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_parity_without_bias_and_unbatched(dtype):
    torch.manual_seed(0)
    mine, theirs = _twins(dtype, 3, 5, 2, bias=False)
    x = torch.randn(6, 2, 3, dtype=dtype)
    for a, b in zip(_run(mine, x, None)[1], _run(theirs, x, None)[1], strict=True):
        _close(a, b, dtype)
    mine, theirs = _twins(dtype, 3, 5, 2)
    x = torch.randn(6, 3, dtype=dtype)  # unbatched (T, C)
    hx = (torch.randn(2, 5, dtype=dtype), torch.randn(2, 5, dtype=dtype))
    (o1, h1, c1), g1 = _run(mine, x, hx)
    (o2, h2, c2), g2 = _run(theirs, x, hx)
    for a, b in zip([o1, h1, c1, *g1], [o2, h2, c2, *g2], strict=True):
        _close(a, b, dtype)


def test_lstm_init_is_torchs():
    torch.manual_seed(0)
    theirs = nn.LSTM(4, 6, 2)
    torch.manual_seed(0)
    mine = layers.LSTM(4, 6, 2)
    for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    assert repr(mine) == repr(theirs)


def test_lstm_cell_gradcheck():
    torch.manual_seed(0)
    pre = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_LSTMCell.apply, (pre, c))


def test_lstm_dropout_only_in_training():
    torch.manual_seed(0)
    lstm = layers.LSTM(3, 4, 2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not torch.equal(a, b)  # fresh masks between the layers
    lstm.eval()
    theirs = nn.LSTM(3, 4, 2, dropout=0.5).eval()
    theirs.load_state_dict(lstm.state_dict())
    assert_close(lstm(x)[0], theirs(x)[0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bidirectional": True}, "bidirectional"),
        ({"proj_size": 2}, "proj_size"),
        ({"dropout": 1.5}, "dropout"),
        ({"num_layers": 0}, "num_layers"),
    ],
)
def test_lstm_rejects_unsupported_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.LSTM(3, 4, **kwargs)


def test_lstm_rejects_bad_state_shape():
    lstm = layers.LSTM(3, 4, 2)
    with pytest.raises(ValueError, match="h_0"):
        lstm(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_follows_dtype(dtype):
    lstm = layers.LSTM(3, 4, 2, batch_first=True, dtype=dtype)
    out, (h, c) = lstm(torch.randn(2, 5, 3, dtype=dtype))
    assert out.dtype == h.dtype == c.dtype == dtype


def test_lstm_runs_on_meta_device():
    lstm = layers.LSTM(3, 4, 2, batch_first=True, device="meta")
    out, (h, c) = lstm(torch.randn(2, 5, 3, device="meta"))
    assert out.device.type == h.device.type == c.device.type == "meta"
    assert out.shape == (2, 5, 4) and h.shape == c.shape == (2, 2, 4)
