"""The fused GELU feed-forward block against torch.nn.functional, and its use."""

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

from toytorch.layers import Linear, TransformerEncoderLayer
from toytorch.layers.feedforward import gelu_feed_forward

TOL = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
}


def weights(C, Fdim, bias, dtype, gen):
    def make(*shape):
        return (torch.randn(*shape, dtype=dtype, generator=gen) * 0.3).requires_grad_()

    w1, w2 = make(Fdim, C), make(C, Fdim)
    b1, b2 = (make(Fdim), make(C)) if bias else (None, None)
    return w1, b1, w2, b2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 6), (2, 5, 6), (3, 1, 4, 6)])
def test_matches_linear_gelu_linear(dtype, bias, shape):
    gen = torch.Generator().manual_seed(len(shape) * 10 + bias)
    x = (torch.randn(*shape, dtype=dtype, generator=gen) * 2).requires_grad_()
    w1, b1, w2, b2 = weights(shape[-1], 24, bias, dtype, gen)
    params = [p for p in (x, w1, b1, w2, b2) if p is not None]
    g = torch.randn(*shape, dtype=dtype, generator=gen)

    mine = gelu_feed_forward(x, w1, b1, w2, b2)
    theirs = F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)
    torch.testing.assert_close(mine, theirs, **TOL[dtype])
    for a, b in zip(
        torch.autograd.grad(mine, params, g),
        torch.autograd.grad(theirs, params, g),
        strict=True,
    ):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(bias):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    w1, b1, w2, b2 = weights(3, 5, bias, torch.float64, gen)
    if bias:
        assert torch.autograd.gradcheck(gelu_feed_forward, (x, w1, b1, w2, b2))
    else:
        fn = lambda x, w1, w2: gelu_feed_forward(x, w1, None, w2, None)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w1, w2))


def test_only_the_needed_gradients():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, generator=gen)  # a frozen input: no gradient asked
    w1, b1, w2, b2 = weights(3, 8, True, torch.float32, gen)
    w1.requires_grad_(False)
    gelu_feed_forward(x, w1, b1, w2, b2).sum().backward()
    assert x.grad is None and w1.grad is None
    assert b1.grad is not None and w2.grad is not None and b2.grad is not None
    b1.grad = None
    b1.requires_grad_(False)
    gelu_feed_forward(x, w1, b1, w2, b2).sum().backward()  # only the second linear
    assert b1.grad is None
    torch.testing.assert_close(b2.grad, torch.full_like(b2, 2 * 5.0))


def test_large_pre_activations_stay_finite():
    # Subtle: exp(-h^2 / 2) underflows to 0 for |h| > 14 and erf saturates; the slope
    # must come out as exactly 1 (large positive h) or 0 (large negative h), no NaN.
    x = torch.tensor([[1e4], [-1e4], [0.0]], requires_grad=True)
    w1 = torch.ones(1, 1, requires_grad=True)
    w2 = torch.ones(1, 1, requires_grad=True)
    out = gelu_feed_forward(x, w1, None, w2, None)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), torch.tensor([[1e4], [0.0], [0.0]]))
    torch.testing.assert_close(x.grad, torch.tensor([[1.0], [0.0], [0.5]]))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_encoder_layer_matches_torch_in_train_and_eval(dropout):
    # With dropout the training forward takes the unfused path; in eval (dropout off)
    # and at dropout 0 the fused one. Both must equal torch.nn.
    torch.manual_seed(0)
    kw = dict(
        d_model=8, nhead=2, dim_feedforward=16, activation="gelu", batch_first=True
    )
    theirs = nn.TransformerEncoderLayer(dropout=dropout, norm_first=True, **kw)
    mine = TransformerEncoderLayer(dropout=dropout, norm_first=True, **kw)
    mine.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, 8)
    # torch.nn in train mode, dropout 0: its plain (not fast-path) computation
    reference = nn.TransformerEncoderLayer(dropout=0.0, norm_first=True, **kw)
    reference.load_state_dict(theirs.state_dict())
    want = reference.train()(x)
    torch.testing.assert_close(mine.eval()(x), want, **TOL[torch.float32])
    if dropout == 0.0:
        torch.testing.assert_close(mine.train()(x), want, **TOL[torch.float32])
    else:
        torch.manual_seed(1)
        got = mine.train()(x)
        assert not torch.allclose(got, want)  # dropout did act in training


def encoder_pair(**kw):
    kw = dict(
        d_model=12,
        nhead=3,
        dim_feedforward=20,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        **kw,
    )
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(**kw)
    mine = TransformerEncoderLayer(**kw)
    mine.load_state_dict(theirs.state_dict())
    return mine, theirs


def test_hooks_pruning_and_wrappers_see_the_linears_called():
    # The fused path reads linear1/linear2's weights directly, so it must step aside
    # whenever their own forward matters, as it does for torch.nn.
    mine, theirs = encoder_pair()
    x = torch.randn(2, 5, 12)
    seen = []
    mine.linear1.register_forward_hook(lambda *a: seen.append("linear1"))
    mine(x)
    assert seen == ["linear1"]

    for layer in (mine, theirs):
        prune.l1_unstructured(layer.linear2, "weight", amount=0.5)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (mine, theirs)]
    for _ in range(2):  # the second step reuses the pruned weight's new value
        losses = []
        for m, opt in zip((mine, theirs), opts, strict=True):
            loss = m(x).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss)
        torch.testing.assert_close(losses[0], losses[1])


class Scaled(Linear):
    """A Linear subclass whose forward differs (as an adapter's would)."""

    def forward(self, x):
        return 2.0 * super().forward(x)


def test_a_linear_subclass_runs_its_own_forward():
    mine, theirs = encoder_pair()  # post-norm
    swapped = Scaled(12, 20)
    swapped.load_state_dict(mine.linear1.state_dict())
    mine.linear1 = swapped
    x = torch.randn(2, 5, 12)
    a = theirs.norm1(x + theirs.self_attn(x, x, x, need_weights=False)[0])
    want = theirs.norm2(a + theirs.linear2(F.gelu(2.0 * theirs.linear1(a))))
    torch.testing.assert_close(mine(x), want, **TOL[torch.float32])


def test_autocast_forward_and_backward():
    mine, theirs = encoder_pair()
    x = torch.randn(2, 5, 12)
    grads = []
    for m in (mine, theirs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        y.float().sum().backward()
        grads.append(m.linear1.weight.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=0.05, rtol=0.05)


def test_meta_device_forward_and_backward():
    kw = dict(dim_feedforward=16, dropout=0.0, activation="gelu", batch_first=True)
    layer = TransformerEncoderLayer(8, 2, device="meta", **kw)
    x = torch.empty(2, 3, 8, device="meta", requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert y.shape == (2, 3, 8) and y.device.type == "meta"
    assert layer.linear1.weight.grad.device.type == "meta"
