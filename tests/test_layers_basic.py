"""Linear, Embedding, Dropout, LayerNorm against their torch.nn twins."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from toytorch import layers

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _close(a, b, dtype):
    assert_close(a, b, atol=TOL[dtype], rtol=TOL[dtype])


def _twins(mine_cls, theirs_cls, dtype, *args, **kwargs):
    """(mine, theirs) built alike, with equal state_dict keys; mine gets theirs'
    (randomised) weights."""
    theirs = theirs_cls(*args, dtype=dtype, **kwargs)
    mine = mine_cls(*args, dtype=dtype, **kwargs)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():  # random affine values, not the ones/zeros of a fresh init
        for p in theirs.parameters():
            p.uniform_(-1.0, 1.0)
    mine.load_state_dict(theirs.state_dict())
    return mine, theirs


def _check_parity(mine, theirs, x, dtype):
    """Same output, and same gradients for the input and every parameter."""
    outs, grads = [], []
    for layer in (mine, theirs):
        xi = x.detach().clone().requires_grad_(x.is_floating_point())
        y = layer(xi)
        outs.append(y.detach())
        up = torch.randn(
            y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(9)
        )
        (y * up).sum().backward()
        grads.append([xi.grad] + [p.grad for p in layer.parameters()])
    _close(outs[0], outs[1], dtype)
    for g_mine, g_theirs in zip(*grads, strict=True):
        if g_theirs is None:
            assert g_mine is None
        else:
            _close(g_mine, g_theirs, dtype)


# -- Linear ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "seed,n_in,n_out,lead",
    [(0, 5, 3, (7,)), (1, 8, 16, (2, 3)), (2, 4, 6, ()), (3, 3, 2, (2, 2, 2))],
)
def test_linear_parity(dtype, bias, seed, n_in, n_out, lead):
    torch.manual_seed(seed)
    mine, theirs = _twins(layers.Linear, nn.Linear, dtype, n_in, n_out, bias=bias)
    _check_parity(mine, theirs, torch.randn(*lead, n_in, dtype=dtype), dtype)


def test_linear_init_is_torchs():
    # The same seed draws the same initial weights: same distribution, same order.
    for args in ((5, 3), (128, 512), (7, 2, False)):
        torch.manual_seed(0)
        theirs = nn.Linear(*args)
        torch.manual_seed(0)
        mine = layers.Linear(*args)
        for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(a, b)
    assert repr(mine) == repr(theirs)
    assert mine.extra_repr() == theirs.extra_repr()


# -- Embedding -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"padding_idx": 2},
        {"padding_idx": -1},
        {"scale_grad_by_freq": True},
        {"padding_idx": 0, "scale_grad_by_freq": True},
    ],
    ids=str,
)
def test_embedding_parity(dtype, kwargs):
    torch.manual_seed(0)
    mine, theirs = _twins(layers.Embedding, nn.Embedding, dtype, 10, 6, **kwargs)
    ids = torch.randint(0, 10, (4, 7))
    ids[0, :3] = 9  # repeats, and the padding row (-1 -> 9) used
    ids[1, 0] = 0
    _check_parity(mine, theirs, ids, dtype)
    if "padding_idx" in kwargs:
        mine(ids).sum().backward()
        assert mine.weight.grad[mine.padding_idx].abs().max() == 0


def test_embedding_max_norm_matches_torch():
    torch.manual_seed(0)
    mine, theirs = _twins(
        layers.Embedding, nn.Embedding, torch.float64, 8, 5, max_norm=1.0
    )
    with torch.no_grad():
        theirs.weight.mul_(3.0)
        mine.weight.copy_(theirs.weight)
    ids = torch.tensor([[1, 2, 2], [5, 0, 1]])
    _check_parity(mine, theirs, ids, torch.float64)
    _close(mine.weight.detach(), theirs.weight.detach(), torch.float64)  # renormed rows


def test_embedding_init_and_errors():
    torch.manual_seed(0)
    theirs = nn.Embedding(9, 6, padding_idx=2)
    torch.manual_seed(0)
    mine = layers.Embedding(9, 6, padding_idx=2)
    assert torch.equal(mine.weight, theirs.weight)
    assert mine.extra_repr() == theirs.extra_repr()
    with pytest.raises(ValueError, match="padding_idx"):
        layers.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="sparse"):
        layers.Embedding(5, 2, sparse=True)
    frozen = layers.Embedding.from_pretrained(torch.eye(3))
    assert not frozen.weight.requires_grad
    assert torch.equal(frozen(torch.tensor([2])), torch.eye(3)[2:])


def test_embedding_gradcheck():
    # Only without padding_idx / scale_grad_by_freq: those alter the gradient on
    # purpose (as torch does), so finite differences disagree; parity covers them.
    ids = torch.tensor([0, 3, 3, 1])
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    fn = layers.basic._EmbeddingFn.apply
    assert torch.autograd.gradcheck(lambda w: fn(w, ids, None, False), (w,))


# -- LayerNorm -------------------------------------------------------------------------

LN_CASES = [
    (5, {}, (4, 5)),
    ((3, 4), {}, (2, 3, 3, 4)),
    (6, {"elementwise_affine": False}, (2, 3, 6)),
    (6, {"bias": False}, (5, 6)),
    (8, {"eps": 1e-3}, (3, 8)),
    (7, {}, (7,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kwargs,x_shape", LN_CASES, ids=str)
def test_layernorm_parity(dtype, shape, kwargs, x_shape):
    torch.manual_seed(1)
    mine, theirs = _twins(layers.LayerNorm, nn.LayerNorm, dtype, shape, **kwargs)
    _check_parity(mine, theirs, torch.randn(x_shape, dtype=dtype) * 2 + 0.5, dtype)
    assert mine.extra_repr() == theirs.extra_repr()


def test_layernorm_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(20, dtype=torch.float64, requires_grad=True)
    b = torch.randn(20, dtype=torch.float64, requires_grad=True)
    fn = layers.basic._LayerNormFn.apply
    assert torch.autograd.gradcheck(
        lambda a, w, b: fn(a.reshape(-1, 20), w, b, 1e-5), (x, w, b)
    )
    assert torch.autograd.gradcheck(
        lambda a: fn(a.reshape(-1, 20), None, None, 1e-5), (x,)
    )


def test_layernorm_large_common_offset_stays_exact():
    # Trap: var = E[x^2] - E[x]^2 loses all digits here (1e8 - 1e8 in float32).
    torch.manual_seed(0)
    x = torch.randn(64, 128) + 1e4
    truth = nn.LayerNorm(128, dtype=torch.float64)(x.double()).detach()
    mine = layers.LayerNorm(128)(x).detach().double()
    theirs = nn.LayerNorm(128)(x).detach().double()
    mine_err = (mine - truth).abs().max().item()
    assert mine_err < 1e-5  # exact to float32 rounding of the output
    assert mine_err <= (theirs - truth).abs().max().item()  # at least as good as torch
    # and in float64, where torch's own kernel is exact too, the twins agree to 1e-10
    mine64, theirs64 = _twins(layers.LayerNorm, nn.LayerNorm, torch.float64, 128)
    _check_parity(mine64, theirs64, x.double() - 2e4, torch.float64)


def test_layernorm_rejects_wrong_trailing_shape():
    with pytest.raises(ValueError, match="normalized_shape"):
        layers.LayerNorm((3, 4))(torch.zeros(2, 4, 3))


# -- Dropout ---------------------------------------------------------------------------


def test_dropout_train_eval_and_scale():
    torch.manual_seed(0)
    drop = layers.Dropout(0.25)
    assert drop.extra_repr() == nn.Dropout(0.25).extra_repr()
    x = torch.randn(300, 300, requires_grad=True)
    y = drop(x)
    kept = y.detach() != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()  # gradient flows exactly through the kept elements
    assert_close(x.grad, kept.float() / 0.75)
    drop.eval()
    assert drop(x) is x


def test_dropout_edge_cases():
    x = torch.randn(10, 10)
    assert torch.equal(layers.Dropout(1.0)(x), torch.zeros_like(x))
    assert torch.equal(layers.Dropout(1.0)(x), nn.Dropout(1.0)(x))
    assert layers.Dropout(0.0)(x) is x
    z = x.clone()
    out = layers.Dropout(0.5, inplace=True)(z)
    assert out.data_ptr() == z.data_ptr() and ((z == 0) | (z == 2 * x)).all()
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p must be"):
            layers.Dropout(p)


# -- device and dtype ------------------------------------------------------------------


def _layer_cases(**kw):
    yield layers.Linear(4, 3, **kw), torch.randn(2, 5, 4)
    yield layers.LayerNorm(4, **kw), torch.randn(2, 5, 4)
    yield layers.Embedding(7, 4, padding_idx=1, **kw), torch.randint(0, 7, (2, 5))
    yield layers.Dropout(0.5), torch.randn(2, 5, 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_follow_dtype(dtype):
    for layer, x in _layer_cases(dtype=dtype):
        x = x.to(dtype) if x.is_floating_point() else x
        y = layer(x)
        assert y.dtype == dtype
        if list(layer.parameters()):
            y.sum().backward()
            assert all(p.grad.dtype == dtype for p in layer.parameters())


def test_layers_run_on_meta_device():
    for layer, x in _layer_cases(device="meta"):
        assert all(p.device.type == "meta" for p in layer.parameters())
        y = layer.train()(x.to("meta"))
        assert y.device.type == "meta"
        assert y.shape[:2] == (2, 5)
        if list(layer.parameters()):
            y.sum().backward()
            assert all(p.grad.device.type == "meta" for p in layer.parameters())


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_outlier_first_entry_matches_torch(dtype):
    # Each row is shifted by its own first entry before averaging; a first entry far
    # from the rest (and a row of equal entries) must not cost precision.
    torch.manual_seed(2)
    x = torch.randn(6, 32, dtype=dtype)
    x[0, 0], x[1, 0], x[2] = 1e3, -5e2, 7.0
    mine, theirs = _twins(layers.LayerNorm, nn.LayerNorm, dtype, 32)
    _check_parity(mine, theirs, x, dtype)
